"""Preprocessing transforms fitted on the training split: ``normalize`` and ``zca``.

- ``normalize``: per-channel mean and standard deviation of the training split;
  every split becomes ``(x - mean) / std``.
- ``zca``: ZCA whitening fitted on the training split (every feature of the
  flattened image: 3072 for CIFAR-10), ``W = U·diag(1/sqrt(λ + eps))·Uᵀ``;
  every split becomes ``(x - mean)·W``. The covariance and its
  eigendecomposition run in float64. The fitted ``(mean, W)`` is cached on disk
  (``cache_dir`` option, else ``$HEBBCORE_CACHE``, else ``~/.cache/hebbcore``)
  under a key made of the training data's hash and ``eps``, so it is computed
  once per training set.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import Dataset, Split, Transform
from hebbcore.io import WriteError, atomic_save_npz, read_npz


def _per_channel_axes(x: np.ndarray) -> tuple[int, ...]:
    return (0, 2, 3) if x.ndim == 4 else (0,)


def _bcast(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    return v.reshape((1, -1, 1, 1)) if x.ndim == 4 else v.reshape(1, -1)


def _map_splits(data: Dataset, fn) -> Dataset:
    return data.replace(
        train=Split(fn(data.train.x), data.train.y),
        val=Split(fn(data.val.x), data.val.y),
        test=Split(fn(data.test.x), data.test.y),
    )


@dataclass(frozen=True)
class NormalizeOptions:
    eps: float = 1e-8


class Normalize(Transform):
    """Per-channel standardisation with the training split's mean and std."""

    name = "normalize"
    Options = NormalizeOptions

    def apply(self, dataset: Dataset, options: NormalizeOptions) -> Dataset:
        x = dataset.train.x
        if len(x) == 0:
            raise DataError("normalize: the training split is empty")
        axes = _per_channel_axes(x)
        mean = x.mean(axis=axes, dtype=np.float64)
        std = x.std(axis=axes, dtype=np.float64)
        m = _bcast(mean.astype(np.float32), x)
        s = _bcast((std + options.eps).astype(np.float32), x)
        return _map_splits(dataset, lambda a: ((a - m) / s).astype(np.float32, copy=False))


@dataclass(frozen=True)
class ZcaOptions:
    eps: float = 0.1
    #: subtract the training images' per-pixel mean before whitening; false: ``W·x`` as torchvision's
    #: ``LinearTransformation(W)`` did before it took a mean vector (the covariance is centred either way)
    center: bool = True
    cache_dir: str = ""  # "": $HEBBCORE_CACHE, else ~/.cache/hebbcore
    cache: bool = True


def cache_dir(option: str = "") -> Path:
    if option:
        return Path(option).expanduser()
    env = os.environ.get("HEBBCORE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "hebbcore"


def data_key(x: np.ndarray, eps: float) -> str:
    """A key for the fitted whitening: sha256 of the training data's dtype, shape and bytes, and eps."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(x)
    h.update(f"{x.dtype.str}{x.shape}eps={eps!r}".encode())
    h.update(memoryview(x).cast("B"))
    return h.hexdigest()[:32]


#: Whitening matrices kept in the cache folder (about 73 MB each for CIFAR-sized images); the oldest go first.
MAX_CACHED = 8


def prune_cache(folder: Path, keep: Path, limit: int = MAX_CACHED) -> None:
    """Delete the oldest cached whitenings beyond ``limit`` (never ``keep``, the one just written)."""
    entries = sorted(folder.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in [p for p in entries if p != keep][max(limit - 1, 0) :]:
        with contextlib.suppress(OSError):
            old.unlink()


def fit_zca(x: np.ndarray, eps: float, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """``(mean (D,), W (D, D))`` of ZCA whitening fitted on ``x`` (N, ...), in float64."""
    flat = x.reshape(len(x), -1)
    n, d = flat.shape
    mean = flat.mean(axis=0, dtype=np.float64)
    cov = np.zeros((d, d), dtype=np.float64)
    for i in range(0, n, chunk):  # chunked so the float64 copy stays small
        c = flat[i : i + chunk].astype(np.float64) - mean
        cov += c.T @ c
    cov /= n
    lam, u = np.linalg.eigh(cov)
    lam = np.clip(lam, 0.0, None)
    w = (u * (1.0 / np.sqrt(lam + eps))) @ u.T
    return mean, w


class Zca(Transform):
    """ZCA whitening of the flattened images, fitted on the training split, cached on disk."""

    name = "zca"
    Options = ZcaOptions

    #: set by :meth:`apply`: "hit", "miss" (fitted and written) or "off"
    last_cache: str = ""
    announced: bool = False

    def fitted(self, x: np.ndarray, options: ZcaOptions) -> tuple[np.ndarray, np.ndarray]:
        if not options.cache:
            Zca.last_cache = "off"
            return fit_zca(x, options.eps)
        path = cache_dir(options.cache_dir) / "zca" / f"{data_key(x, options.eps)}.npz"
        if path.is_file():
            try:
                cached = read_npz(path, "the ZCA cache", names=("mean", "w"))
            except DataError:
                cached = {}  # unreadable cache entry: refit and overwrite
            d = int(np.prod(x.shape[1:]))
            mean, w = cached.get("mean"), cached.get("w")
            if mean is not None and w is not None and mean.shape == (d,) and w.shape == (d, d):
                Zca.last_cache = "hit"
                return mean, w
        mean, w = fit_zca(x, options.eps)
        with contextlib.suppress(WriteError):  # a read-only cache only costs the refit next time
            atomic_save_npz(path, {"mean": mean, "w": w})
            prune_cache(path.parent, keep=path, limit=MAX_CACHED)
            if not Zca.announced:  # once per process: where the disk went, and how to get it back
                Zca.announced = True
                print(f"hebbcore: cached the ZCA whitening ({path.stat().st_size / 2**20:.0f} MB) in {path.parent}; "
                      f"at most {MAX_CACHED} are kept; $HEBBCORE_CACHE moves the cache, deleting the folder clears it",
                      file=sys.stderr)  # fmt: skip
        Zca.last_cache = "miss"
        return mean, w

    def apply(self, dataset: Dataset, options: ZcaOptions) -> Dataset:
        x = dataset.train.x
        if len(x) < 2:
            raise DataError("zca: the training split needs at least 2 samples")
        if options.eps <= 0:
            raise DataError(f"zca: eps must be > 0, got {options.eps}")
        mean, w = self.fitted(x, options)
        m32 = mean.astype(np.float32) if options.center else np.zeros_like(mean, dtype=np.float32)
        w32 = w.astype(np.float32)

        def whiten(a: np.ndarray, chunk: int = 8192) -> np.ndarray:
            flat = a.reshape(len(a), -1)
            out = np.empty(flat.shape, dtype=np.float32)
            for i in range(0, len(flat), chunk):
                out[i : i + chunk] = (flat[i : i + chunk] - m32) @ w32  # W is symmetric
            return out.reshape(a.shape)

        return _map_splits(dataset, whiten)
