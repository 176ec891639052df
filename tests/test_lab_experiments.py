"""The lab's experiment manager: manifests, resumable runs on the feature cache, reports, committed specs."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_layers

from hebbcore import hookimpl
from hebbcore.errors import DataError, SpecError
from hebbcore.interfaces import Split
from hebbcore.spec import dumps_toml, parse_spec

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------- experiments


def write_experiments(folder: Path, probe_hebbian_epochs: int = 1) -> None:
    data = {"source": "synthetic", "options": {"n_train": 200, "n_val": 50, "n_test": 50, "size": 8}}
    sgd = {"epochs": 2, "batch_size": 32, "lr": 0.01}
    specs = {
        "parent": {
            "name": "parent",
            "phases": ["sgd"],
            "data": data,
            "sgd": sgd,
            "layers": tiny_layers({"conv1": "sgd", "clf": "sgd"}),
        },
        "probe": {
            "name": "probe",
            "phases": ["hebbian"],
            "data": data,
            "sgd": {"epochs": 0},
            "hebbian": {"epochs": probe_hebbian_epochs},
            "init_weights": "placeholder.npz",
            "layers": tiny_layers({"conv1": "frozen", "clf": "hebbian"}),
        },
        "never": {"name": "never", "data": data, "sgd": sgd, "layers": tiny_layers({"conv1": "sgd", "clf": "sgd"})},
    }
    for name, s in specs.items():
        if name == "probe":
            s = dict(s)
            del s["init_weights"]
        (folder / f"{name}.toml").write_text(dumps_toml(s))
    manifest = {
        "experiment": [
            {"name": "parent", "spec": "parent.toml", "paper": 50.0, "table": "Table 1", "row": "net, layer 1"},
            {
                "name": "probe",
                "spec": "probe.toml",
                "paper": 40.0,
                "table": "Table 1",
                "row": "probe, layer 1",
                "init_from": "parent",
                "init_layers": ["conv1"],
            },
            {"name": "alias", "same_as": "parent", "paper": 50.0, "table": "Table 2", "row": "the same run"},
            {"name": "never", "spec": "never.toml", "paper": 60.0, "table": "Table 2", "row": "not run"},
        ]
    }
    (folder / "experiments.toml").write_text(dumps_toml(manifest))


def test_experiments_run_resume_and_report(tmp_path, registry):
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    rows, wanted = ex.collect([folder / "probe.toml"])
    assert ex.order_with_dependencies(rows, wanted) == ["parent", "probe"]
    logs = []
    runner = ex.ExperimentRunner(registry, backend="numpy", progress=False, log=logs.append)
    assert runner.run(rows, wanted) == {"parent": "done", "probe": "done"}
    res = folder / "results"
    probe = json.loads((res / "probe" / "metrics.json").read_text())
    # conv1..pool1 computed once: the probe's Hebbian phase learns bn1's statistics, as it does without the cache
    assert probe["experiment"]["feature_cache"]["trains_from"] == "bn1"
    assert probe["final"]["test_acc"] is not None
    with np.load(res / "probe" / "weights.npz") as f:  # the whole network, frozen layers included
        with np.load(res / "parent" / "weights.npz") as g:
            np.testing.assert_array_equal(f["conv1.weight"], g["conv1.weight"])
        assert "clf.weight" in f.files
    assert "conv1" in (res / "probe" / "spec.toml").read_text()
    if importlib.util.find_spec("matplotlib"):  # the frozen layer's kernel grid, drawn from the merged weights
        assert (res / "probe" / "plots" / "kernels_conv1.png").is_file()
    # resumable: a second call skips both
    assert runner.run(rows, wanted) == {"parent": "skipped", "probe": "skipped"}
    # a fresh clone has the parent's metrics but not its (git-ignored) weights: a probe still to do reruns it
    (res / "parent" / "weights.npz").unlink()
    assert runner.run(rows, wanted) == {"parent": "skipped", "probe": "skipped"}  # nothing to do: no rerun
    (res / "probe" / "metrics.json").unlink()
    assert runner.run(rows, wanted) == {"parent": "done", "probe": "done"}
    assert any("weights.npz is missing" in m for m in logs)
    # report: measured rows, the alias, and "not run yet"
    report = ex.write_report(folder).read_text()
    assert "not run yet" in report and "`parent (same run)`" in report
    assert "| probe, layer 1 | `probe` | 40.00 |" in report
    assert (folder / "kernels_conv1_parent.png").is_file()
    assert (folder / "accuracy_per_layer.png").is_file()
    # a fresh clone: the committed grid stays in the report though the weights are not there to redraw it
    (res / "parent" / "weights.npz").unlink()
    assert "](kernels_conv1_parent.png)" in ex.write_report(folder).read_text()


class _StopAfterFirstEpoch(Exception):
    pass


class _CutEachRunOnce:
    """A plugin that stops each run at the end of its first epoch, once (like a kill after a checkpoint)."""

    def __init__(self):
        self.cut: list[str] = []

    @hookimpl
    def hebbcore_epoch_end(self, run_dir, record):
        name = Path(run_dir).name
        if name not in self.cut:
            self.cut.append(name)
            raise _StopAfterFirstEpoch(name)


def test_an_interrupted_run_continues_from_its_checkpoint(tmp_path, registry, capsys):
    """Cut after one epoch, run again: it continues (plain and cached-features runs), ending where an uncut run does."""
    from hebbcore.lab import experiments as ex
    from hebbcore.plugin_manager import default_registry

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder, probe_hebbian_epochs=2)
    rows, wanted = ex.collect([folder / "probe.toml"])
    ex.ExperimentRunner(registry, results=tmp_path / "uncut", progress=False, log=lambda m: None).run(rows, wanted)

    cutter = _CutEachRunOnce()
    cut_registry = default_registry([cutter])
    logs: list[str] = []
    runner = ex.ExperimentRunner(cut_registry, results=tmp_path / "cut", progress=False, log=logs.append)
    for expected in ("parent", "probe"):
        with pytest.raises(_StopAfterFirstEpoch, match=expected):
            runner.run(rows, wanted)
        d = tmp_path / "cut" / expected
        assert ex.interrupted_position(d) == ("sgd epoch 2" if expected == "parent" else "hebbian epoch 2")
    assert ex.interrupted_position(tmp_path / "cut" / "probe", {"name": "another spec"}) is None
    capsys.readouterr()
    assert ex.main(["run", str(folder / "probe.toml"), "--results", str(tmp_path / "cut"), "--dry-run"]) == 0
    assert "probe: to run (interrupted at hebbian epoch 2; continues from there)" in capsys.readouterr().out
    assert runner.run(rows, wanted) == {"parent": "skipped", "probe": "done"}
    assert any("parent: continuing the interrupted run from its checkpoint (sgd epoch 2)" in m for m in logs)
    assert any("probe: continuing the interrupted run from its checkpoint (hebbian epoch 2)" in m for m in logs)
    for name in ("parent", "probe"):
        a = json.loads((tmp_path / "uncut" / name / "metrics.json").read_text())
        b = json.loads((tmp_path / "cut" / name / "metrics.json").read_text())
        assert b["resumed"] and b["experiment"]["resumed_at"] and "resumed_at" not in a["experiment"]
        assert [e["epoch"] for e in b["epochs"]] == [e["epoch"] for e in a["epochs"]] == [1, 2]
        assert b["final"]["test_acc"] == a["final"]["test_acc"]
        with (
            np.load(tmp_path / "uncut" / name / "weights.npz") as fa,
            np.load(tmp_path / "cut" / name / "weights.npz") as fb,
        ):
            assert fa.files == fb.files
            for k in fa.files:
                np.testing.assert_allclose(fb[k], fa[k], rtol=1e-6, atol=1e-7, err_msg=f"{name}: {k}")
        assert ex.interrupted_position(tmp_path / "cut" / name) is None  # finished


def test_force_starts_an_interrupted_run_over(tmp_path, registry):
    from hebbcore.lab import experiments as ex
    from hebbcore.plugin_manager import default_registry

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    rows, wanted = ex.collect([folder / "parent.toml"])
    with pytest.raises(_StopAfterFirstEpoch):
        ex.ExperimentRunner(default_registry([_CutEachRunOnce()]), progress=False, log=lambda m: None).run(rows, wanted)
    logs: list[str] = []
    assert ex.ExperimentRunner(registry, force=True, progress=False, log=logs.append).run(rows, wanted) == {
        "parent": "done"
    }
    assert not any("continuing" in m for m in logs)
    assert "resumed" not in json.loads((folder / "results" / "parent" / "metrics.json").read_text())


def test_feature_cache_gives_the_same_result_as_running_through(tmp_path, registry):
    """A frozen prefix computed once or on every batch: same weights and accuracy for a Hebbian probe."""
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    rows, wanted = ex.collect([folder / "probe.toml"])
    ex.ExperimentRunner(registry, progress=False, log=lambda m: None).run(rows, wanted)
    a = json.loads((folder / "results" / "probe" / "metrics.json").read_text())
    other = tmp_path / "plain"
    ex.ExperimentRunner(registry, results=other, progress=False, feature_cache=False, log=lambda m: None).run(
        rows, wanted
    )
    b = json.loads((other / "probe" / "metrics.json").read_text())
    assert "feature_cache" not in b["experiment"]
    assert a["experiment"]["feature_cache"]["trains_from"] == "bn1"  # under a Hebbian phase, below the batch-norm
    assert a["final"] == b["final"]


def test_the_dry_run_says_what_the_run_would_do(tmp_path, capsys):
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    assert ex.main(["run", str(folder / "parent.toml"), "--sgd-epochs", "1", "--no-progress"]) == 0
    capsys.readouterr()

    def dry(*extra):
        assert ex.main(["run", str(folder / "probe.toml"), "--dry-run", *extra]) == 0
        return capsys.readouterr().out.splitlines()[:2]

    assert dry() == ["parent: done", "probe: to run"]
    assert dry("--force") == ["parent: done: to run again (--force)", "probe: to run"]
    (folder / "results" / "parent" / "weights.npz").unlink()  # as a fresh clone has it
    assert dry() == ["parent: done, but its weights.npz is missing: to run again for probe", "probe: to run"]


def test_an_interrupted_manager_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    from hebbcore.lab import experiments as ex
    from hebbcore.lab.experiments import orchestrate

    def ctrl_c(self, rows, wanted):
        raise KeyboardInterrupt

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    monkeypatch.setattr(orchestrate.ExperimentRunner, "run", ctrl_c)
    assert ex.main(["run", str(folder), "--no-progress"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == "hebbcore: interrupted; runs continue from their last checkpoint when run again"


def test_one_row_name_in_two_folders_is_refused(tmp_path, capsys):
    """Rows are found by name (init_from): two folders each with a row 'parent' would mix their runs."""
    from hebbcore.lab import experiments as ex

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_experiments(tmp_path / name)
    with pytest.raises(SpecError, match="experiment 'parent' is a row of both .*/a' and .*/b'"):
        ex.collect([tmp_path / "a", tmp_path / "b"])
    assert ex.main(["run", str(tmp_path / "a"), str(tmp_path / "b"), "--dry-run"]) == 2
    assert "run the folders one at a time" in capsys.readouterr().err
    rows, _ = ex.collect([tmp_path / "a" / "parent.toml", tmp_path / "a"])  # one folder twice: fine
    assert "parent" in rows


def test_experiments_cli_dry_run_and_missing_parent(tmp_path, capsys, registry):
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    assert ex.main(["run", str(folder), "--dry-run"]) == 0
    assert capsys.readouterr().out.split("\n")[:3] == ["parent: to run", "probe: to run", "never: to run"]
    rows, _ = ex.collect([folder])
    with pytest.raises(Exception, match="needs the finished run 'parent'"):
        ex.ExperimentRunner(registry, log=lambda m: None).run_one(rows["probe"], rows)
    assert ex.main(["run", str(folder / "parent.toml"), "--sgd-epochs", "1", "--no-progress"]) == 0
    m = json.loads((folder / "results" / "parent" / "metrics.json").read_text())
    assert m["experiment"]["overrides"] == {"sgd_epochs": 1} and len(m["epochs"]) == 1
    assert "python -m hebbcore.experiments run " in (folder / "results" / "parent" / "command.txt").read_text()
    assert ex.main(["run", str(folder / "probe.toml"), "--no-progress"]) == 0  # starts from the reduced parent
    m = json.loads((folder / "results" / "probe" / "metrics.json").read_text())
    assert m["experiment"]["parent_overrides"] == {"sgd_epochs": 1}
    assert ex.main(["report", str(folder), "--no-plots"]) == 0
    report = (folder / "REPORT.md").read_text()
    assert "REDUCED: sgd_epochs=1" in report and "REDUCED parent run: sgd_epochs=1" in report
    mine = tmp_path / "mine"
    shutil.copytree(folder / "results", mine)
    (folder / "REPORT.md").unlink()
    assert ex.main(["report", str(folder), "--results", str(mine)]) == 0  # with plots
    assert not (folder / "REPORT.md").exists() and not list(folder.glob("*.png"))  # the folder's own stays
    assert f"report {folder} --results {mine}`" in (mine / "REPORT.md").read_text()
    assert list(mine.glob("kernels_conv1_*.png"))


# ------------------------------------------------------------------------------------------- paper specs


def test_a_finished_run_whose_spec_changed_is_flagged_not_rerun(tmp_path, capsys, registry):
    """A changed spec file: dry-run and run name the changed fields, keep the results, fail its dependents."""
    import tomllib

    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    write_experiments(folder)
    assert ex.main(["run", str(folder / "parent.toml"), "--sgd-epochs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert ex.main(["run", str(folder / "parent.toml"), "--dry-run"]) == 0
    note = " (ran with --sgd-epochs 1, not as asked now; --force reruns it)"  # done, but said to be reduced
    assert capsys.readouterr().out.strip() == "parent: done" + note  # the recorded overrides are not a change
    before = (folder / "results" / "parent" / "metrics.json").read_text()
    table = tomllib.loads((folder / "parent.toml").read_text())
    table["sgd"]["lr"] = 0.02
    (folder / "parent.toml").write_text(dumps_toml(table))
    assert ex.main(["run", str(folder / "parent.toml"), "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == "parent: done, spec changed since (sgd)" + note
    assert ex.main(["run", str(folder / "probe.toml"), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "parent: finished, but" in out and "changed since in sgd" in out and "--force" in out
    assert "probe: failed: needs parent, which ran with an older spec" in out
    assert (folder / "results" / "parent" / "metrics.json").read_text() == before
    assert not (folder / "results" / "probe" / "metrics.json").exists()


def test_specs_that_extend_a_base_and_rows_that_set_keys_run_as_hebbcore_run_reads_them(tmp_path, capsys):
    """A spec with ``extends`` and a manifest row with ``set``: they run, are recognised as done (not changed),
    and a change to the base spec is seen in both."""
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    data = {"source": "synthetic", "options": {"n_train": 100, "n_val": 20, "n_test": 20, "size": 8}}
    base = {"name": "base", "phases": ["hebbian"], "data": data, "hebbian": {"epochs": 1}, "sgd": {"epochs": 0},
            "layers": tiny_layers({"conv1": "hebbian", "clf": "hebbian"})}  # fmt: skip
    (folder / "base.toml").write_text(dumps_toml(base))
    (folder / "child.toml").write_text('extends = "base.toml"\nname = "child"\nseed = 3\n')
    manifest = {"experiment": [
        {"name": "child", "spec": "child.toml"},
        {"name": "variant", "spec": "child.toml", "set": ["name='variant'", "layers.conv1.hebbian.lr=0.05"]},
    ]}  # fmt: skip
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    assert ex.main(["run", str(folder), "--no-progress"]) == 0
    variant = (folder / "results" / "variant" / "spec.toml").read_text()
    assert 'name = "variant"' in variant and "lr = 0.05" in variant and "seed = 3" in variant
    capsys.readouterr()
    assert ex.main(["run", str(folder), "--dry-run"]) == 0
    assert capsys.readouterr().out.split("\n")[:2] == ["child: done", "variant: done"]
    assert ex.main(["run", str(folder / "child.toml"), "--dry-run"]) == 0  # a spec file: every row running it
    out = capsys.readouterr().out.split("\n")
    assert "the spec of 2 rows (child, variant); --only picks some" in out[0] and out[1:3] == [
        "child: done",
        "variant: done",
    ]
    assert ex.main(["run", str(folder), "--only", ",", "--dry-run"]) == 2
    assert "--only: no row named at all" in capsys.readouterr().err
    assert ex.main(["run", str(folder), "--only", "variant", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip() == "variant: done"
    assert ex.main(["run", str(folder), "--only", "v*", "--dry-run"]) == 0  # a glob pattern
    assert capsys.readouterr().out.strip() == "variant: done"
    assert ex.main(["run", str(folder), "--only", "varient", "--dry-run"]) == 2
    assert "--only: no row named 'varient' (did you mean 'variant'?)" in capsys.readouterr().err
    manifest["experiment"][1]["set"] = "name='x'"  # a string, not an array: said in one line
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    assert ex.main(["run", str(folder), "--dry-run"]) == 2
    assert 'experiment[1].set: expected an array of "key.path=value" strings' in capsys.readouterr().err
    manifest["experiment"][1]["set"] = ["name='variant'", "layers.conv1.hebbian.lr=0.05"]
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    (folder / "base.toml").write_text(dumps_toml({**base, "hebbian": {"epochs": 1, "batch_size": 16}}))
    assert ex.main(["run", str(folder), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "child: done, spec changed since (hebbian)" in out and "variant: done, spec changed since (hebbian)" in out


def _row_spec(exp, registry):
    """A manifest row's spec as the lab runs it: its base spec file with the row's settings applied."""
    from hebbcore.specfile import apply_setting, read_spec_table

    table = read_spec_table(exp.spec_path)[0]
    assert not [p for setting in exp.set for p in apply_setting(table, setting)], exp.name
    table.pop("init_weights", None)
    return parse_spec(table, registry, exp.spec)


def test_paper_rows_are_the_authors_configurations(registry):
    """experiments/paper: every row parses, and where its layers come from and its L2 are the authors' (config.py
    of GabrieleLagani/HebbianLearningThesis)."""
    from hebbcore.lab import experiments as ex

    rows = ex.load_manifest(REPO / "experiments" / "paper")
    t2 = [e for e in rows.values() if e.table == "Table 2"]
    t1 = [e for e in rows.values() if e.table == "Table 1"]
    assert len(t2) == 27 and len(t1) == 15  # the issue lists 27 Table 2 values and 15 Table 1 values
    specs = {}
    for exp in rows.values():
        if exp.spec:
            spec = specs[exp.name] = _row_spec(exp, registry)
            assert spec.name == exp.name
            sgd_layers = [l for l in spec.layers if l.trainable and l.train == "sgd"]
            assert (spec.sgd.epochs > 0) == bool(sgd_layers)
    assert rows["t2_GGHGGG"].init_from == "t2_GGHHHH" and rows["t2_GGHGGG"].init_layers == ("conv1", "conv2", "conv3")
    assert rows["t2_GGGHHH"].init_from == "sgd_L3" and rows["t2_GGGHHH"].init_layers == ("conv1", "conv2", "conv3")
    assert rows["t2_GGGGGH"].init_from == "t2_GGGGGG" and rows["t2_HHHGGG"].init_from == "t2_HHHHHH"
    assert not rows["t2_GGGGGG"].init_from and not rows["t2_RRGGGG"].init_from
    modes = {l.name: l.train for l in specs["t2_GHHGGG"].layers if l.trainable}
    assert [modes[n] for n in ("conv1", "conv2", "conv3", "conv4")] == ["frozen", "frozen", "frozen", "sgd"]
    named = ("HGGGGG", "HHGGGG", "GHGGGG", "HHHGGG", "GGHGGG", "HHHHGG", "GGGHGG", "HHHHHG", "GGGGGG", "RRRGGG")
    wd = {m: specs[f"t2_{m}"].sgd.weight_decay for m in named}
    assert wd == {
        "HGGGGG": 7e-2,
        "HHGGGG": 6e-2,
        "GHGGGG": 6e-2,
        "HHHGGG": 5e-2,
        "GGHGGG": 5e-2,
        "HHHHGG": 5e-4,
        "GGGHGG": 5e-4,
        "HHHHHG": 5e-4,
        "GGGGGG": 0.06,
        "RRRGGG": 0.06,
    }
    shallow = [specs[f"sgd_L{k}"] for k in range(1, 5)]
    assert [s.layers[-1].options.out_features for s in shallow] == [10] * 4
    assert [s.sgd.weight_decay for s in shallow] == [2e-2, 3e-2, 4e-2, 5e-2]
    assert [l.name for l in shallow[1].layers if l.type == "conv"] == ["conv1", "conv2"]


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (REPO / "experiments").glob("*/experiments.toml")))
def test_every_row_resolves_to_the_spec_its_committed_run_recorded(folder, registry):
    """The rows of each experiment folder, written as base specs plus settings, resolve (defaults filled in) to
    the very specs their committed runs recorded in ``results/<name>/spec.toml``: the rewrite of the spec
    generators into rows changed no run."""
    from hebbcore.lab import experiments as ex

    rows = ex.load_manifest(REPO / "experiments" / folder)
    checked = 0
    for exp in rows.values():
        if not exp.spec:
            continue
        _row_spec(exp, registry)  # parses, settings applied
        run_dir = REPO / "experiments" / folder / "results" / exp.name
        if (run_dir / "spec.toml").is_file():
            assert ex.stale_fields(exp.spec_path, run_dir, registry, exp.set) == [], exp.name
            checked += 1
    assert checked or folder == "presets", f"no committed run checked in experiments/{folder}"


def test_report_goal_match_or_beat(tmp_path):
    """A row's goal decides the target column: within ±2 pp of the paper, or above it."""
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    (folder / "results").mkdir(parents=True)
    manifest = {
        "experiment": [
            {"name": n, "spec": f"{n}.toml", "paper": 50.0, "table": "T", "row": n, **({"goal": g} if g else {})}
            for n, g in (("close", ""), ("above", "beat"), ("below", "beat"))
        ]
    }
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    for name, acc in (("close", 0.49), ("above", 0.51), ("below", 0.49)):
        (folder / "results" / name).mkdir()
        (folder / "results" / name / "metrics.json").write_text(
            json.dumps({"final": {"test_acc": acc}, "epochs": [{"phase": "sgd", "epoch": 1}], "experiment": {}})
        )
    report = ex.write_report(folder, plots=False).read_text()
    assert "| close | `close` | 50.00 | 49.00 | -1.00 | yes (±2) |" in report
    assert "| above | `above` | 50.00 | 51.00 | +1.00 | yes (beat) |" in report
    assert "| below | `below` | 50.00 | 49.00 | -1.00 | no (beat) |" in report
    outside = report.split("## Rows outside the target")[1]
    assert "below" in outside and "above" not in outside and "close" not in outside
    manifest["experiment"][0]["goal"] = "exceed"
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    with pytest.raises(SpecError, match=r"\(close\).goal: expected one of"):
        ex.load_manifest(folder)


