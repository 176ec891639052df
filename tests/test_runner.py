"""The runner's SGD-phase data: label-scarce subsets and random crops (seeded, resumable), per-epoch lines."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hebbcore.errors import HebbcoreError
from hebbcore.interfaces import Dataset, Split
from hebbcore.rundir import RunDir
from hebbcore.runner import label_subset, load_dataset, run
from hebbcore.spec import loads_spec

torch = pytest.importorskip("torch", reason="the SGD phase needs torch")

SPEC = """
name = "probe"
seed = 4
[data]
source = "synthetic"
[data.options]
n_train = 300
n_val = 40
n_test = 40
size = 10
n_classes = 5
[hebbian]
epochs = 1
batch_size = 32
[sgd]
epochs = 2
batch_size = 16
lr = 0.05
{sgd}
[[layers]]
name = "conv1"
type = "conv"
out_channels = 6
kernel_size = 3
[layers.hebbian]
rule = "wta"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "fc"
type = "linear"
out_features = 5
train = "sgd"
"""


def test_label_subset_is_stratified_and_seeded():
    y = np.repeat(np.arange(4), [10, 20, 3, 7])
    idx = label_subset(y, 4, per_class=5, fraction=0.0, seed=1)
    assert np.bincount(y[idx], minlength=4).tolist() == [5, 5, 3, 5]  # a class smaller than N gives all it has
    assert np.array_equal(idx, np.sort(idx)) and len(set(idx)) == len(idx)
    assert np.array_equal(idx, label_subset(y, 4, 5, 0.0, seed=1))
    assert not np.array_equal(idx, label_subset(y, 4, 5, 0.0, seed=2))
    frac = label_subset(y, 4, 0, 0.1, seed=1)
    assert np.bincount(y[frac], minlength=4).tolist() == [1, 2, 1, 1]  # round(0.1·n), at least one


def test_a_label_scarce_probe_trains_on_the_subset_only(tmp_path, registry, monkeypatch):
    import hebbcore.sgd as tm

    seen = {}
    original = tm.SgdPhase.__init__

    def spy(self, net, data, *a, **k):
        seen["labels"] = data.train.y.copy()
        original(self, net, data, *a, **k)

    monkeypatch.setattr(tm.SgdPhase, "__init__", spy)
    spec = loads_spec(SPEC.format(sgd="labels_per_class = 4"), registry)
    result = run(spec, registry, out_dir=tmp_path, progress=False)
    assert np.bincount(seen["labels"], minlength=5).tolist() == [4] * 5
    rec = result.metrics["sgd_labels"]
    assert rec["per_class"] == 4 and rec["images"] == 20 and rec["seed"] == 4 and len(rec["indices_sha256"]) == 64
    assert result.metrics["n_train"] == 300  # the Hebbian phase saw every image
    # the final train accuracy is the epochs' one: on the 20 labelled images, not on all 300
    idx = label_subset(load_dataset(spec, registry).train.y, 5, 4, 0.0, seed=4)
    train = load_dataset(spec, registry).train
    expected = float((result.network.predict(train.x[idx]) == train.y[idx]).mean())
    assert result.metrics["final"]["train_acc"] == expected


def test_a_label_scarce_probe_names_the_classes_smaller_than_asked(tmp_path, registry, capsys):
    spec = loads_spec(SPEC.format(sgd="labels_per_class = 60"), registry)
    counts = np.bincount(load_dataset(spec, registry).train.y, minlength=5)
    short = {c: int(n) for c, n in enumerate(counts) if n < 60}
    assert short and len(short) < 5  # the synthetic source's 300 images: some classes above 60, some below
    result = run(spec, registry, out_dir=tmp_path, progress=None)
    rec = result.metrics["sgd_labels"]
    assert rec["short_classes"] == {str(c): n for c, n in short.items()}  # as metrics.json holds it
    assert json.loads((tmp_path / "metrics.json").read_text())["sgd_labels"] == rec
    assert rec["images"] == sum(min(60, int(n)) for n in counts)
    err = capsys.readouterr().err
    assert "sgd.labels_per_class = 60" in err and f"class {min(short)}: {short[min(short)]}" in err


def crop_reference(x, offsets, p):
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    h, w = x.shape[2:]
    return np.stack([padded[i, :, t : t + h, s : s + w] for i, (t, s) in enumerate(offsets)])


def test_random_crops_match_a_loop():
    from hebbcore.sgd import random_crops

    x = np.random.default_rng(0).normal(size=(6, 3, 7, 5)).astype(np.float32)
    offsets = np.random.default_rng(1).integers(0, 7, size=(6, 2))
    got = random_crops(torch.from_numpy(x), torch.from_numpy(offsets), 3).numpy()
    np.testing.assert_array_equal(got, crop_reference(x, offsets, 3))


class Stop(BaseException):
    pass


def test_random_crops_are_seeded_and_resume_exactly(tmp_path, registry, monkeypatch):
    spec = loads_spec(SPEC.format(sgd="crop_padding = 2"), registry)
    plain = run(loads_spec(SPEC.format(sgd=""), registry), registry, out_dir=tmp_path / "plain", progress=False)
    a = run(spec, registry, out_dir=tmp_path / "a", progress=False)
    assert not np.allclose(a.network.state_dict()["fc.weight"], plain.network.state_dict()["fc.weight"])
    original = RunDir.save_checkpoint
    saves = {"n": 0}

    def stop_in_the_sgd_phase(self, *args):
        original(self, *args)
        saves["n"] += 1
        if saves["n"] == 4:  # hebbian epoch end, phase end, then SGD mid-epoch checkpoints
            raise Stop

    monkeypatch.setattr(RunDir, "save_checkpoint", stop_in_the_sgd_phase)
    with pytest.raises(Stop):
        run(spec, registry, out_dir=tmp_path / "b", progress=False, checkpoint_every=5)
    monkeypatch.setattr(RunDir, "save_checkpoint", original)
    b = run(spec, registry, out_dir=tmp_path / "b", progress=False, checkpoint_every=5, resume=True)
    for k, v in a.network.state_dict().items():
        np.testing.assert_array_equal(b.network.state_dict()[k], v, err_msg=k)


def test_crops_need_images(tmp_path, registry):
    empty = Split(np.zeros((0, 10), np.float32), np.zeros(0, np.int64))
    flat = Dataset("flat", Split(np.zeros((20, 10), np.float32), np.arange(20) % 5), empty, empty, 5)
    spec = loads_spec(
        SPEC.format(sgd="crop_padding = 2").split("[[layers]]")[0]
        + '[[layers]]\nname = "fc"\ntype = "linear"\nout_features = 5\ntrain = "sgd"\n',
        registry,
    )
    with pytest.raises(HebbcoreError, match="sgd.crop_padding: the SGD phase's inputs must be images"):
        run(spec, registry, out_dir=tmp_path, progress=False, dataset=flat)


def test_the_final_evaluation_measures_what_the_spec_asks_each_split_once(tmp_path, registry, monkeypatch):
    """The final train accuracy is over the last phase's train_acc_images (as its epochs were), and the test
    split's predictions serve both its accuracy and the confusion matrix."""
    from hebbcore.network import Network

    calls = []
    original = Network.predict
    monkeypatch.setattr(Network, "predict", lambda self, x, *a, **k: calls.append(len(x)) or original(self, x, *a, **k))
    spec = loads_spec(SPEC.format(sgd="train_acc_images = 50"), registry)
    result = run(spec, registry, out_dir=tmp_path, progress=False)
    final = result.metrics["final"]
    assert final["train_acc_images"] == 50
    assert sorted(calls) == [40, 40, 50], calls  # val, test, train head: once each (epochs evaluate via torch)
    cm = np.array(final["confusion"])
    assert cm.sum() == 40 and final["test_acc"] == pytest.approx(np.trace(cm) / 40)


