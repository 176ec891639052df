"""The one array-math interface every backend implements.

:class:`Ops` is written once against an array namespace ``xp`` (``numpy`` or
``cupy``): a backend whose arrays follow the NumPy API subclasses it and sets
``xp``; a backend with another API (PyTorch) overrides every method. The core
and the rule plugins only ever call these methods and the arithmetic operators
of the arrays they return, so a rule written once runs on every backend.

Layouts: images are ``(N, C, H, W)``, conv kernels ``(K, C, kh, kw)``, dense
inputs ``(N, D)`` and dense weights ``(K, D)``. Every array is float32 unless
stated otherwise. ``tests/test_backend_signatures.py`` checks that every
backend keeps these signatures.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

Array = Any  # an array of the backend's own type


class Ops:
    """Array operations of one backend on one device.

    Subclasses set :attr:`name` (the ``--backend`` value) and :attr:`xp`, and
    override what must be native. Constructing one may raise
    :class:`hebbcore.errors.BackendUnavailable`.
    """

    name: ClassVar[str] = "base"
    xp: Any = np

    def __init__(self, device: str | None = None):
        self.device = device or "cpu"

    # ------------------------------------------------------------------ transfer
    def asarray(self, a: Any, dtype: str = "float32") -> Array:
        """Copy host data (numpy array, list) to this backend and device."""
        return self.xp.asarray(np.asarray(a), dtype=dtype)

    def to_numpy(self, a: Array) -> np.ndarray:
        """Copy an array of this backend to a host ``numpy.ndarray``."""
        return np.asarray(a)

    def synchronize(self) -> None:
        """Wait until queued device work has finished (a no-op on the CPU)."""

    # ------------------------------------------------------------------ reductions
    def sum(self, a: Array, axis: int | tuple[int, ...] | None = None) -> Array:
        return a.sum(axis=axis)

    def sqrt(self, a: Array) -> Array:
        return self.xp.sqrt(a)

    def relu(self, a: Array) -> Array:
        return self.xp.maximum(a, 0)

    def where(self, cond: Array, a: Array, b: Array | float) -> Array:
        return self.xp.where(cond, a, b)

    def isfinite_all(self, a: Array) -> bool:
        """True when no element is NaN or inf (one host sync)."""
        return bool(self.xp.isfinite(a).all())

    def argmax(self, a: Array, axis: int) -> Array:
        return a.argmax(axis=axis)

    def one_hot_argmax(self, a: Array, axis: int = 1) -> Array:
        """1.0 where ``a`` is largest along ``axis`` (first one on ties), 0.0 elsewhere."""
        xp = self.xp
        idx = xp.expand_dims(a.argmax(axis=axis), axis)
        shape = [1] * a.ndim
        shape[axis] = a.shape[axis]
        ar = xp.arange(a.shape[axis]).reshape(shape)
        return (idx == ar).astype(a.dtype)

    def take_rows(self, table: Array, index: Array) -> Array:
        """``table[index]`` along the first axis (index: integer array)."""
        return table[index]

    def broadcast_to(self, a: Array, shape: tuple[int, ...]) -> Array:
        """A read-only view of ``a`` broadcast to ``shape``."""
        return self.xp.broadcast_to(a, shape)

    # ------------------------------------------------------------------ layers
    def linear(self, x: Array, w: Array) -> Array:
        """``x @ w.T``: ``(N, D) x (K, D) -> (N, K)``."""
        return x @ w.T

    def linear_weight_sums(self, x: Array, g: Array) -> Array:
        """``Σ_n g[n, k] · x[n, :]``: ``(N, D), (N, K) -> (K, D)``."""
        return g.T @ x

    def conv2d(self, x: Array, w: Array, stride: int = 1) -> Array:
        """Valid cross-correlation, no bias: ``(N, C, H, W) x (K, C, kh, kw) -> (N, K, Ho, Wo)``.

        Default: one matrix product per kernel offset over a strided view of the
        input, so no batch of patches is ever unfolded.
        """
        xp = self.xp
        n, c, h, wd = x.shape
        k, _, kh, kw = w.shape
        ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
        xh = xp.ascontiguousarray(x.transpose(0, 2, 3, 1))  # NHWC
        wt = w.transpose(2, 3, 1, 0)  # (kh, kw, C, K)
        out = xp.zeros((n * ho * wo, k), dtype=x.dtype)
        for a in range(kh):
            for b in range(kw):
                xs = xh[:, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride, :]
                out += xs.reshape(-1, c) @ wt[a, b]
        return xp.ascontiguousarray(out.reshape(n, ho, wo, k).transpose(0, 3, 1, 2))

    def conv2d_weight_sums(self, x: Array, g: Array, kernel_size: tuple[int, int], stride: int = 1) -> Array:
        """``Σ_{n,p} g[n, k, p] · patch_p(x[n])``, the conv weight-gradient of ``x`` with output-gradient ``g``.

        ``(N, C, H, W), (N, K, Ho, Wo) -> (K, C, kh, kw)``. This is the sum every
        Hebbian conv update needs; no patch matrix is built.
        """
        xp = self.xp
        n, c, h, wd = x.shape
        _, k, ho, wo = g.shape
        kh, kw = kernel_size
        xh = xp.ascontiguousarray(x.transpose(0, 2, 3, 1))
        gm = xp.ascontiguousarray(g.transpose(0, 2, 3, 1)).reshape(-1, k)  # (NP, K)
        out = xp.empty((kh, kw, k, c), dtype=x.dtype)
        for a in range(kh):
            for b in range(kw):
                xs = xh[:, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride, :]
                out[a, b] = gm.T @ xs.reshape(-1, c)
        return xp.ascontiguousarray(out.transpose(2, 3, 0, 1))

    def patch_sq_norms(self, x: Array, kernel_size: tuple[int, int], stride: int = 1) -> Array:
        """``‖patch_p(x[n])‖²`` for every sample and output position: ``(N, C, H, W) -> (N, 1, Ho, Wo)``."""
        n, c, h, wd = x.shape
        kh, kw = kernel_size
        ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
        s = (x * x).sum(axis=1)
        out = self.xp.zeros((n, ho, wo), dtype=x.dtype)
        for a in range(kh):
            for b in range(kw):
                out += s[:, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride]
        return out[:, None]

    def max_pool2d(self, x: Array, kernel_size: int, stride: int) -> Array:
        n, c, h, wd = x.shape
        ho, wo = (h - kernel_size) // stride + 1, (wd - kernel_size) // stride + 1
        out = None
        for a in range(kernel_size):
            for b in range(kernel_size):
                xs = x[:, :, a:a + stride * (ho - 1) + 1:stride, b:b + stride * (wo - 1) + 1:stride]
                out = xs.copy() if out is None else self.xp.maximum(out, xs)
        return out

    def batch_moments(self, x: Array) -> tuple[Array, Array]:
        """Per-channel mean and biased variance over all axes but 1."""
        axes = (0,) if x.ndim == 2 else (0, 2, 3)
        mean = x.mean(axis=axes)
        var = ((x - self._expand(mean, x.ndim)) ** 2).mean(axis=axes)
        return mean, var

    def batch_norm(self, x: Array, mean: Array, var: Array, gamma: Array, beta: Array, eps: float) -> Array:
        """``(x - mean) / sqrt(var + eps) * gamma + beta`` with per-channel vectors."""
        scale = gamma / self.sqrt(var + eps)
        shift = beta - mean * scale
        return x * self._expand(scale, x.ndim) + self._expand(shift, x.ndim)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _expand(v: Array, ndim: int) -> Array:
        return v.reshape((1, -1) + (1,) * (ndim - 2))

    # ------------------------------------------------------------------ rule primitives (competition, PCA)
    def kernel_gram(self, y: Array) -> Array:
        """``G[k, j] = Σ_{n,p} y[n, k, p] · y[n, j, p]``, summed over samples and positions: ``(N, K[, Ho, Wo]) -> (K, K)``."""
        k = y.shape[1]
        ym = y if y.ndim == 2 else self.xp.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(-1, k)
        return ym.T @ ym

    def top_k_mask(self, a: Array, k: int, axis: int = 1) -> Array:
        """1.0 at the ``k`` largest entries along ``axis`` (lower index first on ties), 0.0 elsewhere; ``a.dtype``.

        Entries must be finite. Small ``k``: ``k`` passes of argmax (first index on ties); else a stable sort.
        """
        xp = self.xp
        if k <= 4:
            shape = [1] * a.ndim
            shape[axis] = a.shape[axis]
            ar = xp.arange(a.shape[axis]).reshape(shape)
            work, mask = a, xp.zeros(a.shape, dtype=bool)
            for _ in range(k):
                hit = xp.expand_dims(work.argmax(axis=axis), axis) == ar
                mask |= hit
                work = xp.where(hit, -xp.inf, work)
            return mask.astype(a.dtype)
        stable = {"kind": "stable"} if xp is np else {}  # cupy's sort is always stable and takes no 'kind'
        order = xp.argsort(-a, axis=axis, **stable)  # indices, largest first
        rank = xp.argsort(order, axis=axis, **stable)  # rank of each entry, 0 = largest
        return (rank < k).astype(a.dtype)

    def softmax(self, a: Array, axis: int = 1) -> Array:
        """``exp(a) / Σ exp(a)`` along ``axis`` (max-shifted)."""
        e = self.xp.exp(a - a.max(axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)