def test_report_summary_and_table_order(tmp_path):
    """The summary counts rows, finished runs and targets met per table; the paper's tables come first."""
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    (folder / "results").mkdir(parents=True)
    manifest = {
        "experiment": [
            {"name": "extra", "spec": "extra.toml", "table": "Supporting", "row": "extra"},
            {"name": "t2_ok", "spec": "t2_ok.toml", "paper": 50.0, "table": "Table 2", "row": "t2_ok"},
            {"name": "t2_far", "spec": "t2_far.toml", "paper": 50.0, "table": "Table 2", "row": "t2_far"},
            {"name": "t2_small", "spec": "t2_small.toml", "paper": 50.0, "table": "Table 2", "row": "t2_small"},
            {"name": "t2_todo", "spec": "t2_todo.toml", "paper": 50.0, "table": "Table 2", "row": "t2_todo"},
            {"name": "t1_ok", "spec": "t1_ok.toml", "paper": 60.0, "table": "Table 1", "row": "t1_ok"},
        ]
    }
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    for name, acc, over in (
        ("extra", 0.7, {}),
        ("t2_ok", 0.51, {}),
        ("t2_far", 0.55, {}),
        ("t2_small", 0.50, {"n_train": 100}),
        ("t1_ok", 0.6, {}),
    ):
        (folder / "results" / name).mkdir()
        (folder / "results" / name / "metrics.json").write_text(
            json.dumps(
                {
                    "final": {"test_acc": acc},
                    "epochs": [{"phase": "sgd", "epoch": 1}],
                    "experiment": {"overrides": over},
                }
            )
        )
    report = ex.write_report(folder, plots=False).read_text()
    summary = report.split("## Summary")[1].split("## Table 1")[0]
    assert "| Table 1 | 1 | 1 | 1 | 1 |" in summary
    assert "| Table 2 | 4 | 3 | 2 | 1 |" in summary  # t2_small is reduced, t2_todo not run, t2_far misses
    assert "| Supporting | 1 | 1 | 0 | 0 |" in summary
    assert report.index("## Table 1") < report.index("## Table 2") < report.index("## Supporting")


