"""The NumPy reference backend: :class:`hebbcore.ops.Ops` as written, on the CPU."""

from __future__ import annotations

import numpy as np

from hebbcore.errors import BackendUnavailable
from hebbcore.ops import Ops

from . import cpu_kernels


class NumpyOps(Ops):
    name = "numpy"
    xp = np

    def __init__(self, device: str | None = None):
        if device not in (None, "cpu"):
            raise BackendUnavailable(f"backend 'numpy' runs on the CPU only, not on device {device!r}")
        super().__init__("cpu")

    # Compiled kernels (cpu_kernels) where Numba is installed; the array code of Ops otherwise.
    @staticmethod
    def _kernels_for(x) -> bool:
        """True when the compiled kernels take ``x``: Numba enabled and a float32/64 array."""
        return cpu_kernels.enabled() and x.dtype in cpu_kernels.KERNEL_DTYPES

    def conv2d_winner_sums(self, x, index, n_kernels, kernel_size, stride=1):
        if not self._kernels_for(x):
            return super().conv2d_winner_sums(x, index, n_kernels, kernel_size, stride)
        kh, kw = kernel_size
        out = cpu_kernels.winner_sums(self._channels_last(x), index, n_kernels, kh, kw, stride, self.threads)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    def adds_winner_rows(self, x, kind):
        return kind == "conv" or self._kernels_for(x)

    def linear_winner_sums(self, x, index, n_kernels):
        if not self._kernels_for(x):
            return super().linear_winner_sums(x, index, n_kernels)
        return cpu_kernels.linear_winner_sums(x, index, n_kernels, self.threads)

    def cosine_argmax(self, dot, w_norm, x_norm, eps, allowed=None):
        if cpu_kernels.enabled():
            fused = cpu_kernels.cosine_argmax_of(dot, w_norm, x_norm, eps, allowed, self.threads)
            if fused is not None:
                return fused
        return super().cosine_argmax(dot, w_norm, x_norm, eps, allowed)

    # The kernels add Σ y in the same pass whether asked or not: it costs nothing there.
    def winner_signed_sums(self, y, u, with_sum=True):
        if cpu_kernels.enabled():
            fused = cpu_kernels.winner_signed_sums_of(y, u, self.threads)
            if fused is not None:
                return fused
        return super().winner_signed_sums(y, u, with_sum)

    def kernel_affine(self, w, a, s, b, out=None):
        if self._kernels_for(s) and isinstance(w, np.ndarray):
            fused = cpu_kernels.kernel_affine_of(w, np.asarray(a), s, np.asarray(b), out, self.threads)
            if fused is not None:
                return fused
        return super().kernel_affine(w, a, s, b, out)

    def decay_and_max_abs(self, a, v, w):
        if cpu_kernels.enabled() and isinstance(a, np.ndarray) and isinstance(w, np.ndarray):
            fused = cpu_kernels.decay_and_max_abs_of(a, np.asarray(v), w, self.threads)
            if fused is not None:
                return fused
        return super().decay_and_max_abs(a, v, w)

    def ranked_coefficients(self, u, rank, delta, with_sum=True):
        if cpu_kernels.enabled():
            fused = cpu_kernels.ranked_of(u, rank, delta, self.threads)
            if fused is not None:
                return fused
        return super().ranked_coefficients(u, rank, delta, with_sum)

    #: The kernels' threads: one, since numpy's BLAS workers spin after each product and leave another thread
    #: no core (``benchmarks/blas_spin.py``; paper net at 2 threads, Hebbian / forward 0.84-0.93 on one kernel
    #: thread against 0.77-0.80 on two).
    threads = 1
