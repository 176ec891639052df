"""``npz``: a user's ``.npz`` file with arrays ``x`` (images or vectors) and ``y`` (integer labels).

The file is split at random (seeded) into train / validation / test by
``val_fraction`` and ``test_fraction``. ``uint8`` images are scaled to [0, 1].
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split
from hebbcore.io import read_npz


@dataclass(frozen=True)
class NpzOptions:
    path: str = ""
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    n_classes: int = 0  # 0: max(y) + 1


def check_layout(path: Path, shape: tuple[int, ...]) -> None:
    """Refuse images stored channels-last (N, H, W, C), the layout of PIL, TensorFlow and CIFAR's own arrays,
    which would otherwise be read as H channels of W×C images."""
    if len(shape) == 4 and shape[3] in (1, 3) and shape[1] not in (1, 3) and shape[1] == shape[2]:
        raise DataError(
            f"data file {str(path)!r}: 'x' of shape {tuple(shape)} looks like channels-last (N, H, W, C) images; "
            f"hebbcore reads (N, C, H, W): save x.transpose(0, 3, 1, 2)"
        )


def read_npz_xy(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist (expected an .npz with arrays 'x' and 'y')")
    arrays = read_npz(path, "data file", names=("x", "y"))
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        with zipfile.ZipFile(path) as z:  # read_npz opened it: a zip archive
            held = sorted(n.removesuffix(".npy") for n in z.namelist())
        raise DataError(f"data file {str(path)!r} lacks array(s) {missing}; it has {held}")
    x, y = arrays["x"], arrays["y"]
    if x.ndim not in (2, 4):
        raise DataError(f"data file {str(path)!r}: 'x' must be (N, D) or (N, C, H, W), got shape {x.shape}")
    check_layout(path, x.shape)
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"data file {str(path)!r}: 'y' must be (N,) with N = {len(x)}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (len(y) and y.min() < 0):
        raise DataError(f"data file {str(path)!r}: 'y' must hold non-negative integer labels, got {y.dtype}")
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if not np.isfinite(x).all():
        raise DataError(f"data file {str(path)!r}: 'x' holds NaN or inf")
    return x, y.astype(np.int64)


class NpzSource(DataSource):
    name = "npz"
    Options = NpzOptions

    @classmethod
    def check(cls, options: NpzOptions) -> list[str]:
        problems = [] if options.path else ["path: the 'npz' source needs the path of an .npz file"]
        for k in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(options, k) < 1:
                problems.append(f"{k}: expected 0 <= {k} < 1, got {getattr(options, k)}")
        if options.val_fraction + options.test_fraction >= 1:
            problems.append("val_fraction + test_fraction: expected < 1 (some samples must train)")
        if options.n_classes < 0:
            problems.append(f"n_classes: expected >= 1 (0: max(y) + 1), got {options.n_classes}")
        return problems

    @classmethod
    def describe(cls, options: NpzOptions) -> DataInfo:
        path = Path(options.path)
        if not path.is_file():
            raise DataError(f"data file {str(path)!r} does not exist (expected an .npz with arrays 'x' and 'y')")
        try:
            with zipfile.ZipFile(path) as z, z.open("x.npy") as fh:  # the header only: x may be large
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape = read(fh)[0]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise DataError(
                f"data file {str(path)!r} is not a readable .npz with an array 'x' ({exc.__class__.__name__}: {exc})"
            ) from None
        check_layout(path, tuple(shape))
        n_classes = options.n_classes
        if not n_classes:
            y = read_npz(path, "data file", names=("y",)).get("y", np.zeros(1, np.int64))
            n_classes = int(y.max()) + 1 if y.size and np.issubdtype(y.dtype, np.integer) else 1
        return DataInfo(tuple(int(d) for d in shape[1:]), n_classes, int(shape[0]) if shape else 0)

    def load(self, options: NpzOptions, seed: int) -> Dataset:
        if not options.path:
            raise DataError("data.options.path: the 'npz' source needs the path of an .npz file")
        x, y = read_npz_xy(Path(options.path))
        n = len(x)
        order = np.random.default_rng(seed).permutation(n)
        n_val, n_test = int(round(n * options.val_fraction)), int(round(n * options.test_fraction))
        if n - n_val - n_test < 1:
            raise DataError(f"data file {options.path!r}: {n} samples leave no training data after the splits")
        val, test, train = order[:n_val], order[n_val : n_val + n_test], order[n_val + n_test :]
        n_classes = options.n_classes or int(y.max()) + 1
        if y.max() >= n_classes:
            raise DataError(f"data file {options.path!r}: label {int(y.max())} >= n_classes = {n_classes}")
        return Dataset(
            name=Path(options.path).stem,
            train=Split(x[train], y[train]),
            val=Split(x[val], y[val]),
            test=Split(x[test], y[test]),
            n_classes=n_classes,
        )