def test_report_previous_results_column(tmp_path):
    """``previous`` adds a column with another results folder's accuracies; ``authors_code`` goes to the notes."""
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    manifest = {
        "experiment": [
            {"name": "a", "spec": "a.toml", "paper": 50.0, "table": "T", "row": "a"},
            {"name": "b", "spec": "b.toml", "table": "T", "row": "b", "authors_code": 61.5},
        ]
    }
    folder.mkdir()
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    for sub, name, acc in (("results", "a", 0.49), ("old", "a", 0.40), ("results", "b", 0.60)):
        (folder / sub / name).mkdir(parents=True)
        (folder / sub / name / "metrics.json").write_text(
            json.dumps({"final": {"test_acc": acc}, "epochs": [{"phase": "sgd", "epoch": 1}], "experiment": {}})
        )
    report = ex.write_report(folder, plots=False, previous=folder / "old").read_text()
    assert "| row | run | paper % | measured % | Δ pp | target met | old % | notes |" in report
    assert "| a | `a` | 50.00 | 49.00 | -1.00 | yes (±2) | 40.00 |" in report
    assert "| b | `b` |  | 60.00 |  |  |  | authors' code: 61.50; sgd 1 ep |" in report
    assert "old %" not in ex.write_report(folder, plots=False).read_text()
    with pytest.raises(DataError, match="--previous: .*missing"):
        ex.write_report(folder, plots=False, previous=folder / "missing")


