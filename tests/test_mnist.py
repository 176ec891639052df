"""``mnist`` and ``fashion_mnist``: the official IDX files (raw and gzipped), written small here, read back."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hebbcore.errors import DataError
from hebbcore_plugins.data.mnist import FashionMnist, Mnist, MnistOptions, read_idx


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """An IDX file as the format's description gives it: 0, 0, type 0x08, ndim, big-endian sizes, the bytes."""
    raw = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()
    if gz:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def write_mnist(folder: Path, n_train: int = 30, n_test: int = 8, gz: bool = True, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_idx(folder / name, a, gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("source", [Mnist, FashionMnist])
def test_reads_the_official_layout(tmp_path, source, gz):
    arrays = write_mnist(tmp_path, gz=gz)
    data = source().load(MnistOptions(root=str(tmp_path), train_split=20, n_test=5), seed=0)
    x = arrays["train-images-idx3-ubyte"]
    assert data.train.x.shape == (20, 1, 28, 28) and data.train.x.dtype == np.float32
    np.testing.assert_array_equal(data.train.x[3, 0], x[3] / np.float32(255.0))
    np.testing.assert_array_equal(data.val.y, arrays["train-labels-idx1-ubyte"][20:])
    np.testing.assert_array_equal(data.test.y, arrays["t10k-labels-idx1-ubyte"][:5])
    assert data.n_classes == 10 and len(data.class_names) == 10


def test_the_environment_variable_names_the_folder(tmp_path, monkeypatch):
    write_mnist(tmp_path / "m")
    monkeypatch.setenv("HEBBCORE_MNIST", str(tmp_path / "m"))
    assert len(Mnist().load(MnistOptions(n_val=-1, n_test=-1), seed=0).train) == 30


def test_missing_and_corrupt_files_are_one_line(tmp_path):
    with pytest.raises(DataError, match="mnist not found: .* lacks train-images-idx3-ubyte.*download = true"):
        Mnist().load(MnistOptions(root=str(tmp_path)), seed=0)
    write_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\x63short"))
    with pytest.raises(DataError, match="header says \\(99,\\) \\(99 bytes\\), holds 5"):
        Mnist().load(MnistOptions(root=str(tmp_path)), seed=0)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="is not a readable gzip"):
        read_idx(tmp_path / "t10k-images-idx3-ubyte", 3)
    write_idx(tmp_path / "x-idx1-ubyte", np.zeros(3, np.uint8), gz=False)
    with pytest.raises(DataError, match="expected the header of a 3-d unsigned-byte IDX file"):
        read_idx(tmp_path / "x-idx1-ubyte", 3)


def test_a_spec_trains_on_it(tmp_path):
    write_mnist(tmp_path / "m", n_train=60, n_test=20)
    spec = tmp_path / "s.toml"
    spec.write_text(
        '[data]\nsource = "mnist"\n[data.options]\nroot = "m"\ntrain_split = 50\n[hebbian]\nepochs = 1\n'
        'batch_size = 16\n[sgd]\nepochs = 0\n[[layers]]\nname = "c"\ntype = "conv"\nout_channels = 8\n'
        'kernel_size = 5\n[layers.hebbian]\nrule = "wta"\n[[layers]]\nname = "f"\ntype = "flatten"\n'
        '[[layers]]\nname = "clf"\ntype = "linear"\nout_features = 10\n[layers.hebbian]\nrule = "teacher"\n'
    )
    res = subprocess.run([sys.executable, "-m", "hebbcore.cli", "run", str(spec), "--out", str(tmp_path / "o"),
                          "--no-progress"], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert '"n_train": 50' in (tmp_path / "o" / "metrics.json").read_text()
