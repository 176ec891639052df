"""``stl10``: STL-10's binary files (``stl10_binary/``), 96×96 colour images, with its 100,000 unlabeled ones.

``train_X.bin`` / ``train_y.bin`` (5,000 labelled), ``test_X.bin`` / ``test_y.bin`` (8,000), ``unlabeled_X.bin``
(100,000), ``class_names.txt``. Images are stored channel by channel, each column-major; labels are 1..10.
The first ``train_split`` training images train, the rest validate (5,000: all train, no validation, the protocol
SoftHebb reports). ``unlabeled = N`` loads the first N unlabeled images (0: none, -1: all 100,000, about 11 GB
as float32) for a Hebbian phase that learns from them (``[hebbian] data = "unlabeled"``).

Where the data is: ``[data.options] root``, ``$HEBBCORE_STL10``, then ``~/.cache/hebbcore/stl10``; with
``download = true`` the official archive is fetched and md5-checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split

from .fetch import locate_release
from .splits import LocatedFiles, check_splits, take

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
ARCHIVE_MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
FOLDER = "stl10_binary"
ENV_ROOT = "HEBBCORE_STL10"
N_TRAIN, N_TEST, N_UNLABELED, SIDE = 5000, 8000, 100000, 96
IMAGE_BYTES = 3 * SIDE * SIDE


@dataclass(frozen=True)
class Stl10Options:
    root: str = ""  # the folder stl10_binary or the one holding it; "": $HEBBCORE_STL10, then the cache
    download: bool = False
    train_split: int = N_TRAIN  # the first train_split labelled images train, the rest validate
    n_train: int = 0  # 0: all train_split; else the first n
    n_val: int = 0  # 0: all 5,000 - train_split; else the first n; -1: none
    n_test: int = 0  # 0: all 8,000; else the first n; -1: none
    unlabeled: int = 0  # unlabeled images to load for the Hebbian phase: 0 none, -1 all 100,000, else the first n


def read_images(path: Path, count: int) -> np.ndarray:
    """The first ``count`` images of an STL-10 ``*_X.bin`` as float32 ``(N, 3, 96, 96)`` in [0, 1]."""
    if not path.is_file():
        raise DataError(f"STL-10 file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size % IMAGE_BYTES:
        raise DataError(f"STL-10 file {str(path)!r}: {size} bytes is not a whole number of 3x96x96 images")
    count = min(count, size // IMAGE_BYTES)
    raw = np.fromfile(path, dtype=np.uint8, count=count * IMAGE_BYTES).reshape(count, 3, SIDE, SIDE)
    return raw.transpose(0, 1, 3, 2).astype(np.float32) / np.float32(255.0)  # stored column-major


def read_labels(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"STL-10 file {str(path)!r} does not exist")
    y = np.fromfile(path, dtype=np.uint8)[:count].astype(np.int64) - 1
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"STL-10 file {str(path)!r}: labels outside 1..10")
    return y


class Stl10(LocatedFiles, DataSource):
    name = "stl10"
    Options = Stl10Options

    @classmethod
    def check(cls, options: Stl10Options) -> list[str]:
        return check_splits(options, N_TRAIN, ("n_val", "n_test", "unlabeled"))

    @classmethod
    def describe(cls, options: Stl10Options) -> DataInfo:
        split = min(max(options.train_split, 1), N_TRAIN)
        labelled = take(options.n_train, split) + take(options.n_val, N_TRAIN - split) + take(options.n_test, N_TEST)
        n_unlabeled = N_UNLABELED if options.unlabeled == -1 else options.unlabeled
        return DataInfo((3, SIDE, SIDE), 10, labelled + n_unlabeled, n_unlabeled=n_unlabeled)

    def locate(self, options: Stl10Options) -> Path:
        return locate_release(options.root, ENV_ROOT, "stl10", FOLDER, "train_X.bin", options.download, URL,
                              ARCHIVE_MD5, "STL-10")  # fmt: skip

    def load(self, options: Stl10Options, seed: int) -> Dataset:
        folder = self.locate(options)
        split = options.train_split
        n_tr, n_va = take(options.n_train, split), take(options.n_val, N_TRAIN - split)
        x, y = read_images(folder / "train_X.bin", split + n_va), read_labels(folder / "train_y.bin", split + n_va)
        if len(x) != len(y):
            raise DataError(f"STL-10 folder {str(folder)!r}: {len(x)} training images for {len(y)} labels")
        test = Split(np.zeros((0, 3, SIDE, SIDE), np.float32), np.zeros(0, np.int64))
        if options.n_test >= 0:
            n_te = take(options.n_test, N_TEST)
            test = Split(read_images(folder / "test_X.bin", n_te), read_labels(folder / "test_y.bin", n_te))
        unlabeled = None
        if options.unlabeled:
            n = N_UNLABELED if options.unlabeled == -1 else options.unlabeled
            u = read_images(folder / "unlabeled_X.bin", n)
            unlabeled = Split(u, np.full(len(u), -1, np.int64))
        names_file = folder / "class_names.txt"
        names = tuple(names_file.read_text().split()) if names_file.is_file() else ()
        return Dataset(name="stl10", train=Split(x[:n_tr], y[:n_tr]), val=Split(x[split:], y[split:]), test=test,
                       n_classes=10, class_names=names, unlabeled=unlabeled)  # fmt: skip