def test_report_seed_spread(tmp_path):
    """Rows that repeat another with other seeds: mean ± sd in their own section, cited where the row misses."""
    from hebbcore.lab import experiments as ex

    folder = tmp_path / "exp"
    folder.mkdir()
    manifest = {
        "experiment": [
            {"name": "a", "spec": "a.toml", "paper": 50.0, "table": "T", "row": "a"},
            {"name": "a_seed1", "spec": "a1.toml", "paper": 50.0, "table": "Seeds", "row": "a, seed 1", "repeats": "a"},
            {"name": "a_seed2", "spec": "a2.toml", "paper": 50.0, "table": "Seeds", "row": "a, seed 2", "repeats": "a"},
            {"name": "b", "spec": "b.toml", "paper": 50.0, "table": "T", "row": "b"},
            {"name": "b_seed1", "spec": "b1.toml", "paper": 50.0, "table": "Seeds", "row": "b, seed 1", "repeats": "b"},
        ]
    }
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    for name, acc in (("a", 0.53), ("a_seed1", 0.51), ("a_seed2", 0.52), ("b", 0.60)):
        (folder / "results" / name).mkdir(parents=True)
        (folder / "results" / name / "metrics.json").write_text(
            json.dumps({"final": {"test_acc": acc}, "epochs": [{"phase": "sgd", "epoch": 1}], "experiment": {}})
        )
    report = ex.write_report(folder, plots=False).read_text()
    spread = report.split("## Seed spread")[1].split("## Rows outside the target")[0]
    assert "| a | `a` | 50.00 | 3 | 53.00 / 51.00 / 52.00 | 52.00 ± 1.00 | +2.00 | yes |" in spread
    assert "| b | `b` | 50.00 | 1 | 60.00 | 60.00 | +10.00 |  |" in spread  # b_seed1 not run yet
    outside = report.split("## Rows outside the target")[1]
    assert "- a (`a`): +3.00 pp; over 3 seeds 52.00 ± 1.00 (+2.00 pp); see the notes below" in outside
    assert "- b (`b`): +10.00 pp; see the notes below" in outside
    assert "seed 1" not in outside and "seed 2" not in outside  # repeats are judged through the spread only
    manifest["experiment"][1]["repeats"] = "c"
    (folder / "experiments.toml").write_text(dumps_toml(manifest))
    with pytest.raises(SpecError, match="refers to 'c', which the manifest does not list"):
        ex.load_manifest(folder)


