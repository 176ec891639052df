"""``cifar100``: CIFAR-100 from the official python layout (``cifar-100-python/``), fine or coarse labels.

The folder holds ``train`` (50,000 images), ``test`` (10,000) and ``meta``, pickled dicts read by the same
restricted unpickler as CIFAR-10's (it builds arrays, lists, strings and numbers, nothing else). Labels are the
100 ``fine`` classes or the 20 ``coarse`` superclasses (``label = "coarse"``). Splits, sizes and where the data
is work as for ``cifar10`` (``$HEBBCORE_CIFAR100``; ``download = true`` fetches and md5-checks the archive).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split

from .cifar10 import BatchUnpickler, to_images
from .fetch import locate_release
from .splits import LocatedFiles, check_splits, take

URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
ARCHIVE_MD5 = "eb9058c3a382ffc7106e4002c42a8d85"
FOLDER = "cifar-100-python"
ENV_ROOT = "HEBBCORE_CIFAR100"
N_TRAIN, N_TEST = 50000, 10000


@dataclass(frozen=True)
class Cifar100Options:
    root: str = ""  # the folder cifar-100-python or the one holding it; "": $HEBBCORE_CIFAR100, then the cache
    download: bool = False
    label: Literal["fine", "coarse"] = "fine"  # 100 classes or 20 superclasses
    train_split: int = 40000  # the first train_split images train, the rest of the 50,000 validate
    n_train: int = 0  # 0: all train_split; else the first n
    n_val: int = 0  # 0: all 50,000 - train_split; else the first n; -1: none
    n_test: int = 0  # 0: all 10,000; else the first n; -1: none


def read_pickle(path: Path) -> dict:
    """A CIFAR-100 pickle as a dict with str keys; DataError naming the file when it is not one."""
    if not path.is_file():
        raise DataError(f"CIFAR-100 file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as fh:
            d = BatchUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # truncated, not a pickle, or a refused global
        raise DataError(f"CIFAR-100 file {str(path)!r} is truncated or not a CIFAR-100 pickle "
                        f"({exc.__class__.__name__}: {exc})") from None  # fmt: skip
    if not isinstance(d, dict):
        raise DataError(f"CIFAR-100 file {str(path)!r}: expected a pickled dict, got {type(d).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}


def read_split(path: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    d = read_pickle(path)
    key = f"{label}_labels"
    if "data" not in d or key not in d:
        raise DataError(f"CIFAR-100 file {str(path)!r}: missing 'data' or {key!r} (keys: {sorted(map(str, d))})")
    data, labels = np.asarray(d["data"]), np.asarray(d[key])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR-100 file {str(path)!r}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    n_classes = 100 if label == "fine" else 20
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer) or \
            (labels.size and (labels.min() < 0 or labels.max() >= n_classes)):  # fmt: skip
        raise DataError(f"CIFAR-100 file {str(path)!r}: {key!r} must be {len(data)} integers in 0..{n_classes - 1}")
    return data, labels.astype(np.int64)


class Cifar100(LocatedFiles, DataSource):
    name = "cifar100"
    Options = Cifar100Options

    @classmethod
    def check(cls, options: Cifar100Options) -> list[str]:
        return check_splits(options, N_TRAIN)

    @classmethod
    def describe(cls, options: Cifar100Options) -> DataInfo:
        split = min(max(options.train_split, 1), N_TRAIN)
        n = take(options.n_train, split) + take(options.n_val, N_TRAIN - split) + take(options.n_test, N_TEST)
        return DataInfo((3, 32, 32), 100 if options.label == "fine" else 20, n)

    def locate(self, options: Cifar100Options) -> Path:
        return locate_release(options.root, ENV_ROOT, "cifar100", FOLDER, "train", options.download, URL, ARCHIVE_MD5,
                              "CIFAR-100", shown="'train'")  # fmt: skip

    def load(self, options: Cifar100Options, seed: int) -> Dataset:
        folder = self.locate(options)
        x, y = read_split(folder / "train", options.label)
        split = options.train_split
        n_tr, n_va = take(options.n_train, min(split, len(x))), take(options.n_val, max(len(x) - split, 0))
        test = Split(np.zeros((0, 3, 32, 32), np.float32), np.zeros(0, np.int64))
        if options.n_test >= 0:
            tx, ty = read_split(folder / "test", options.label)
            n_te = take(options.n_test, len(tx))
            test = Split(to_images(tx[:n_te]), ty[:n_te])
        names: tuple[str, ...] = ()
        if (folder / "meta").is_file():
            raw = read_pickle(folder / "meta").get(f"{options.label}_label_names", [])
            names = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in raw)
        return Dataset(
            name=f"cifar100-{options.label}",
            train=Split(to_images(x[:n_tr]), y[:n_tr]),
            val=Split(to_images(x[split : split + n_va]), y[split : split + n_va]),
            test=test,
            n_classes=100 if options.label == "fine" else 20,
            class_names=names,
        )
