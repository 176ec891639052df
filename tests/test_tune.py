"""hebbcore tune: the search space is checked against the spec; a study on Optuna (SQLite) runs, resumes,
prunes and shares its trials between worker processes; best.toml is the best trial's spec."""

from __future__ import annotations

import csv
import json

import pytest

from hebbcore.cli import main
from hebbcore.errors import SpecError
from hebbcore.spec import load_spec

optuna = pytest.importorskip("optuna")
pytest.importorskip("torch", reason="the trials' SGD phase needs torch")

SPEC = """
name = "tiny_tune"
seed = 0
[data]
source = "synthetic"
[data.options]
n_train = 200
n_val = 80
n_test = 40
size = 8
n_classes = 4
[hebbian]
epochs = 1
batch_size = 50
[sgd]
epochs = 2
lr = 0.01
[[layers]]
name = "conv1"
type = "conv"
out_channels = 4
kernel_size = 3
[layers.hebbian]
rule = "wta"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "fc"
type = "linear"
out_features = 4
"""

SPACE = """
[params."layers.conv1.hebbian.lr"]
type = "float"
low = 0.01
high = 0.5
log = true
[params."sgd.lr"]
type = "float"
low = 0.001
high = 0.1
[params."layers.conv1.out_channels"]
type = "categorical"
choices = [3, 5]
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "s.toml").write_text(SPEC)
    (tmp_path / "space.toml").write_text(SPACE)
    return tmp_path


def study_of(out):
    return optuna.load_study(study_name="tiny_tune", storage=f"sqlite:///{out / 'study.db'}")


def test_every_problem_of_a_space_is_named_before_a_trial_runs(files, registry):
    from hebbcore.tune import load_space

    (files / "bad.toml").write_text(
        'metric = "test_acc"\n'
        '[params."layers.conv1.hebbian.lrr"]\ntype = "float"\nlow = 0.1\nhigh = 0.2\n'
        '[params."sgd.lr"]\ntype = "float"\nlow = 0.5\nhigh = 0.1\n'
        '[params."sgd.momentum"]\ntype = "float"\nlow = 0.0\nhigh = 0.5\nlog = true\n'
        '[params."layers.fc.out_features"]\ntype = "categorical"\nchoices = []\n'
        '[params."sgd.epochs"]\ntype = "integer"\nlow = 1\nhigh = 3\n'
        '[params."sgd.batch_size"]\ntype = "int"\nlow = 0\nhigh = 8\n'
        '[pruning]\ntype = "median"\nwarmup_epoch = 2\nstartup_trials = -1\n'
    )
    (files / "none.toml").write_text('[params."sgd.lr"]\ntype = "float"\nlow = 0.001\nhigh = 0.1\n'
                                     '[pruning]\ntype = "none"\nstartup_trials = 2\n')  # fmt: skip
    with pytest.raises(SpecError, match=r"pruning.startup_trials: has no effect with type = 'none'"):
        load_space(files / "none.toml", files / "s.toml", registry)
    (files / "long.toml").write_text('[params."sgd.lr"]\ntype = "float"\nlow = 0.001\nhigh = 0.1\n'
                                     "[pruning]\nwarmup_epochs = 1\n")  # fmt: skip
    with pytest.raises(SpecError, match=r"pruning.warmup_epochs: 1 spares every epoch a trial could be stopped at "
                                        r"\(it measures 2, and is never stopped at the last\)"):  # fmt: skip
        load_space(files / "long.toml", files / "s.toml", registry)  # the Hebbian epoch measures nothing here
    with pytest.raises(SpecError) as err:
        load_space(files / "bad.toml", files / "s.toml", registry)
    text = str(err.value)
    assert "\n" not in text
    for needle in (
        "params.'layers.conv1.hebbian.lrr': with 0.1: layers[0] (conv1).hebbian.lrr: unknown key (did you mean 'lr'?)",
        "params.'sgd.lr'.low: expected low < high, got 0.5 >= 0.1",
        "params.'sgd.momentum'.low: a log-scale parameter needs low > 0, got 0.0",
        "params.'layers.fc.out_features'.choices: expected at least one value",
        "params.'sgd.epochs'.type: expected one of 'float', 'int', 'categorical', got string 'integer'",
        "params.'sgd.batch_size': with 0: sgd.batch_size: expected >= 1, got 0",
        "metric: expected one of 'val_acc', 'train_acc', got string 'test_acc'",
        "pruning.warmup_epoch: unknown key (did you mean 'warmup_epochs'?)",
        "pruning.startup_trials: expected >= 0, got -1",
    ):
        assert needle in text, (needle, text)


def test_a_study_runs_resumes_and_writes_the_best_spec(files, registry, capsys):
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out)]
    assert main([*argv, "--trials", "3"]) == 0
    trials = study_of(out).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    for t in trials:  # each trial is a run of the spec with its values; its value is the run's final val_acc
        run = out / f"trial_{t.number:04d}"
        spec = load_spec(run / "spec.toml", registry, against_data=False)
        assert spec.layers[0].hebbian.lr == pytest.approx(t.params["layers.conv1.hebbian.lr"])
        assert spec.layers[0].options.out_channels == t.params["layers.conv1.out_channels"]
        assert t.value == json.loads((run / "metrics.json").read_text())["final"]["val_acc"]
    best = max(trials, key=lambda t: t.value)
    spec = load_spec(out / "best.toml", registry, against_data=False)
    assert spec.sgd.lr == pytest.approx(best.params["sgd.lr"])
    printed = capsys.readouterr().out
    assert f"best trial {best.number}" in printed
    lines = [line for line in printed.splitlines() if ": trial " in line]  # one a trial, as it finishes
    assert [line.split(": trial ")[1].split()[:2] for line in lines] == [
        [str(t.number), f"{t.value:.4f}"] for t in trials
    ]
    assert main([*argv, "--trials", "4"]) == 0  # the same command continues the study to 4 trials
    assert [t.state.name for t in study_of(out).trials][:3] == ["COMPLETE"] * 3
    assert study_of(out).trials[3].state.name in ("COMPLETE", "PRUNED")  # the median pruner starts after 3
    params = [tuple(sorted(t.params.items())) for t in study_of(out).trials]
    assert len(set(params)) == 4  # the continued study draws new parameters, not the first trial's again
    rows = list(csv.reader((out / "trials.csv").open()))
    assert rows[0][:5] == ["number", "state", "value", "measured_epochs", "note"] and len(rows) == 5
    for row, t in zip(rows[1:], study_of(out).trials, strict=True):  # a pruned trial: its value and epochs run
        assert row[:5] == [str(t.number), t.state.name, repr(t.value), str(len(t.intermediate_values)), ""]
    best = max(study_of(out).trials, key=lambda t: t.value if t.state.name == "COMPLETE" else -1)
    ran = (out / f"trial_{best.number:04d}" / "spec.toml").read_text()
    assert (out / "best.toml").read_text().split("\n", 1)[1] == ran  # best.toml is the spec its trial ran


def test_a_trial_told_to_prune_stops_and_is_recorded(files, monkeypatch, capsys):
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out), "--trials", "2"]
    assert main(argv) == 1  # nothing completed: one line, no traceback
    assert "no trial completed" in capsys.readouterr().err
    trials = study_of(out).trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert list(trials[0].intermediate_values) == [1]  # stopped after its first reported epoch


@pytest.mark.parametrize(
    ("pruning", "epochs", "spared"),
    [("", 8, 2), ("", 2, 1), ("warmup_epochs = 0", 8, 0), ("warmup_epochs = 5", 8, 5), ('type = "none"', 8, 8)],
)
def test_a_trial_behind_the_median_is_pruned_only_after_the_warm_up(files, registry, pruning, epochs, spared):
    """Optuna's own study, fed by hand: three trials at 0.9 every epoch, then one at 0.1; the pruner spares it
    for the warm-up (default: a quarter of the spec's measured epochs, at least one) and stops it at the next
    epoch. The spec's Hebbian epoch measures nothing (its classifier is trained by SGD after it)."""
    from hebbcore.tune import load_space, make_pruner

    (files / "p.toml").write_text(f'[params."sgd.lr"]\ntype = "float"\nlow = 0.001\nhigh = 0.1\n[pruning]\n{pruning}\n')
    settings = (f"sgd.epochs={epochs}",)
    space = load_space(files / "p.toml", files / "s.toml", registry, settings)
    spec = load_spec(files / "s.toml", registry, against_data=False, overrides=list(settings))
    assert (spec.hebbian.epochs, spec.measured_epochs) == (1, epochs)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(space.pruning, spec))
    for _ in range(3):
        trial = study.ask()
        for step in range(1, epochs + 1):
            trial.report(0.9, step)
        study.tell(trial, 0.9)
    trial = study.ask()
    verdicts = []
    for step in range(1, epochs + 1):
        trial.report(0.1, step)
        verdicts.append(trial.should_prune())
    assert verdicts == [False] * spared + [True] * (epochs - spared)