def _write_flip_probe(folder: Path, hflip: bool) -> None:
    """``write_experiments`` plus ``flip``: an SGD linear probe on the parent's frozen conv1 (``sgd.hflip``)."""
    write_experiments(folder)
    data = {"source": "synthetic", "options": {"n_train": 200, "n_val": 50, "n_test": 50, "size": 8}}
    spec = {
        "name": "flip",
        "phases": ["sgd"],
        "data": data,
        "seed": 3,
        "sgd": {"epochs": 2, "batch_size": 32, "lr": 0.05, "hflip": hflip},
        "layers": tiny_layers({"conv1": "frozen", "clf": "sgd"}),
    }
    (folder / "flip.toml").write_text(dumps_toml(spec))
    import tomllib

    manifest = tomllib.loads((folder / "experiments.toml").read_text())
    # clf starts from the parent's too: a network without the cached layers draws other initial weights
    manifest["experiment"].append(
        {
            "name": "flip",
            "spec": "flip.toml",
            "table": "Table 1",
            "row": "flip probe",
            "init_from": "parent",
            "init_layers": ["conv1", "clf"],
        }
    )
    (folder / "experiments.toml").write_text(dumps_toml(manifest))


def test_hflip_on_cached_features_equals_flipping_the_images(tmp_path, registry):
    """``sgd.hflip`` above a cached frozen prefix (features of the mirrored images, computed once) trains the
    same probe as mirroring the images on every batch; and mirroring changes what is learned."""
    from hebbcore.lab import experiments as ex

    weights = {}
    for tag, hflip, cache in (("cached", True, True), ("plain", True, False), ("noflip", False, True)):
        folder = tmp_path / tag
        folder.mkdir()
        _write_flip_probe(folder, hflip)
        rows, wanted = ex.collect([folder / "flip.toml"])
        status = ex.ExperimentRunner(registry, progress=False, feature_cache=cache, log=lambda m: None).run(
            rows, wanted
        )
        assert status["flip"] == "done"
        m = json.loads((folder / "results" / "flip" / "metrics.json").read_text())
        assert ("feature_cache" in m["experiment"]) == cache
        with np.load(folder / "results" / "flip" / "weights.npz") as f:
            weights[tag] = f["clf.weight"]
    np.testing.assert_allclose(weights["cached"], weights["plain"], rtol=1e-4, atol=1e-5)
    assert np.abs(weights["cached"] - weights["noflip"]).max() > 1e-3


