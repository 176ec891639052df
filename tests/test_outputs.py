"""Outputs people look at: CSV log, confusion matrix, plots, TensorBoard."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO


def run_tiny(out, *extra):
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "hebbcore.cli",
            "run",
            str(REPO / "examples" / "tiny.toml"),
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return json.loads((out / "metrics.json").read_text())


def test_csv_confusion_and_plots(tmp_path):
    pytest.importorskip("matplotlib", reason="plots need matplotlib")
    metrics = run_tiny(tmp_path / "r")
    rows = list(csv.DictReader((tmp_path / "r" / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[-1]["val_acc"]) == metrics["epochs"][-1]["val_acc"]
    cm = np.array(metrics["final"]["confusion"])
    assert cm.shape == (10, 10) and cm.sum() == metrics["n_test"]
    assert np.trace(cm) / cm.sum() == pytest.approx(metrics["final"]["test_acc"])
    for name in ("kernels_conv1.png", "learning_curves.png", "confusion.png"):
        data = (tmp_path / "r" / "plots" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    (tmp_path / "r" / "plots" / "confusion.png").unlink()
    res = subprocess.run(
        [sys.executable, "-m", "hebbcore.cli", "plot", str(tmp_path / "r")], capture_output=True, text=True
    )
    assert res.returncode == 0 and (tmp_path / "r" / "plots" / "confusion.png").is_file()


def test_kernel_grid_layout():
    from hebbcore.plots import kernel_grid

    w = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    img = kernel_grid(w, cols=3, pad=1)
    assert img.shape == (2 * 5 + 1, 3 * 5 + 1, 3) and img.min() >= 0 and img.max() <= 1
    k0 = img[1:5, 1:5]
    assert k0.min() == 0 and k0.max() == 1  # each kernel scaled on its own


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard", reason="the optional tensorboard package is not installed")
    run_tiny(tmp_path / "r", "--tensorboard")
    assert list((tmp_path / "r" / "tensorboard").glob("events.out.tfevents.*"))


def test_train_accuracy_on_a_sample_per_epoch(registry, tmp_path):
    """``train_acc_images`` evaluates each epoch's train accuracy on the first N images, and the final one with the
    last phase's N."""
    pytest.importorskip("torch", reason="the SGD phase needs torch")
    from hebbcore.runner import run
    from hebbcore.spec import parse_spec

    table = {
        "seed": 0,
        "data": {"source": "synthetic", "options": {"n_train": 200, "n_val": 40, "n_test": 40, "size": 8}},
        "hebbian": {"epochs": 1, "train_acc_images": 7, "evaluate": ["train"]},
        "sgd": {"epochs": 2, "train_acc_images": 9, "evaluate": ["train", "val"]},
        "layers": [
            {"name": "c1", "type": "conv", "out_channels": 8, "kernel_size": 3, "hebbian": {"rule": "wta"}},
            {"name": "flat", "type": "flatten"},
            {"name": "clf", "type": "linear", "out_features": 10, "train": "sgd"},
        ],
    }
    metrics = run(parse_spec(table, registry), registry, out_dir=tmp_path / "r", progress=False).metrics
    hebb, *sgd = metrics["epochs"]
    # the SGD classifier is untrained after the Hebbian epoch: no evaluation pass is spent on it
    assert hebb["train_acc"] is None and hebb["val_acc"] is None and hebb["test_acc"] is None
    assert [e["train_acc_images"] for e in sgd] == [9, 9]
    assert all(round(e["train_acc"] * 9, 6).is_integer() for e in sgd)
    assert metrics["final"]["train_acc_images"] == 9 and round(metrics["final"]["train_acc"] * 9, 6).is_integer()
    table["layers"][2] = {"name": "clf", "type": "linear", "out_features": 10, "hebbian": {"rule": "teacher"}}
    hebbian_only = run(parse_spec(table, registry), registry, out_dir=tmp_path / "h", progress=False).metrics
    (hebb,) = hebbian_only["epochs"]
    assert hebb["train_acc_images"] == 7 and round(hebb["train_acc"] * 7, 6).is_integer()
    assert hebbian_only["final"]["train_acc_images"] == 7  # no SGD layer: the Hebbian phase was the last
    table["hebbian"] = {"epochs": 1, "evaluate": ["train"]}  # no limit: the final train accuracy is over all 200 images
    whole = run(parse_spec(table, registry), registry, out_dir=tmp_path / "w", progress=False).metrics["final"]
    assert "train_acc_images" not in whole and round(whole["train_acc"] * 200, 6).is_integer()
    with pytest.raises(Exception, match="sgd.train_acc_images: expected >= 0"):
        parse_spec({**table, "sgd": {"train_acc_images": -1}}, registry)


