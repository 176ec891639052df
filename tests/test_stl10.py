"""``stl10``: the official binary files (column-major images, labels 1..10), and a Hebbian phase on unlabeled images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hebbcore.errors import DataError, SpecError
from hebbcore.runner import run
from hebbcore.spec import loads_spec
from hebbcore_plugins.data.stl10 import Stl10, Stl10Options


def write_stl10(root: Path, n_train=12, n_test=6, n_unlabeled=9) -> dict[str, np.ndarray]:
    """``stl10_binary/`` as released: each image channel by channel, each channel stored column by column."""
    folder = root / "stl10_binary"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    images = {}
    for name, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        x = rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W) as a user sees them
        x.transpose(0, 1, 3, 2).tofile(folder / f"{name}_X.bin")  # the file holds (N, C, W, H)
        images[name] = x
        if name != "unlabeled":
            images[f"{name}_y"] = rng.integers(1, 11, n).astype(np.uint8)
            images[f"{name}_y"].tofile(folder / f"{name}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"class{i}" for i in range(10)) + "\n")
    return images


def test_reads_the_official_layout(tmp_path):
    raw = write_stl10(tmp_path)
    data = Stl10().load(Stl10Options(root=str(tmp_path), train_split=10, unlabeled=-1), seed=0)
    np.testing.assert_array_equal(data.train.x[3], raw["train"][3] / np.float32(255.0))
    np.testing.assert_array_equal(data.train.y, raw["train_y"][:10].astype(np.int64) - 1)
    assert len(data.val) == 2 and len(data.test) == 6 and data.class_names[9] == "class9"
    assert data.unlabeled is not None and len(data.unlabeled) == 9 and (data.unlabeled.y == -1).all()
    np.testing.assert_array_equal(data.unlabeled.x[8], raw["unlabeled"][8] / np.float32(255.0))


def test_missing_and_truncated_files_are_one_line(tmp_path):
    with pytest.raises(DataError, match="STL-10 not found: .* has no train_X.bin"):
        Stl10().load(Stl10Options(root=str(tmp_path)), seed=0)
    write_stl10(tmp_path)
    with open(tmp_path / "stl10_binary" / "test_X.bin", "ab") as fh:
        fh.write(b"\0" * 7)
    with pytest.raises(DataError, match="is not a whole number of 3x96x96 images"):
        Stl10().load(Stl10Options(root=str(tmp_path)), seed=0)


SPEC = """
[data]
source = "stl10"
[data.options]
root = "{root}"
unlabeled = {unlabeled}
[hebbian]
epochs = 1
batch_size = 4
data = "unlabeled"
[[layers]]
name = "c"
type = "conv"
out_channels = 4
kernel_size = 8
stride = 8
[layers.hebbian]
rule = "{rule}"
{options}
"""


def test_a_hebbian_phase_learns_from_the_unlabeled_images(tmp_path, registry, monkeypatch):
    from hebbcore.network import Network

    write_stl10(tmp_path)
    seen = []
    original = Network.hebbian_step
    monkeypatch.setattr(Network, "hebbian_step", lambda self, x, y: (seen.append(np.asarray(y)), original(self, x, y)))
    # against_data=False: the memory check counts the official 100,000 unlabeled images (12 GiB), not the 9 here
    spec = loads_spec(SPEC.format(root=tmp_path, unlabeled=-1, rule="wta", options=""), registry, against_data=False)
    result = run(spec, registry, out_dir=tmp_path / "o", progress=False)
    assert sum(len(y) for y in seen) == 9 and all((y == -1).all() for y in seen)  # every unlabeled image, once
    assert result.metrics["n_train"] == 12


def test_unlabeled_needs_images_and_a_rule_without_labels(tmp_path, registry):
    write_stl10(tmp_path)
    with pytest.raises(SpecError, match="gives no unlabeled images"):
        loads_spec(SPEC.format(root=tmp_path, unlabeled=0, rule="wta", options=""), registry, against_data=True)
    teacher = SPEC.format(root=tmp_path, unlabeled=-1, rule="teacher", options="").replace(
        "out_channels = 4", "out_channels = 10"
    )
    with pytest.raises(SpecError, match="'teacher' needs labels, but hebbian.data = 'unlabeled'"):
        loads_spec(teacher, registry, against_data=True)
