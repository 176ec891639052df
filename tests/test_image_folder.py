"""``image_folder``: PNG and JPEG files in one subfolder per class, written here with Pillow and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hebbcore.errors import DataError

Image = pytest.importorskip("PIL.Image", reason="the image_folder source needs Pillow")

from hebbcore_plugins.data.image_folder import ImageFolder, ImageFolderOptions  # noqa: E402  # after the skip


def write_folder(root: Path, per_class: int = 4, size: int = 8) -> dict[tuple[str, int], np.ndarray]:
    rng = np.random.default_rng(0)
    pixels = {}
    for cls in ("zebra", "ant", "moth"):  # sorted: ant, moth, zebra
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            fmt = "png" if i % 2 == 0 else "jpeg"
            Image.fromarray(a).save(root / cls / f"{i}.{fmt}")
            pixels[(cls, i)] = a
    (root / "ant" / "notes.txt").write_text("not an image")
    return pixels


def test_reads_classes_in_sorted_order_and_exact_png_pixels(tmp_path):
    pixels = write_folder(tmp_path)
    opts = ImageFolderOptions(root=str(tmp_path), size=8, val_fraction=0.25, test_fraction=0.25)
    data = ImageFolder().load(opts, seed=3)
    assert data.class_names == ("ant", "moth", "zebra") and data.n_classes == 3
    assert (len(data.train), len(data.val), len(data.test)) == (6, 3, 3)
    everything = np.concatenate([data.train.x, data.val.x, data.test.x])
    want = pixels[("moth", 2)].transpose(2, 0, 1) / np.float32(255.0)  # a PNG: lossless
    assert any(np.array_equal(img, want) for img in everything)
    again = ImageFolder().load(opts, seed=3)
    np.testing.assert_array_equal(again.train.y, data.train.y)  # the split follows the seed


def test_grey_and_resized(tmp_path):
    write_folder(tmp_path)
    data = ImageFolder().load(ImageFolderOptions(root=str(tmp_path), size=5, channels=1), seed=0)
    assert data.train.x.shape[1:] == (1, 5, 5) and data.train.x.min() >= 0 and data.train.x.max() <= 1


def test_bad_folders_and_images_are_one_line(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder().load(ImageFolderOptions(root=str(tmp_path / "none")), seed=0)
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="at least two class subfolders"):
        ImageFolder().load(ImageFolderOptions(root=str(tmp_path)), seed=0)
    write_folder(tmp_path / "f")
    (tmp_path / "f" / "ant" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match="broken.png' is not a readable image"):
        ImageFolder().load(ImageFolderOptions(root=str(tmp_path / "f")), seed=0)


def test_a_spec_knows_the_classes_at_load(tmp_path, registry):
    from hebbcore.errors import SpecError
    from hebbcore.spec import loads_spec

    write_folder(tmp_path / "imgs")
    layers = '[[layers]]\nname = "f"\ntype = "flatten"\n[[layers]]\nname = "clf"\ntype = "linear"\nout_features = 4\n' \
        '[layers.hebbian]\nrule = "teacher"\n'  # fmt: skip
    text = f'[data]\nsource = "image_folder"\n[data.options]\nroot = "{tmp_path / "imgs"}"\nsize = 8\n' + layers
    with pytest.raises(SpecError, match="teacher groups need 3 classes"):
        loads_spec(text, registry, against_data=True)
