"""hebbcore evaluate: a finished run's accuracies measured again from its files, and with mirror-averaged scores,
against the run's own final record and against the exported torch module."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hebbcore.errors import DataError, HebbcoreError
from hebbcore.evaluate import evaluate_run
from hebbcore.network import image_views, view_of
from hebbcore.runner import load_dataset, run
from hebbcore.spec import parse_spec

SPEC = {
    "name": "ev",
    "seed": 3,
    "phases": ["hebbian", "sgd"],
    "data": {"source": "synthetic", "options": {"n_train": 300, "n_val": 60, "n_test": 90, "size": 12}},
    "hebbian": {"epochs": 1, "batch_size": 30},
    "sgd": {"epochs": 2, "batch_size": 30, "hflip": True},
    "layers": [
        {"name": "conv1", "type": "conv", "out_channels": 8, "kernel_size": 3, "hebbian": {"rule": "wta"}},
        {"name": "pool1", "type": "pool", "kernel_size": 2},
        {"name": "bn1", "type": "batchnorm"},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
    ],
}


@pytest.fixture(scope="module")
def finished(tmp_path_factory, registry):
    out = tmp_path_factory.mktemp("run")
    spec = parse_spec(SPEC, registry)
    result = run(spec, registry, out_dir=out, progress=False)
    return out, result.metrics, spec


def test_evaluate_measures_what_the_run_recorded(finished, registry):
    out, metrics, _ = finished
    got = evaluate_run(out, registry, splits=("val", "test"))
    assert got["test"] == {"images": 90, "accuracy": pytest.approx(metrics["final"]["test_acc"], abs=1e-12)}
    assert got["val"]["accuracy"] == pytest.approx(metrics["final"]["val_acc"], abs=1e-12)


def test_mirror_averaged_scores_equal_the_torch_modules(finished, registry):
    torch = pytest.importorskip("torch")
    from hebbcore.torch_model import load_run

    out, _, spec = finished
    got = evaluate_run(out, registry, splits=("test",), mirror=True)["test"]
    test = load_dataset(spec, registry).test
    module = load_run(str(out), registry).eval()
    with torch.no_grad():
        x = torch.from_numpy(test.x)
        scores = module(x) + module(torch.flip(x, dims=(-1,)))
    expected = float((scores.argmax(1).numpy() == test.y).mean())
    assert got["mirror_averaged_accuracy"] == pytest.approx(expected, abs=1e-12)


def _reflect(k: np.ndarray, n: int) -> np.ndarray:
    """numpy's ``reflect`` padding as an index map: -1 -> 1, n -> n - 2 (one reflection suffices here)."""
    return np.where(k < 0, -k, np.where(k >= n, 2 * (n - 1) - k, k))


def test_views_are_the_mirror_images_and_reflected_translations():
    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    views = image_views(True, 1)
    assert len(set(views)) == 10 and views[0] == (False, 0, 0) and (True, 0, 0) in views
    assert image_views(False, 0) == [(False, 0, 0)] and len(image_views(False, 2)) == 5
    for mirrored, dy, dx in views:
        src = x[..., ::-1] if mirrored else x
        rows, cols = _reflect(np.arange(5) - dy, 5), _reflect(np.arange(4) - dx, 4)  # content moves by (dy, dx)
        np.testing.assert_array_equal(view_of(x, (mirrored, dy, dx)), src[:, :, rows][:, :, :, cols])
    with pytest.raises(HebbcoreError, match="a shift by 5 pixels needs images larger than 5x4"):
        view_of(x, (False, 5, 0))


def test_view_averaged_scores_equal_the_torch_modules(finished, registry):
    """10 views (mirror x the image and its four 1-pixel translations), summed scores, against the exported
    torch module on views built by index maps."""
    torch = pytest.importorskip("torch")
    from hebbcore.torch_model import load_run

    out, metrics, spec = finished
    got = evaluate_run(out, registry, splits=("test",), mirror=True, shift=1)["test"]
    assert got["views"] == 10 and got["accuracy"] == pytest.approx(metrics["final"]["test_acc"], abs=1e-12)
    test = load_dataset(spec, registry).test
    module = load_run(str(out), registry).eval()
    h, w = test.x.shape[-2:]
    total = 0
    with torch.no_grad():
        for mirrored in (False, True):
            src = test.x[..., ::-1] if mirrored else test.x
            for dy, dx in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
                v = src[:, :, _reflect(np.arange(h) - dy, h)][:, :, :, _reflect(np.arange(w) - dx, w)]
                total = total + module(torch.from_numpy(np.ascontiguousarray(v)))
    expected = float((total.argmax(1).numpy() == test.y).mean())
    assert got["views_averaged_accuracy"] == pytest.approx(expected, abs=1e-12)
    assert (
        got["mirror_averaged_accuracy"] == evaluate_run(out, registry, mirror=True)["test"]["mirror_averaged_accuracy"]
    )