def test_a_negative_seed_or_an_unknown_backend_is_one_line_before_any_trial(files, capsys):
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--trials", "1",
            "--out", str(files / "o")]  # fmt: skip
    assert main([*argv, "--seed", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "hebbcore: error: --seed: expected >= 0, got -1"
    assert main([*argv, "--backend", "nump"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hebbcore: error: unknown backend 'nump'") and "\n" not in err
    assert not (files / "o").exists()


def test_worker_processes_share_one_study(files):
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out)]
    assert main([*argv, "--trials", "4", "--workers", "2"]) == 0
    finished = [t for t in study_of(out).trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) >= 4  # each worker stops once 4 have finished (one may be running its last then)
    assert len({t.number for t in finished}) == len(finished)
    params = [tuple(sorted(t.params.items())) for t in study_of(out).trials]
    assert len(set(params)) == len(params)  # each worker samples from its own seed: no trial run twice


def test_a_trial_that_diverges_is_pruned_and_the_study_goes_on(files):
    (files / "hot.toml").write_text('[params."sgd.lr"]\ntype = "float"\nlow = 1e9\nhigh = 1e10\nlog = true\n')
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "hot.toml"), "--out", str(out), "--trials", "2"]
    assert main(argv) == 1  # nothing completed: said in one line
    trials = study_of(out).trials
    assert [t.state.name for t in trials] == ["PRUNED", "PRUNED"]
    assert all(t.user_attrs["note"].startswith("diverged:") and "NaN or inf" in t.user_attrs["note"] for t in trials)
    rows = list(csv.reader((out / "trials.csv").open()))  # written though nothing completed
    assert [row[4] for row in rows[1:]] == [t.user_attrs["note"] for t in trials]