def test_each_epoch_measures_the_splits_the_spec_asks_for(registry, tmp_path):
    """``evaluate`` picks the splits an epoch's record measures (val by default, train when there is no val
    split); the final record measures all three, and its test accuracy is recomputed from the weights."""
    pytest.importorskip("torch", reason="the SGD phase needs torch")
    from hebbcore.network import Network
    from hebbcore.runner import load_dataset, run
    from hebbcore.spec import epoch_splits, parse_spec

    assert epoch_splits(("val",), has_val=True) == {"val"} and epoch_splits(("val",), has_val=False) == {"val", "train"}
    assert epoch_splits(("test",), has_val=False) == {"test"}
    table = {
        "seed": 0,
        "data": {"source": "synthetic", "options": {"n_train": 120, "n_val": 30, "n_test": 30, "size": 8}},
        "hebbian": {"epochs": 1},
        "sgd": {"epochs": 2},
        "layers": [
            {"name": "c1", "type": "conv", "out_channels": 8, "kernel_size": 3, "hebbian": {"rule": "wta"}},
            {"name": "flat", "type": "flatten"},
            {"name": "clf", "type": "linear", "out_features": 10, "train": "sgd"},
        ],
    }
    measured = {}
    for name, evaluate, n_val in (("default", None, 30), ("all", ["train", "val", "test"], 30), ("noval", None, 0)):
        t = {**table, "sgd": {"epochs": 2, **({"evaluate": evaluate} if evaluate else {})}}
        t["data"] = {"source": "synthetic", "options": {**table["data"]["options"], "n_val": n_val}}
        result = run(parse_spec(t, registry), registry, out_dir=tmp_path / name, progress=False)
        sgd = [e for e in result.metrics["epochs"] if e["phase"] == "sgd"]
        measured[name] = {k for k in ("train_acc", "val_acc", "test_acc") if sgd[-1][k] is not None}
        final = result.metrics["final"]
        assert final["train_acc"] is not None and final["test_acc"] is not None
        spec = parse_spec(t, registry)
        data = load_dataset(spec, registry)
        net = Network(spec, data.input_shape, data.n_classes, registry.get("backend", "numpy")(), registry)
        net.load_state_dict(dict(np.load(tmp_path / name / "weights.npz")), source="weights.npz")
        assert final["test_acc"] == pytest.approx(float((net.predict(data.test.x) == data.test.y).mean()), abs=1e-9)
    assert measured == {"default": {"val_acc"}, "all": {"train_acc", "val_acc", "test_acc"}, "noval": {"train_acc"}}
    with pytest.raises(Exception, match="evaluate"):
        parse_spec({**table, "sgd": {"evaluate": ["tets"]}}, registry)
    for evaluate in (["test"], ["train"]):  # keep_best ranks by val (by train only when there is no val split)
        with pytest.raises(Exception, match=r"sgd.evaluate: keep_best ranks the epochs by their val accuracy"):
            parse_spec({**table, "sgd": {"epochs": 1, "evaluate": evaluate}}, registry)
    assert parse_spec({**table, "sgd": {"epochs": 0, "evaluate": ["test"]}}, registry)  # no SGD epoch: no ranking
    assert parse_spec({**table, "sgd": {"evaluate": ["test"], "keep_best": False}}, registry).sgd.evaluate == ("test",)