def test_hflip_needs_images(tmp_path, registry):
    from hebbcore.errors import HebbcoreError
    from hebbcore.runner import load_dataset, run
    from hebbcore.spec import parse_spec

    spec = parse_spec(
        {
            "name": "dense",
            "phases": ["sgd"],
            "sgd": {"epochs": 1, "hflip": True},
            "data": {"source": "synthetic", "options": {"n_train": 64, "n_val": 0, "n_test": 0, "size": 4}},
            "layers": [
                {"name": "flat", "type": "flatten"},
                {"name": "clf", "type": "linear", "out_features": 10, "train": "sgd"},
            ],
        },
        registry,
    )
    data = load_dataset(spec, registry)
    flat = data.replace(train=Split(data.train.x.reshape(len(data.train), -1), data.train.y))
    with pytest.raises(HebbcoreError, match=r"sgd.hflip: the SGD phase's inputs must be images"):
        run(spec, registry, backend="numpy", out_dir=tmp_path / "run", progress=False, dataset=flat)


def test_the_label_scarce_generator_writes_the_committed_specs(tmp_path):
    """experiments/label_scarce/make_specs.py (its README's first step) derives its specs from experiments/rules'
    rows; run on a copy, it writes exactly the committed specs and manifest."""
    import subprocess
    import sys

    here = REPO / "experiments" / "label_scarce"
    (tmp_path / "label_scarce").mkdir()
    shutil.copy(here / "make_specs.py", tmp_path / "label_scarce")
    (tmp_path / "rules").symlink_to(REPO / "experiments" / "rules")
    res = subprocess.run(
        [sys.executable, str(tmp_path / "label_scarce" / "make_specs.py")], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    written = sorted(p.name for p in (tmp_path / "label_scarce").glob("*.toml"))
    assert written == sorted(p.name for p in here.glob("*.toml")) and len(written) == 33
    for name in written:
        assert (tmp_path / "label_scarce" / name).read_text() == (here / name).read_text(), name
