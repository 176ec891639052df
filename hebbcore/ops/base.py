"""The array operations every part of hebbcore uses: transfer, element-wise math, reductions, indexing.

:class:`ArrayOps` is the root of :class:`hebbcore.ops.Ops`; :mod:`hebbcore.ops.layers` and
:mod:`hebbcore.ops.rules` add the layers' and the learning rules' operations.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar

import numpy as np

Array = Any  # an array of the backend's own type


def per_kernel(v: Array | float, ndim: int) -> Array | float:
    """A ``(K,)`` or 0-d factor shaped to broadcast against a ``(K, ...)`` array of ``ndim`` axes (a float as is)."""
    return v if isinstance(v, float) else v.reshape((-1,) + (1,) * (ndim - 1))


class ArrayOps:
    """The part of :class:`hebbcore.ops.Ops` every other part uses."""

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

    def constant(self, key: Hashable, make: Callable[[], np.ndarray], dtype: str = "float32") -> Array:
        """The host array ``make()`` copied to this backend once and kept under ``key``.

        Rules take their fixed tables (class masks, triangular matrices) from here, so each
        device holds one copy per key. ``key`` must determine the array (include its sizes).
        """
        cache = self.__dict__.setdefault("_constants", {})
        if key not in cache:
            cache[key] = self.asarray(make(), dtype)
        return cache[key]

    # ------------------------------------------------------------------ reductions
    def sum(self, a: Array, axis: int | tuple[int, ...] | None = None) -> Array:
        return a.sum(axis=axis)

    def sqrt(self, a: Array) -> Array:
        return self.xp.sqrt(a)

    def relu(self, a: Array, out: Array | None = None) -> Array:
        """``max(a, 0)`` (NaN stays NaN): a new array, or written into ``out``, which may be ``a`` (one the caller
        owns: no new array of its size)."""
        return self.xp.maximum(a, 0, out=out)

    def power(self, a: Array, p: float) -> Array:
        """``a ** p`` element-wise, for ``a >= 0`` (0 stays 0) and ``p > 0``: the rectified powers of the
        triangle and power-ReLU layers and of Lebesgue norms (whose ``p >= 2`` the rules check). Default:
        ``exp(p · log a)`` in the layout of ``a`` (numpy's float32 ``**`` calls the C library's ``powf`` per
        element, about 12x slower); its relative error grows as ``eps · |p · log a|``, about 4e-6 at ``p = 4.5``
        and ``a = 1e4`` in float32 (``**``: 1e-7)."""
        if p == 1.0:
            return a
        if p == 2.0:
            return a * a
        if getattr(a, "ndim", 0) == 0:  # log of a 0-d array is a scalar, which exp cannot write into
            return a**p
        xp = self.xp
        with np.errstate(divide="ignore"):  # log 0 = -inf, which exp takes back to 0
            out = xp.log(a)
        out *= p
        return xp.exp(out, out=out)

    def where(self, cond: Array, a: Array, b: Array | float) -> Array:
        return self.xp.where(cond, a, b)

    def isfinite_all(self, a: Array) -> bool:
        """True when no element is NaN or inf (one host sync)."""
        return bool(self.xp.isfinite(a).all())

    def argmax(self, a: Array, axis: int) -> Array:
        return a.argmax(axis=axis)

    def argmax_among(self, a: Array, allowed: Array | None = None) -> Array:
        """The index of the largest ``a`` along axis 1 (the first on ties); with ``allowed`` ``(N, K)`` bool,
        among each sample's allowed entries only (0 where it allows none): a competition among some kernels."""
        if allowed is not None:
            a = self.where(allowed.reshape(tuple(allowed.shape) + (1,) * (a.ndim - 2)), a, -np.inf)
        return self.argmax(a, 1)

    def amax(self, a: Array, axis: int) -> Array:
        """The largest value along ``axis``, which is kept with length 1 (broadcasts against ``a``)."""
        return a.max(axis=axis, keepdims=True)

    def kernel_norms(self, w: Array) -> Array:
        """``‖w_k‖₂`` of each kernel ``w_k = w[k]``: ``(K, ...) -> (K,)``. Default: one ``einsum``, in any memory
        layout and without a ``w²`` temporary (numpy, conv3's 5.3M weights: 0.8 ms against 1.9-2.7); it sums in
        order rather than pairwise (relative error ~7e-7 on 13,824 float32 weights against ~6e-8)."""
        axes = "abcdefgh"[: w.ndim]
        return self.sqrt(self.xp.einsum(f"{axes},{axes}->a", w, w))

    def max_abs(self, a: Array) -> Array:
        """``max |a|`` over every element, as a 0-d array on the device (no host sync); NaN if ``a`` holds one.
        Default: the larger of ``max a`` and ``-min a``, two reads and no ``|a|`` temporary."""
        return self.xp.maximum(a.max(), -a.min())

    def concatenate(self, arrays: Sequence[Array], axis: int = 0) -> Array:
        """The arrays joined along ``axis``."""
        return self.xp.concatenate(list(arrays), axis=axis)

    @staticmethod
    def dtype_name(dtype: Any) -> str:
        """An array's dtype by the name :meth:`one_hot` and :meth:`asarray` take (``"float32"``, also for torch's)."""
        return str(dtype).removeprefix("torch.")

    def one_hot(self, index: Array, n: int, axis: int = 1, dtype: str = "float32") -> Array:
        """1.0 at ``index`` along a new axis ``axis`` of length ``n``: ``(N[, Ho, Wo]) -> (N, n[, Ho, Wo])``.

        The new axis is the fastest-varying in memory (channels-last), as :meth:`conv2d` returns activations.
        """
        xp = self.xp
        flat = index.reshape(-1)
        hot = xp.zeros(flat.shape[0] * n, dtype=dtype)
        if flat.shape[0]:
            hot[flat + n * xp.arange(flat.shape[0])] = 1
        return xp.moveaxis(hot.reshape(tuple(index.shape) + (n,)), -1, axis)

    def winner_counts(self, index: Array, n: int) -> Array:
        """How many entries of the integer array ``index`` equal each of ``0..n-1``: ``(n,)`` float32."""
        return self.xp.bincount(index.reshape(-1), minlength=n).astype("float32")

    def take_rows(self, table: Array, index: Array) -> Array:
        """``table[index]`` along the first axis (index: integer array)."""
        return table[index]

    def broadcast_to(self, a: Array, shape: tuple[int, ...]) -> Array:
        """A read-only view of ``a`` broadcast to ``shape``."""
        return self.xp.broadcast_to(a, shape)