def test_the_view_sets_script_reads_the_same_scores(finished, registry):
    """experiments/presets/view_sets.py (the lab's choice of views) agrees with evaluate on the shared set."""
    out, metrics, _ = finished
    res = subprocess.run(
        [sys.executable, "experiments/presets/view_sets.py", str(out), "--split", "test", "--backend", "numpy"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    rows = dict(re.findall(r"^\| (.+?) \| \d+ \| ([\d.]+) \|$", res.stdout, re.M))
    assert float(rows["plain"]) == pytest.approx(100 * metrics["final"]["test_acc"], abs=0.006)
    views = evaluate_run(out, registry, mirror=True, shift=1)["test"]
    assert float(rows["mirror"]) == pytest.approx(100 * views["mirror_averaged_accuracy"], abs=0.006)
    assert float(rows["mirror x (itself, 1 px both axes)"]) == pytest.approx(
        100 * views["views_averaged_accuracy"], abs=0.006
    )
    assert len(rows) == 6


def test_the_command_prints_writes_json_and_leaves_the_run_as_it_was(finished, tmp_path):
    out, metrics, _ = finished
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    res = subprocess.run(
        [sys.executable, "-m", "hebbcore.cli", "evaluate", str(out), "--split", "val,test", "--hflip", "--shift", "1",
         "--json", str(tmp_path / "ev.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert lines[1].startswith(f"test: {100 * metrics['final']['test_acc']:.2f} % of 90 images; mirror-averaged")
    saved = json.loads((tmp_path / "ev.json").read_text())
    assert saved["splits"]["test"]["images"] == 90 and "mirror_averaged_accuracy" in saved["splits"]["val"]
    assert re.search(r"; averaged over 10 views: [\d.]+ %$", lines[1]) and saved["splits"]["val"]["views"] == 10
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    assert "no finished record" not in res.stderr


def test_the_command_keeps_freed_buffers_as_run_does(finished):
    """evaluate tunes malloc (without it a long torch-CPU evaluation fragmented the heap to 23 GB)."""
    out, _, _ = finished
    code = (
        "import sys; from hebbcore import allocator, cli; rc = cli.main(['evaluate', sys.argv[1]]); "
        "print(rc, allocator.malloc_tuning()['applied'])"
    )
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == ("0 True" if sys.platform.startswith("linux") else "0 False")


def test_an_unfinished_run_is_evaluated_and_said_to_be_unfinished(finished, tmp_path):
    import shutil

    out, _, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**metrics, "final": None}))  # as a run cut short leaves it
    res = subprocess.run([sys.executable, "-m", "hebbcore.cli", "evaluate", str(copy)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == f"hebbcore: {copy} has no finished record; these are the weights it last saved"
    assert res.stdout.startswith("test: ")


def test_a_run_whose_initial_weights_file_is_gone_is_evaluated(finished, tmp_path, registry):
    import shutil

    out, metrics, _ = finished
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    text = (copy / "spec.toml").read_text()
    assert 'init_weights = ""' in text
    (copy / "spec.toml").write_text(text.replace('init_weights = ""', f'init_weights = "{tmp_path / "gone.npz"}"'))
    assert evaluate_run(copy, registry)["test"]["accuracy"] == pytest.approx(metrics["final"]["test_acc"], abs=1e-12)


def test_bad_requests_are_one_line(finished, tmp_path, registry):
    out, _, _ = finished
    with pytest.raises(DataError, match="has no spec.toml and no weights.npz; evaluate needs"):
        evaluate_run(tmp_path, registry)
    (tmp_path / "spec.toml").write_text("")
    with pytest.raises(DataError, match=r"has no weights.npz; .*committed results keep no weights"):
        evaluate_run(tmp_path, registry)
    (tmp_path / "spec.toml").unlink()
    with pytest.raises(HebbcoreError, match="splits: expected some of train, val, test, got tset"):
        evaluate_run(out, registry, splits=("tset",))
    vectors = tmp_path / "vec"
    vectors.mkdir()
    x = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    np.savez(vectors / "d.npz", x=x, y=np.arange(40) % 2)
    table = {
        "phases": ["sgd"],
        "data": {"source": "npz", "options": {"path": str(vectors / "d.npz")}},
        "sgd": {"epochs": 1},
        "layers": [{"name": "fc", "type": "linear", "out_features": 2, "train": "sgd"}],
    }
    run(parse_spec(table, registry), registry, out_dir=vectors / "run", progress=False)
    with pytest.raises(HebbcoreError, match=r"augmentation \(--hflip, --shift\): the network's inputs must be images"):
        evaluate_run(vectors / "run", registry, mirror=True)
    with pytest.raises(HebbcoreError, match="shift: expected a number of pixels >= 0, got -1"):
        evaluate_run(out, registry, shift=-1)
    with pytest.raises(
        HebbcoreError, match=r"shift: expected fewer pixels than the images' height and width \(12x12\)"
    ):
        evaluate_run(out, registry, shift=12)
