"""``cifar10``: CIFAR-10 from the official python layout (``cifar-10-batches-py/``).

The folder holds ``data_batch_1`` … ``data_batch_5``, ``test_batch`` and
``batches.meta``, each a pickled dict (``data``: uint8 ``(10000, 3072)``,
``labels``: 10,000 ints). Splits: the first 40,000 training images are
``train``, the last 10,000 ``val``, ``test_batch`` is ``test``
(``train_split = 50000``: all 50,000 train and there is no ``val``, the protocol
of papers that report the last epoch's test accuracy). Images come
back float32 ``(N, 3, 32, 32)`` scaled to [0, 1].

Where the data is (first that applies):

1. ``[data.options] root``: the folder ``cifar-10-batches-py`` or the folder holding it;
2. the environment variable ``HEBBCORE_CIFAR10`` (same meaning);
3. ``~/.cache/hebbcore/cifar10`` (or ``$HEBBCORE_CACHE/cifar10``).

With ``download = true`` and no local copy, the official archive is
downloaded into the root (or the cache folder), its md5 checked, then
extracted. Local files are never checksummed: re-encoded copies with the
official pixels and labels are fine.
"""

from __future__ import annotations

import os
import pickle
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split

from . import fetch
from .fetch import md5_of
from .splits import LocatedFiles, check_splits, find_root, take

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
ENV_ROOT = "HEBBCORE_CIFAR10"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
N_TRAIN_SPLIT = 40000  # first 40,000 training images; the last 10,000 are the validation split


@dataclass(frozen=True)
class Cifar10Options:
    root: str = ""  # "" : $HEBBCORE_CIFAR10, then the cache folder
    download: bool = False
    train_split: int = N_TRAIN_SPLIT  # the first train_split images train, the rest of the 50,000 validate
    n_train: int = 0  # 0: all train_split; else the first n
    n_val: int = 0  # 0: all 50,000 - train_split; else the first n; -1: none
    n_test: int = 0  # 0: all 10,000; else the first n; -1: none


def resolve_folder(root: str | os.PathLike) -> Path:
    """The ``cifar-10-batches-py`` folder for a root that is it or holds it."""
    root = Path(root).expanduser()
    if root.name == FOLDER or any((root / f).exists() for f in (TEST_FILE, *TRAIN_FILES)):  # whatever its name
        return root
    return root / FOLDER


def default_root(options: Cifar10Options) -> tuple[Path, str]:
    """(root, where it came from) following the precedence in the module docstring."""
    return find_root(options.root, ENV_ROOT, "cifar10")


def extract_archive(archive: Path, dest: Path, expected_md5: str = ARCHIVE_MD5, folder: str = FOLDER) -> Path:
    """The official CIFAR-10 archive checked and extracted (:func:`fetch.extract_archive`)."""
    return fetch.extract_archive(archive, dest, expected_md5, folder)


def download(dest: Path, url: str = URL) -> Path:  # pragma: no cover - needs the network
    """Download the official archive into ``dest`` and extract it (md5-checked)."""
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / "cifar-10-python.tar.gz"
    if not archive.is_file() or md5_of(archive) != ARCHIVE_MD5:
        part = archive.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as fh:
                shutil.copyfileobj(resp, fh, 1 << 20)
        except OSError as exc:
            raise DataError(
                f"cannot download {url} ({exc.__class__.__name__}: {exc}); download it by hand and "
                f"set ${ENV_ROOT} to the folder holding {FOLDER}/"
            ) from None
        os.replace(part, archive)
    folder = extract_archive(archive, dest)
    archive.unlink()
    return folder