def test_the_space_is_checked_with_the_settings_every_trial_gets(files, registry):
    from hebbcore.tune import load_space

    (files / "t.toml").write_text('[params."layers.conv1.hebbian.options.temperature"]\ntype = "float"\n'
                                  'low = 0.5\nhigh = 2.0\n')  # fmt: skip
    with pytest.raises(SpecError, match="unknown key"):  # wta has no temperature
        load_space(files / "t.toml", files / "s.toml", registry)
    space = load_space(files / "t.toml", files / "s.toml", registry, ("layers.conv1.hebbian.rule='softhebb'",
                       "layers.conv1.hebbian.aggregation='sum'", "layers.conv1.response='linear'"))  # fmt: skip
    assert list(space.params) == ["layers.conv1.hebbian.options.temperature"]


def test_a_train_accuracy_study_reports_every_epoch_to_the_pruner(files, registry, monkeypatch):
    """With ``metric = "train_acc"`` each epoch measures train accuracy (the default measures val only), so the
    pruner sees every epoch."""
    reported = []
    monkeypatch.setattr(optuna.trial.Trial, "report", lambda self, value, step: reported.append((step, value)))
    (files / "space.toml").write_text('metric = "train_acc"\n' + SPACE)
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out), "--trials", "1"]
    assert main(argv) == 0
    assert [step for step, _ in reported] == [1, 2]  # the two SGD epochs (the Hebbian one trains no classifier)
    assert load_spec(files / "s.toml", registry, against_data=False).measured_epochs == 2  # what the pruner counts
    epochs = json.loads((out / "trial_0000" / "metrics.json").read_text())["epochs"]
    assert [e["train_acc"] for e in epochs if e["phase"] == "sgd"] == [v for _, v in reported]


