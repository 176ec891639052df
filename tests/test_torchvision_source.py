"""The ``torchvision`` data source. torchvision cannot be installed on this project's CPU machines (its wheels for
this torch are CUDA builds whose operators fail to load against the CPU torch), so the reader is tested here
against a stand-in package with torchvision's dataset interface (``train=`` or ``split=``, ``(PIL image, label)``
items, ``classes``), and against the real one, on the real CIFAR-10 files, where it is installed."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from hebbcore.errors import DataError
from hebbcore.spec import parse_spec

STAND_IN = """
import numpy as np
from PIL import Image

def _images(seed, n, mode):
    rng = np.random.default_rng(seed)
    shape = (n, 6, 5, 3) if mode == "RGB" else (n, 6, 5)
    return rng.integers(0, 256, size=shape, dtype=np.uint8), rng.integers(0, 3, size=n)

class CIFARish:
    classes = ["cat", "dog", "emu"]
    def __init__(self, root, train=True, transform=None, download=False):
        if "missing" in root:
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to download it")
        self.data, self.targets = _images(0 if train else 1, 12 if train else 4, "RGB")
    def __len__(self):
        return len(self.data)
    def __getitem__(self, i):
        return Image.fromarray(self.data[i], "RGB"), int(self.targets[i])

class SVHNish:
    def __init__(self, root, split="train", download=False):
        self.data, self.labels = _images(2 if split == "train" else 3, 10 if split == "train" else 3, "L")
    def __len__(self):
        return len(self.data)
    def __getitem__(self, i):
        return Image.fromarray(self.data[i], "L"), int(self.labels[i])
"""


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    pytest.importorskip("PIL", reason="the stand-in's images are PIL images, as torchvision's")
    pkg = tmp_path / "stand_in" / "torchvision"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import datasets\n")
    (pkg / "datasets.py").write_text(textwrap.dedent(STAND_IN))
    monkeypatch.syspath_prepend(str(tmp_path / "stand_in"))
    for name in _torchvision_modules():
        monkeypatch.delitem(sys.modules, name)
    yield pkg
    for name in _torchvision_modules():  # the stand-in's, imported by the test: no later test may find them
        if str(tmp_path) in str(getattr(sys.modules[name], "__file__", "") or ""):
            del sys.modules[name]


def _torchvision_modules() -> list[str]:
    return [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]


LAYERS = [{"name": "f", "type": "flatten"}, {"name": "clf", "type": "linear", "out_features": 3, "train": "sgd"}]


def _load(registry, **options):
    spec = parse_spec(
        {"data": {"source": "torchvision", "options": {"root": "r", **options}}, "layers": LAYERS}, registry
    )
    return registry.get("dataset", "torchvision")().load(spec.data.options, 0)


def test_reads_a_train_flag_dataset_as_images_in_0_1(stand_in, registry):
    import torchvision.datasets as tv

    data = _load(registry, dataset="CIFARish", n_val=2)
    ref_train, ref_test = tv.CIFARish("r", train=True), tv.CIFARish("r", train=False)
    expected = ref_train.data.transpose(0, 3, 1, 2).astype(np.float32) / 255
    np.testing.assert_array_equal(data.train.x, expected[:10])
    np.testing.assert_array_equal(data.val.x, expected[10:])
    np.testing.assert_array_equal(data.train.y, ref_train.targets[:10])
    np.testing.assert_array_equal(data.test.x, ref_test.data.transpose(0, 3, 1, 2).astype(np.float32) / 255)
    assert data.train.x.dtype == np.float32 and data.class_names == ("cat", "dog", "emu") and data.n_classes == 3
    assert data.input_shape == (3, 6, 5)
    small = _load(registry, dataset="CIFARish", n_train=4, n_test=-1)
    assert len(small.train) == 4 and len(small.val) == 0 and len(small.test) == 0


def test_reads_a_split_name_dataset_in_grey(stand_in, registry):
    import torchvision.datasets as tv

    data = _load(registry, dataset="SVHNish")
    ref = tv.SVHNish("r", split="test")
    np.testing.assert_array_equal(data.test.x, ref.data[:, None].astype(np.float32) / 255)
    np.testing.assert_array_equal(data.test.y, ref.labels)
    labels = max(tv.SVHNish("r", split="train").labels.max(), ref.labels.max())
    assert data.input_shape == (1, 6, 5) and data.n_classes == labels + 1  # no `classes`: the largest label + 1


def test_errors_are_one_line_and_name_what_is_wrong(stand_in, registry):
    with pytest.raises(DataError, match=r"no dataset 'CIFARsh' \(did you mean 'CIFARish'\?\)"):
        _load(registry, dataset="CIFARsh")
    with pytest.raises(DataError, match=r"CIFARish under '.*missing': Dataset not found or corrupted"):
        _load(registry, dataset="CIFARish", root="/nowhere/missing")
    with pytest.raises(DataError, match=r"n_val: expected fewer than the 12 training images"):
        _load(registry, dataset="CIFARish", n_val=12)
    from hebbcore.spec import check_against_data

    problems = check_against_data(parse_spec({"data": {"source": "torchvision"}, "layers": LAYERS}, registry), registry)
    assert problems == ["data.options.dataset: the 'torchvision' source needs a torchvision.datasets name"]


def test_without_torchvision_says_what_to_install(registry, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision now raises ImportError
    with pytest.raises(DataError, match=r"needs torchvision: pip install torchvision"):
        _load(registry, dataset="CIFAR10")


def test_real_torchvision_cifar10_matches_the_builtin_reader(registry):
    """Where torchvision is installed: its CIFAR-10 through this source equals the built-in ``cifar10`` reader."""
    pytest.importorskip("torchvision", reason="torchvision is not installed")
    import os
    from pathlib import Path

    folder = os.environ.get("HEBBCORE_CIFAR10")
    if not folder or not Path(folder).is_dir():
        pytest.skip("HEBBCORE_CIFAR10 does not point at the CIFAR-10 files")
    data = _load(registry, dataset="CIFAR10", root=str(Path(folder).parent), n_train=500, n_test=200)
    spec = parse_spec({"data": {"source": "cifar10", "options": {"n_train": 500, "n_val": -1, "n_test": 200}},
                       "layers": LAYERS}, registry)  # fmt: skip
    builtin = registry.get("dataset", "cifar10")().load(spec.data.options, 0)
    np.testing.assert_allclose(data.train.x, builtin.train.x, atol=1e-6)
    np.testing.assert_array_equal(data.test.y, builtin.test.y)