def _numpy_multiarray():
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray
    return multiarray


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """What Python 3's protocol-2 pickles call to make ``bytes``; any codec but latin-1 is refused."""
    if encoding.replace("-", "").lower() != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not allowed in a CIFAR-10 batch")
    return text.encode("latin-1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    """The only globals the official batches (and their protocol-2 re-pickles) refer to."""
    ma = _numpy_multiarray()
    table: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = ma._reconstruct
        table[(mod, "scalar")] = ma.scalar
    return table


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds only dicts, lists, strings, numbers and numpy arrays: a crafted file cannot
    import or call anything else, so reading one never runs its code."""

    def find_class(self, module: str, name: str):
        allowed = _allowed_globals().get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name} (a CIFAR-10 batch holds only numpy arrays, lists, strings and numbers)"
            )
        return allowed


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(data uint8 (N, 3072), labels int64 (N,))`` of one pickled batch; DataError naming the file."""
    if not path.is_file():
        raise DataError(f"CIFAR-10 file {str(path)!r} does not exist")
    try:
        with open(path, "rb") as fh:
            d = BatchUnpickler(fh, encoding="bytes").load()
    except Exception as exc:  # truncated, not a pickle or a refused global: EOFError, UnpicklingError, ValueError
        raise DataError(
            f"CIFAR-10 file {str(path)!r} is truncated or not a CIFAR-10 pickle ({exc.__class__.__name__}: {exc})"
        ) from None
    if not isinstance(d, dict):
        raise DataError(f"CIFAR-10 file {str(path)!r}: expected a pickled dict, got {type(d).__name__}")
    d = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in d.items()}
    if "data" not in d or "labels" not in d:
        raise DataError(f"CIFAR-10 file {str(path)!r}: missing 'data' or 'labels' (keys: {sorted(map(str, d))})")
    data = np.asarray(d["data"])
    labels = np.asarray(d["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"CIFAR-10 file {str(path)!r}: 'data' must be uint8 (N, 3072), got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"CIFAR-10 file {str(path)!r}: 'labels' must be {data.shape[0]} integers, got {labels.dtype} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"CIFAR-10 file {str(path)!r}: labels outside 0..9")
    return data, labels.astype(np.int64)


def to_images(data: np.ndarray) -> np.ndarray:
    return data.reshape(-1, 3, 32, 32).astype(np.float32) / np.float32(255.0)


class Cifar10(LocatedFiles, DataSource):
    name = "cifar10"
    Options = Cifar10Options

    @classmethod
    def check(cls, options: Cifar10Options) -> list[str]:
        return check_splits(options, 50000)

    @classmethod
    def describe(cls, options: Cifar10Options) -> DataInfo:
        split = min(max(options.train_split, 1), 50000)
        n = take(options.n_train, split) + take(options.n_val, 50000 - split) + take(options.n_test, 10000)
        return DataInfo((3, 32, 32), 10, n)

    def locate(self, options: Cifar10Options) -> Path:
        root, origin = default_root(options)
        folder = resolve_folder(root)
        if (folder / TEST_FILE).exists() or (folder / TRAIN_FILES[0]).exists():
            return folder
        if options.download:
            return download(folder.parent)
        raise DataError(
            f"CIFAR-10 not found: {str(folder)!r} (from {origin}) has no {TRAIN_FILES[0]}; set "
            f"[data.options] root or ${ENV_ROOT} to the folder holding {FOLDER}/, or set download = true"
        )

    def load(self, options: Cifar10Options, seed: int) -> Dataset:
        split = options.train_split
        if not 1 <= split <= 50000:
            raise DataError(f"data.options.train_split: expected 1..50000 training images, got {split}")
        folder = self.locate(options)
        n_tr = take(options.n_train, split)
        n_va = take(options.n_val, 50000 - split)
        n_te = take(options.n_test, 10000)
        # read only the batches the requested rows need
        need_rows = [(0, n_tr), (split, split + n_va)]
        parts, labels = [], []
        for b, fname in enumerate(TRAIN_FILES):
            lo, hi = b * 10000, (b + 1) * 10000
            if not any(s < hi and e > lo for s, e in need_rows if e > s):
                parts.append(None)
                labels.append(None)
                continue
            d, l = read_batch(folder / fname)
            if len(d) != 10000:
                raise DataError(f"CIFAR-10 file {str(folder / fname)!r}: expected 10000 images, got {len(d)}")
            parts.append(d)
            labels.append(l)

        def rows(start: int, stop: int) -> Split:
            xs, ys = [], []
            for b in range(start // 10000, (stop - 1) // 10000 + 1 if stop > start else start // 10000):
                lo = max(start, b * 10000) - b * 10000
                hi = min(stop, (b + 1) * 10000) - b * 10000
                xs.append(parts[b][lo:hi])
                ys.append(labels[b][lo:hi])
            if not xs:
                return Split(np.zeros((0, 3, 32, 32), np.float32), np.zeros(0, np.int64))
            return Split(to_images(np.concatenate(xs)), np.concatenate(ys))

        train = rows(0, n_tr)
        val = rows(split, split + n_va)
        if n_te:
            d, l = read_batch(folder / TEST_FILE)
            if len(d) != 10000:
                raise DataError(f"CIFAR-10 file {str(folder / TEST_FILE)!r}: expected 10000 images, got {len(d)}")
            test = Split(to_images(d[:n_te]), l[:n_te])
        else:
            test = Split(np.zeros((0, 3, 32, 32), np.float32), np.zeros(0, np.int64))
        return Dataset(name="cifar10", train=train, val=val, test=test, n_classes=10, class_names=CLASS_NAMES)