PROBE_SPEC = """
name = "tiny_tune"
phases = ["sgd"]
[data]
source = "synthetic"
[data.options]
n_train = 200
n_val = 80
n_test = 40
size = 8
n_classes = 4
[sgd]
epochs = 2
[[layers]]
name = "conv1"
type = "conv"
out_channels = 4
kernel_size = 3
train = "frozen"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "fc"
type = "linear"
out_features = 4
train = "sgd"
"""


def test_trials_of_a_probe_share_one_feature_cache(files, monkeypatch):
    """--feature-cache: the frozen layers' output is computed by the first trial and reused by the others."""
    from hebbcore.features import FeatureCache

    computed = []
    original = FeatureCache.features

    def counting(self, *args, **kwargs):
        hits = self.hits
        out = original(self, *args, **kwargs)
        computed.append(self.hits == hits)
        return out

    monkeypatch.setattr(FeatureCache, "features", counting)
    (files / "probe.toml").write_text(PROBE_SPEC)
    (files / "lr.toml").write_text('[params."sgd.lr"]\ntype = "float"\nlow = 0.001\nhigh = 0.1\n')
    out = files / "out"
    argv = ["tune", str(files / "probe.toml"), "--space", str(files / "lr.toml"), "--out", str(out), "--trials", "3"]
    assert main([*argv, "--feature-cache"]) == 0
    assert computed == [True, False, False]  # computed once, then two hits
    for t in study_of(out).trials:
        metrics = json.loads((out / f"trial_{t.number:04d}" / "metrics.json").read_text())
        assert metrics["feature_cache"]["trains_from"] == "fc" and t.value == metrics["final"]["val_acc"]


def test_the_workers_share_out_one_cache_budget():
    from hebbcore.features import feature_cache_bytes
    from hebbcore.tune import TuneJob, shared_cache_budget

    job = TuneJob(spec="s", space="p", out="o", storage="sqlite://", study="x", trials=1, feature_cache=True)
    assert shared_cache_budget(job, 3).feature_cache_bytes == feature_cache_bytes() // 3
    assert shared_cache_budget(job, 1).feature_cache_bytes == feature_cache_bytes()
    assert shared_cache_budget(job.__class__(**{**job.__dict__, "feature_cache": False}), 3).feature_cache_bytes == 0


def test_a_combination_of_values_that_gives_no_network_is_a_pruned_trial_and_the_study_goes_on(files, capsys):
    """Each value passes alone (checked up front); a 7x7 kernel on 4x4 images does not: that trial is recorded
    as infeasible, with why, and the others run."""
    (files / "k.toml").write_text('[params."layers.conv1.kernel_size"]\ntype = "categorical"\nchoices = [3, 7]\n'
                                  '[params."data.options.size"]\ntype = "categorical"\nchoices = [4, 8]\n'
                                  "[pruning]\ntype = 'none'\n")  # fmt: skip
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "k.toml"), "--out", str(out), "--trials", "6"]
    code = main(argv)
    printed = capsys.readouterr()
    trials = study_of(out).trials
    bad = [t for t in trials if t.params["layers.conv1.kernel_size"] == 7 and t.params["data.options.size"] == 4]
    good = [t for t in trials if t not in bad]
    assert bad and all(t.state.name == "PRUNED" and t.user_attrs["note"].startswith("infeasible:") for t in bad)
    assert "kernel" in bad[0].user_attrs["note"] and not (out / f"trial_{bad[0].number:04d}").exists()
    assert code == (0 if good else 1) and all(t.state.name == "COMPLETE" for t in good)
    assert "Traceback" not in printed.err and f"trial {bad[0].number} infeasible" in printed.out