def test_the_final_train_accuracy_follows_the_phase_that_ran_last(tmp_path, registry):
    spec = loads_spec(SPEC.format(sgd="train_acc_images = 50"), registry)
    import dataclasses

    spec = dataclasses.replace(spec, phases=("sgd", "hebbian"),
                               hebbian=dataclasses.replace(spec.hebbian, train_acc_images=30))  # fmt: skip
    final = run(spec, registry, out_dir=tmp_path, progress=False).metrics["final"]
    assert final["train_acc_images"] == 30  # the Hebbian phase ran last


@pytest.mark.parametrize(("phases", "expected"), [(("hebbian", "sgd"), 2), (("hebbian",), 3), (("sgd", "hebbian"), 2)])
def test_the_measured_epochs_are_those_whose_records_hold_accuracies(tmp_path, registry, phases, expected):
    """RunSpec.measured_epochs, which a tuning trial's pruner counts, against a run's records (3 Hebbian epochs,
    2 SGD ones): a Hebbian epoch measures nothing when the spec's SGD phase trains the classifier."""
    import dataclasses

    spec = loads_spec(SPEC.format(sgd=""), registry)
    spec = dataclasses.replace(spec, phases=phases, hebbian=dataclasses.replace(spec.hebbian, epochs=3))
    epochs = run(spec, registry, out_dir=tmp_path, progress=False).metrics["epochs"]
    assert len([e for e in epochs if e["val_acc"] is not None]) == spec.measured_epochs == expected


def test_an_all_hebbian_network_measures_only_its_hebbian_epochs(tmp_path, registry):
    """Its SGD phase has nothing to train and does not run, so its epochs measure nothing."""
    from conftest import REPO

    from hebbcore.spec import load_spec

    spec = load_spec(REPO / "examples" / "tiny.toml", registry,
                     overrides=["data.options.n_train=100", "sgd.epochs=3", "hebbian.epochs=2"])  # fmt: skip
    epochs = run(spec, registry, out_dir=tmp_path, progress=False).metrics["epochs"]
    assert len([e for e in epochs if e["val_acc"] is not None]) == spec.measured_epochs == 2


def test_a_checkpoint_recorded_by_an_older_hebbcore_still_matches_its_spec(registry):
    """Recorded specs lack the keys later versions added (a relu's power): filled in, they compare equal."""
    from hebbcore.runner import _resolved
    from hebbcore.spec import parse_spec, spec_to_table

    spec = parse_spec({"layers": [{"name": "c", "type": "conv", "out_channels": 2, "kernel_size": 3},
                                  {"name": "r", "type": "relu"}]}, registry)  # fmt: skip
    old = spec_to_table(spec)
    del old["layers"][1]["power"]
    assert old != spec_to_table(spec) and _resolved(old, registry) == spec_to_table(spec)


def test_the_kept_epoch_is_recorded_and_is_the_best_validation_one(tmp_path, registry):
    spec = loads_spec(
        SPEC.replace("epochs = 2\nbatch_size = 16", "epochs = 4\nbatch_size = 16").format(sgd=""), registry
    )
    result = run(spec, registry, out_dir=tmp_path, progress=False)
    sgd = [r for r in result.metrics["epochs"] if r["phase"] == "sgd"]
    best = max(sgd, key=lambda r: r["val_acc"])  # the first of equals, as keep_best keeps it
    assert result.metrics["sgd_kept_epoch"] == best["epoch"]
    assert result.metrics["final"]["val_acc"] == best["val_acc"]  # the final record measures the kept weights
