"""``image_folder``: a folder of PNG/JPEG images, one subfolder per class (needs Pillow: ``pip install pillow``).

``root/<class>/<image>``: classes are the subfolder names in sorted order; every image is converted to RGB (or
grey with ``channels = 1``) and resized to ``size × size``. The images are shuffled by the run's seed and split
into train / validation / test by ``val_fraction`` and ``test_fraction``; float32 in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split

SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class ImageFolderOptions:
    root: str = ""
    size: int = 32
    channels: Literal[1, 3] = 3
    val_fraction: float = 0.1
    test_fraction: float = 0.1


def class_files(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The class names (sorted subfolders) and every image file with its class index."""
    if not root.is_dir():
        raise DataError(f"image folder {str(root)!r} does not exist (expected one subfolder of images per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(f, c) for c, name in enumerate(classes) for f in sorted((root / name).iterdir())
             if f.suffix.lower() in SUFFIXES]  # fmt: skip
    if len(classes) < 2 or not files:
        raise DataError(f"image folder {str(root)!r}: expected at least two class subfolders holding PNG or JPEG "
                        f"images, found {len(classes)} classes and {len(files)} images")  # fmt: skip
    return classes, files


class ImageFolder(DataSource):
    name = "image_folder"
    Options = ImageFolderOptions

    @classmethod
    def check(cls, options: ImageFolderOptions) -> list[str]:
        problems = [] if options.root else ["root: the 'image_folder' source needs the folder of class subfolders"]
        if options.size < 1:
            problems.append(f"size: expected >= 1, got {options.size}")
        for k in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(options, k) < 1:
                problems.append(f"{k}: expected 0 <= {k} < 1, got {getattr(options, k)}")
        if options.val_fraction + options.test_fraction >= 1:
            problems.append("val_fraction + test_fraction: expected < 1 (some images must train)")
        return problems

    @classmethod
    def describe(cls, options: ImageFolderOptions) -> DataInfo:
        classes, files = class_files(Path(options.root))
        return DataInfo((options.channels, options.size, options.size), len(classes), len(files))

    def load(self, options: ImageFolderOptions, seed: int) -> Dataset:
        try:
            from PIL import Image, UnidentifiedImageError
        except ImportError:
            raise DataError("the 'image_folder' source needs Pillow: pip install pillow") from None
        classes, files = class_files(Path(options.root))
        x = np.empty((len(files), options.channels, options.size, options.size), np.float32)
        for i, (path, _) in enumerate(files):
            try:
                with Image.open(path) as im:
                    im = im.convert("RGB" if options.channels == 3 else "L").resize((options.size, options.size))
                    a = np.asarray(im, dtype=np.float32) / np.float32(255.0)
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"image {str(path)!r} is not a readable image ({exc.__class__.__name__})") from None
            x[i] = a.transpose(2, 0, 1) if a.ndim == 3 else a[None]
        y = np.array([c for _, c in files], dtype=np.int64)
        order = np.random.default_rng(seed).permutation(len(files))
        n_val, n_test = round(len(files) * options.val_fraction), round(len(files) * options.test_fraction)
        val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
        return Dataset(name=Path(options.root).name, train=Split(x[train], y[train]), val=Split(x[val], y[val]),
                       test=Split(x[test], y[test]), n_classes=len(classes), class_names=tuple(classes))  # fmt: skip