def test_a_trial_is_not_pruned_at_its_last_epoch(monkeypatch):
    """A trial that has run every epoch completes, whatever the pruner would say then."""
    from hebbcore.tune import _Reporter

    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: True)
    study = optuna.create_study(direction="maximize")
    last = _Reporter(study.ask(), "val_acc", optuna.TrialPruned, last=2)
    last.hebbcore_epoch_end("run", {"val_acc": None})  # an epoch that does not measure it: not a step
    with pytest.raises(optuna.TrialPruned, match="pruned at epoch 1"):
        last.hebbcore_epoch_end("run", {"val_acc": 0.5})
    last.hebbcore_epoch_end("run", {"val_acc": 0.6})  # epoch 2 of 2: not pruned
    assert last.step == 2


def test_continuing_a_study_with_other_settings_is_refused(files, capsys):
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out), "--trials"]
    assert main([*argv, "1"]) == 0
    assert main([*argv, "2", "--set", "sgd.epochs=1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("hebbcore: error: study 'tiny_tune' was started with --set [], not ['sgd.epochs=1']; continue it "
                   "with those, or name a new --study")  # fmt: skip
    (files / "s.toml").write_text(SPEC.replace("epochs = 2", "epochs = 1"))
    assert main([*argv, "2"]) == 1
    assert "study 'tiny_tune' was started on another text of" in capsys.readouterr().err
    assert len(study_of(out).trials) == 1


def test_a_study_from_before_the_record_of_its_settings_continues_with_a_notice(files, capsys):
    out = files / "out"
    out.mkdir()
    old = optuna.create_study(study_name="tiny_tune", storage=f"sqlite:///{out / 'study.db'}", direction="maximize")
    old.enqueue_trial({"layers.conv1.hebbian.lr": 0.1, "sgd.lr": 0.01, "layers.conv1.out_channels": 3})
    trial = old.ask()
    for key, dist in (
        ("layers.conv1.hebbian.lr", optuna.distributions.FloatDistribution(0.01, 0.5, log=True)),
        ("sgd.lr", optuna.distributions.FloatDistribution(0.001, 0.1)),
        ("layers.conv1.out_channels", optuna.distributions.CategoricalDistribution([3, 5])),
    ):
        trial._suggest(key, dist)
    old.tell(trial, 0.5)  # fmt: skip
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out), "--trials", "2"]
    assert main(argv) == 0
    assert "study 'tiny_tune' predates the record of its spec and settings; it continues unchecked" in (
        capsys.readouterr().err
    )
    assert "settings" not in study_of(out).user_attrs  # what its first trial ran with is not known


def test_a_second_study_into_the_same_folder_is_refused(files, capsys):
    out = files / "out"
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(out), "--trials", "1"]
    assert main(argv) == 0
    (out / "trial_0000").rename(out / "trial_0001")  # trial 0 may have no folder (infeasible, or another machine)
    before = (out / "trial_0001" / "spec.toml").read_text()
    assert main([*argv, "--study", "other"]) == 1
    assert f"{out} holds the trials of study 'tiny_tune'" in capsys.readouterr().err
    assert (out / "trial_0001" / "spec.toml").read_text() == before


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("foo://bar", "foo://bar"),
        ("sqlite:////nonexistent/folder/x.db", "sqlite:////nonexistent/folder/x.db"),
        ("postgresql://al:s3cret@127.0.0.1:1/db", "postgresql://al:***@127.0.0.1:1/db"),
    ],
)
def test_a_storage_that_cannot_be_opened_is_one_line_without_its_password(files, capsys, url, shown):
    argv = ["tune", str(files / "s.toml"), "--space", str(files / "space.toml"), "--out", str(files / "o"),
            "--trials", "1", "--storage", url]  # fmt: skip
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hebbcore: error: cannot open the study's storage {shown} (") and "\n" not in err
    assert "s3cret" not in err
