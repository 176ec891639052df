"""``mnist`` and ``fashion_mnist``: 28×28 grey images in the official IDX files.

The folder holds ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz``, as published). Splits: the first ``train_split``
(50,000) training images train, the rest of the 60,000 validate, ``t10k`` is the test split. Images come back
float32 ``(N, 1, 28, 28)`` in [0, 1].

Where the data is (first that applies): ``[data.options] root``; ``$HEBBCORE_MNIST`` / ``$HEBBCORE_FASHION_MNIST``;
``~/.cache/hebbcore/<name>`` (or ``$HEBBCORE_CACHE/<name>``). With ``download = true`` and no local copy, the four
official files are downloaded there and their md5 checked.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split

from .fetch import fetch
from .splits import LocatedFiles, check_splits, find_root, take

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
N_TRAIN, N_TEST = 60000, 10000


@dataclass(frozen=True)
class MnistOptions:
    root: str = ""  # "": the environment variable, then the cache folder
    download: bool = False
    train_split: int = 50000  # the first train_split images train, the rest of the 60,000 validate
    n_train: int = 0  # 0: all train_split; else the first n
    n_val: int = 0  # 0: all 60,000 - train_split; else the first n; -1: none
    n_test: int = 0  # 0: all 10,000; else the first n; -1: none


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """The uint8 array of an IDX file (``path`` or ``path.gz``); DataError naming the file when it is not one."""
    src = path if path.is_file() else path.with_name(path.name + ".gz")
    if not src.is_file():
        raise DataError(f"IDX file {str(path)!r} (or .gz) does not exist")
    try:
        raw = gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"IDX file {str(src)!r} is not a readable gzip ({exc.__class__.__name__})") from None
    if len(raw) < 4 + 4 * ndim or raw[0:2] != b"\0\0" or raw[2] != 0x08 or raw[3] != ndim:
        raise DataError(f"IDX file {str(src)!r}: expected the header of a {ndim}-d unsigned-byte IDX file")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise DataError(f"IDX file {str(src)!r}: header says {shape} ({int(np.prod(shape))} bytes), holds {len(body)}")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


class IdxImages(LocatedFiles, DataSource):
    """A 28×28 IDX data set (MNIST's layout); subclasses name it and where it comes from."""

    name: ClassVar[str]
    Options = MnistOptions
    env_root: ClassVar[str]
    url: ClassVar[str]
    md5: ClassVar[dict[str, str]]  # of the .gz files
    class_names: ClassVar[tuple[str, ...]]

    @classmethod
    def check(cls, options: MnistOptions) -> list[str]:
        return check_splits(options, N_TRAIN)

    @classmethod
    def describe(cls, options: MnistOptions) -> DataInfo:
        split = min(max(options.train_split, 1), N_TRAIN)
        n = take(options.n_train, split) + take(options.n_val, N_TRAIN - split) + take(options.n_test, N_TEST)
        return DataInfo((1, 28, 28), 10, n)

    def locate(self, options: MnistOptions) -> Path:
        folder, origin = find_root(options.root, self.env_root, self.name)
        missing = [f for f in FILES.values() if not ((folder / f).is_file() or (folder / f"{f}.gz").is_file())]
        if not missing:
            return folder
        if options.download:  # pragma: no cover - needs the network
            for f in missing:
                hint = f"download it by hand into {folder} or set ${self.env_root}"
                fetch(f"{self.url}{f}.gz", folder / f"{f}.gz", self.md5[f], hint)
            return folder
        raise DataError(
            f"{self.name} not found: {str(folder)!r} (from {origin}) lacks {', '.join(missing)}; set "
            f"[data.options] root or ${self.env_root} to the folder holding the IDX files, or set download = true"
        )

    def load(self, options: MnistOptions, seed: int) -> Dataset:
        folder = self.locate(options)
        split = options.train_split
        x, y = read_idx(folder / FILES["train_x"], 3), read_idx(folder / FILES["train_y"], 1)
        if x.shape[1:] != (28, 28) or len(x) != len(y):
            raise DataError(f"{self.name}: {str(folder)!r} holds {x.shape} images for {len(y)} labels")
        n_tr, n_va = take(options.n_train, min(split, len(x))), take(options.n_val, max(len(x) - split, 0))
        test = Split(np.zeros((0, 1, 28, 28), np.float32), np.zeros(0, np.int64))
        if options.n_test >= 0:
            tx, ty = read_idx(folder / FILES["test_x"], 3), read_idx(folder / FILES["test_y"], 1)
            n_te = take(options.n_test, len(tx))
            test = Split(images(tx[:n_te]), labels(ty[:n_te], self.name))
        return Dataset(
            name=self.name,
            train=Split(images(x[:n_tr]), labels(y[:n_tr], self.name)),
            val=Split(images(x[split : split + n_va]), labels(y[split : split + n_va], self.name)),
            test=test,
            n_classes=10,
            class_names=self.class_names,
        )


def images(x: np.ndarray) -> np.ndarray:
    return x.reshape(-1, 1, 28, 28).astype(np.float32) / np.float32(255.0)


def labels(y: np.ndarray, name: str) -> np.ndarray:
    if y.size and y.max() > 9:
        raise DataError(f"{name}: labels outside 0..9")
    return y.astype(np.int64)


class Mnist(IdxImages):
    name = "mnist"
    env_root = "HEBBCORE_MNIST"
    url = "https://ossci-datasets.s3.amazonaws.com/mnist/"
    md5 = {
        FILES["train_x"]: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        FILES["train_y"]: "d53e105ee54ea40749a09fcbcd1e9432",
        FILES["test_x"]: "9fb629c4189551a2d022fa330f9573f3",
        FILES["test_y"]: "ec29112dd5afa0611ce80d1b7f02629c",
    }
    class_names = tuple(str(d) for d in range(10))


class FashionMnist(IdxImages):
    name = "fashion_mnist"
    env_root = "HEBBCORE_FASHION_MNIST"
    url = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    md5 = {
        FILES["train_x"]: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        FILES["train_y"]: "25c81989df183df01b3e8a0aad5dffbe",
        FILES["test_x"]: "bef4ecab320f06d8554ea6380940ec79",
        FILES["test_y"]: "bb300cfdad3c16e7a12a480ee83cd310",
    }
    class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")  # fmt: skip
