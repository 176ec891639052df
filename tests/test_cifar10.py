"""The ``cifar10`` data source: the official python layout, its errors, the download and checksum.

The real-data tests read ``$HEBBCORE_CIFAR10`` (else ``../shared/data/cifar-10-batches-py``
next to the repository) and skip with the reason when neither exists.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from hebbcore.errors import DataError
from hebbcore.spec import dumps_toml
from hebbcore_plugins.data import cifar10 as c10

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = REPO.parent / "shared" / "data" / "cifar-10-batches-py"


def real_root() -> Path | None:
    env = os.environ.get("HEBBCORE_CIFAR10")
    if env:
        return Path(env)
    return DEFAULT_REAL if DEFAULT_REAL.is_dir() else None


REAL = real_root()
needs_real = pytest.mark.skipif(
    REAL is None, reason=f"no real CIFAR-10: $HEBBCORE_CIFAR10 is unset and {DEFAULT_REAL} does not exist"
)


def small_options(**kw) -> c10.Cifar10Options:
    return c10.Cifar10Options(**{"root": str(REAL), **kw})


# ------------------------------------------------------------------------------------------- real data


@needs_real
def test_real_small_load_and_known_values():
    d = c10.Cifar10().load(small_options(n_train=300, n_val=50, n_test=20), seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (300, 50, 20)
    assert d.train.x.shape == (300, 3, 32, 32) and d.train.x.dtype == np.float32
    assert d.train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert d.test.y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert np.allclose(d.train.x[0].reshape(-1)[:3] * 255, [59, 43, 50], atol=1e-3)
    assert d.train.x.min() >= 0.0 and d.train.x.max() <= 1.0
    assert d.n_classes == 10 and d.class_names[0] == "airplane"


@needs_real
def test_real_train_split_moves_the_validation_boundary():
    """train_split = 50000: all training images train, no validation; 45000: the last 5000 validate."""
    import dataclasses

    full = c10.Cifar10().load(dataclasses.replace(small_options(), train_split=50000, n_test=-1), seed=0)
    assert (len(full.train), len(full.val), len(full.test)) == (50000, 0, 0)
    part = c10.Cifar10().load(dataclasses.replace(small_options(), train_split=45000, n_test=-1), seed=0)
    assert (len(part.train), len(part.val)) == (45000, 5000)
    np.testing.assert_array_equal(part.val.y, full.train.y[45000:])
    np.testing.assert_array_equal(part.train.x[:10], full.train.x[:10])
    with pytest.raises(DataError, match="train_split: expected 1..50000"):
        c10.Cifar10().load(dataclasses.replace(small_options(), train_split=60000), seed=0)


@needs_real
def test_real_full_split_sizes():
    d = c10.Cifar10().load(small_options(), seed=0)
    assert (len(d.train), len(d.val), len(d.test)) == (40000, 10000, 10000)
    counts = np.bincount(np.concatenate([d.train.y, d.val.y]), minlength=10)
    assert counts.tolist() == [5000] * 10  # 50,000 training images, 5,000 per class
    # the last three labels of data_batch_1 (rows 9997..9999) are 1 1 5
    assert d.train.y[9997:10000].tolist() == [1, 1, 5]
    # the official per-channel mean of the 50k, recomputed on train + val
    mean = np.concatenate([d.train.x, d.val.x]).mean(axis=(0, 2, 3), dtype=np.float64)
    assert np.allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-4)


@needs_real
def test_real_env_var_and_parent_folder(monkeypatch):
    monkeypatch.setenv("HEBBCORE_CIFAR10", str(REAL.parent))  # the folder that holds cifar-10-batches-py
    d = c10.Cifar10().load(c10.Cifar10Options(n_train=5, n_val=-1, n_test=-1), seed=0)
    assert d.train.y.tolist() == [6, 9, 9, 4, 1] and len(d.val) == 0 and len(d.test) == 0


@needs_real
def test_real_hebbian_run_end_to_end_through_cli(tmp_path, monkeypatch):
    """A short Hebbian run on a few hundred real images, through the `hebbcore run` command line."""
    from hebbcore.cli import main

    monkeypatch.setenv("HEBBCORE_CIFAR10", str(REAL))
    spec = {
        "name": "cifar_smoke",
        "seed": 0,
        "data": {
            "source": "cifar10",
            "options": {"n_train": 400, "n_val": 100, "n_test": 100},
            "transforms": [{"name": "normalize"}],
        },
        "hebbian": {"epochs": 1, "batch_size": 64},
        "layers": [
            {
                "name": "conv1",
                "type": "conv",
                "out_channels": 16,
                "kernel_size": 5,
                "hebbian": {"rule": "wta", "lr": 0.1},
            },
            {"name": "pool1", "type": "pool", "kernel_size": 4},
            {"name": "bn1", "type": "batchnorm"},
            {"name": "flat", "type": "flatten"},
            {"name": "clf", "type": "linear", "out_features": 10, "hebbian": {"rule": "teacher", "lr": 0.1}},
        ],
    }
    path = tmp_path / "smoke.toml"
    path.write_text(dumps_toml(spec))
    out = tmp_path / "run"
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["dataset"] == "cifar10" and (m["n_train"], m["n_val"], m["n_test"]) == (400, 100, 100)
    assert m["epochs"][0]["phase"] == "hebbian"
    # the recorded accuracy is that of the saved weights on the first 100 official test images
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry
    from hebbcore.runner import load_dataset
    from hebbcore.spec import load_spec

    registry = default_registry()
    resolved = load_spec(out / "spec.toml", registry)
    data = load_dataset(resolved, registry)
    net = Network(resolved, data.input_shape, 10, registry.get("backend", "numpy")(), registry)
    net.load_state_dict(dict(np.load(out / "weights.npz")), strict=True)
    assert m["final"]["test_acc"] == pytest.approx(float((net.predict(data.test.x) == data.test.y).mean()))
    assert m["final"]["test_acc"] > 0.1  # above chance (10 classes): the layers learned something


# ------------------------------------------------------------------------------------------- errors


def write_batch(path: Path, n: int = 10000, data=None, labels=None) -> None:
    rng = np.random.default_rng(0)
    d = {
        b"batch_label": b"fake",
        b"labels": list(rng.integers(0, 10, n)) if labels is None else labels,
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8) if data is None else data,
    }
    path.write_bytes(pickle.dumps(d, protocol=2))


def test_missing_folder_names_it(tmp_path):
    where = tmp_path / "nowhere"
    with pytest.raises(DataError) as err:
        c10.Cifar10().load(c10.Cifar10Options(root=str(where)), seed=0)
    msg = str(err.value)
    assert "nowhere" in msg and "HEBBCORE_CIFAR10" in msg and "\n" not in msg


def test_env_var_is_used_when_no_root(tmp_path, monkeypatch):
    monkeypatch.setenv("HEBBCORE_CIFAR10", str(tmp_path / "from-env"))
    with pytest.raises(DataError, match="from-env"):
        c10.Cifar10().load(c10.Cifar10Options(), seed=0)


def test_truncated_file_names_it(tmp_path):
    folder = tmp_path / c10.FOLDER
    folder.mkdir()
    write_batch(folder / "data_batch_1")
    raw = (folder / "data_batch_1").read_bytes()
    (folder / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match=r"data_batch_1.*truncated"):
        c10.Cifar10().load(c10.Cifar10Options(root=str(tmp_path), n_train=10, n_val=-1, n_test=-1), seed=0)


def test_wrong_shape_and_missing_batch(tmp_path):
    folder = tmp_path / c10.FOLDER
    folder.mkdir()
    write_batch(folder / "data_batch_1", n=10, data=np.zeros((10, 100), np.uint8))
    with pytest.raises(DataError, match=r"data_batch_1.*uint8 \(N, 3072\)"):
        c10.Cifar10().load(c10.Cifar10Options(root=str(folder), n_train=10, n_val=-1, n_test=-1), seed=0)
    write_batch(folder / "data_batch_1")  # good now; the test batch is missing
    with pytest.raises(DataError, match=r"test_batch.*does not exist"):
        c10.Cifar10().load(c10.Cifar10Options(root=str(folder), n_train=10, n_val=-1, n_test=5), seed=0)
    d = c10.Cifar10().load(c10.Cifar10Options(root=str(folder), n_train=10, n_val=-1, n_test=-1), seed=0)
    assert d.train.x.shape == (10, 3, 32, 32)


def test_batches_in_a_folder_of_another_name_are_found_and_a_missing_test_batch_is_named(tmp_path):
    folder = tmp_path / "my-cifar"
    folder.mkdir()
    write_batch(folder / "data_batch_1")
    with pytest.raises(DataError) as err:
        c10.Cifar10().load(c10.Cifar10Options(root=str(folder), n_train=10, n_val=-1, n_test=5), seed=0)
    assert f"{str(folder / 'test_batch')!r} does not exist" in str(err.value)
    d = c10.Cifar10().load(c10.Cifar10Options(root=str(folder), n_train=10, n_val=-1, n_test=-1), seed=0)
    assert d.train.x.shape == (10, 3, 32, 32)


def make_archive(path: Path) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in ((f"{c10.FOLDER}/batches.meta", b"meta"), (f"{c10.FOLDER}/readme.html", b"hi")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_archive_md5_checked_before_extracting(tmp_path):
    archive = tmp_path / "cifar-10-python.tar.gz"
    make_archive(archive)
    dest = tmp_path / "root"
    with pytest.raises(DataError, match="md5"):
        c10.extract_archive(archive, dest)  # the official md5 cannot match a fake archive
    assert not (dest / c10.FOLDER).exists()
    folder = c10.extract_archive(archive, dest, expected_md5=c10.md5_of(archive))
    assert folder == dest / c10.FOLDER and (folder / "batches.meta").read_bytes() == b"meta"
