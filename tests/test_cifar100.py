"""``cifar100``: the official python layout, fine and coarse labels, read by the restricted unpickler."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from hebbcore.errors import DataError
from hebbcore_plugins.data.cifar100 import Cifar100, Cifar100Options


def write_cifar100(root: Path, n_train: int = 30, n_test: int = 10) -> Path:
    """``cifar-100-python/{train,test,meta}`` as the official archive holds them (protocol-2 pickles)."""
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, n in (("train", n_train), ("test", n_test)):
        d = {b"filenames": [f"img{i}.png".encode() for i in range(n)], b"batch_label": name.encode(),
             b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n).tolist(),
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}  # fmt: skip
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}  # fmt: skip
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


@pytest.mark.parametrize("label,n_classes", [("fine", 100), ("coarse", 20)])
def test_reads_fine_and_coarse_labels(tmp_path, label, n_classes):
    folder = write_cifar100(tmp_path)
    raw = pickle.loads((folder / "train").read_bytes(), encoding="bytes")
    data = Cifar100().load(Cifar100Options(root=str(tmp_path), label=label, train_split=25), seed=0)
    assert data.n_classes == n_classes and data.class_names[3] == f"{label}3"
    np.testing.assert_array_equal(data.train.y, raw[f"{label}_labels".encode()][:25])
    np.testing.assert_array_equal(data.val.y, raw[f"{label}_labels".encode()][25:])
    np.testing.assert_allclose(data.train.x[2], raw[b"data"][2].reshape(3, 32, 32) / 255.0, rtol=1e-6)
    assert data.test.x.shape == (10, 3, 32, 32)


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_missing_corrupt_and_crafted_files_are_one_line(tmp_path):
    with pytest.raises(DataError, match="CIFAR-100 not found: .* has no 'train'"):
        Cifar100().load(Cifar100Options(root=str(tmp_path)), seed=0)
    folder = write_cifar100(tmp_path)
    marker = tmp_path / "pwned"
    (folder / "train").write_bytes(pickle.dumps({b"data": Payload(marker)}, protocol=2))
    with pytest.raises(DataError, match="refused global posix.system"):
        Cifar100().load(Cifar100Options(root=str(folder)), seed=0)
    assert not marker.exists()
    (folder / "train").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2))
    with pytest.raises(DataError, match="missing 'data' or 'fine_labels'"):
        Cifar100().load(Cifar100Options(root=str(folder)), seed=0)


def test_options_are_checked_at_load(registry):
    from hebbcore.errors import SpecError
    from hebbcore.spec import loads_spec

    text = ('[data]\nsource = "cifar100"\n[data.options]\nlabel = "coarser"\ntrain_split = 0\n'
            '[[layers]]\nname = "c"\ntype = "conv"\nout_channels = 4\nkernel_size = 3\n')  # fmt: skip
    with pytest.raises(SpecError) as err:
        loads_spec(text, registry, against_data=True)
    assert "data.options.label: expected one of 'fine', 'coarse', got string 'coarser' (did you mean 'coarse'?)" \
        in str(err.value) and "train_split: expected 1..50000" in str(err.value)  # fmt: skip
