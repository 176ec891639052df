"""The layers' array operations: products, convolutions and their weight sums, pooling, norms, cosines.

Written once against ``xp``, as :class:`hebbcore.ops.Ops` is; a backend overrides what must be native.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from .base import Array, ArrayOps


class LayerOps(ArrayOps):
    """The operations of the layers' forward passes and of their Hebbian sums."""

    def linear(self, x: Array, w: Array) -> Array:
        """``x @ w.T``: ``(N, D) x (K, D) -> (N, K)``."""
        return x @ w.T

    def linear_weight_sums(self, x: Array, g: Array) -> Array:
        """``Σ_n g[n, k] · x[n, :]``: ``(N, D), (N, K) -> (K, D)``."""
        return g.T @ x

    def adds_winner_rows(self, x: Array, kind: str) -> bool:
        """True when :meth:`conv2d_winner_sums` (``kind = "conv"``) or :meth:`linear_winner_sums` (``"linear"``)
        adds each winner's patch or row to its kernel's sum for input ``x``, False where it multiplies a one-hot
        (a ``K``-wide product): then several winners per position are summed as one dense product
        (:meth:`hebbcore.interfaces.HebbianContext.winner_correlation`). Default: the conv's sorted blocks add,
        the linear one-hot product does not."""
        return kind == "conv"

    def linear_winner_sums(self, x: Array, index: Array, n_kernels: int) -> Array:
        """``Σ_{n: index[n] = k} x[n, :]`` for each kernel ``k``: ``(N, D), (N,) int -> (K, D)``; equal to
        :meth:`linear_weight_sums` of ``one_hot(index)``. Default: that product (a backend may add the rows)."""
        return self.linear_weight_sums(x, self.one_hot(index, n_kernels, axis=1, dtype=str(x.dtype)))

    def conv2d(self, x: Array, w: Array, stride: int = 1) -> Array:
        """Valid cross-correlation, no bias: ``(N, C, H, W) x (K, C, kh, kw) -> (N, K, Ho, Wo)``.

        Default: channels-last implicit GEMM. The patches of a chunk of samples
        are copied from a strided view into a buffer of at most
        :attr:`im2col_max_bytes` and multiplied with the kernels in one matrix
        product, so memory stays bounded whatever the batch size. The result is
        an ``(N, K, Ho, Wo)`` view of channels-last memory, which the next layer
        reads without a transpose.
        """
        xp = self.xp
        n, c, h, wd = x.shape
        k, _, kh, kw = w.shape
        ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
        xh = self._channels_last(x)
        # each kernel's (c, a, b) reordered to the patches' (a, b, c): a transpose within one kernel, in cache (4x
        # faster than a whole-tensor (a, b, c, k) copy); the matrix product reads the result transposed
        wm = xp.ascontiguousarray(w.reshape(k, c, kh * kw).transpose(0, 2, 1)).reshape(k, kh * kw * c)
        out = xp.empty((n, ho, wo, k), dtype=x.dtype)
        om, p = out.reshape(n * ho * wo, k), ho * wo
        for s, e, cols in self._patch_chunks(xh, kh, kw, stride, ho, wo):
            xp.matmul(cols, wm.T, out=om[s * p : e * p])
        return out.transpose(0, 3, 1, 2)

    def conv2d_weight_sums(self, x: Array, g: Array, kernel_size: tuple[int, int], stride: int = 1) -> Array:
        """``Σ_{n,p} g[n, k, p] · patch_p(x[n])``, the conv weight-gradient of ``x`` with output-gradient ``g``.

        ``(N, C, H, W), (N, K, Ho, Wo) -> (K, C, kh, kw)``. This is the sum every
        Hebbian conv update needs. Default: the bounded patch chunks of
        :meth:`conv2d`, one matrix product each. When ``g`` is broadcast over
        the positions (stride 0, e.g. a teacher signal), ``Σ_p g·patch_p =
        g·Σ_p patch_p`` is computed from per-sample window sums instead.
        """
        xp = self.xp
        n, c, h, wd = x.shape
        _, k, ho, wo = g.shape
        kh, kw = kernel_size
        xh = self._channels_last(x)
        if ho * wo > 1 and g.strides[2] == 0 and g.strides[3] == 0:
            sums = self._window_sums(xh, kh, kw, stride, ho, wo).reshape(n, kh * kw * c)
            out = g[:, :, 0, 0].T @ sums
        else:
            gm, p = self._channels_last(g).reshape(n * ho * wo, k), ho * wo
            out = None
            for s, e, cols in self._patch_chunks(xh, kh, kw, stride, ho, wo):
                part = gm[s * p : e * p].T @ cols  # (K, kh·kw·C)
                out = part if out is None else xp.add(out, part, out=out)
            if out is None:
                return xp.zeros((k, c, kh, kw), dtype=x.dtype)
        # each kernel's (a, b, c) back to (c, a, b): a transpose within one kernel, in cache
        return xp.ascontiguousarray(out.reshape(k, kh * kw, c).transpose(0, 2, 1)).reshape(k, c, kh, kw)

    def conv2d_winner_sums(
        self, x: Array, index: Array, n_kernels: int, kernel_size: tuple[int, int], stride: int = 1
    ) -> Array:
        """``Σ_{(n,p): index[n,p] = k} patch_p(x[n])`` for each kernel ``k``: the input patches each kernel won.

        ``(N, C, H, W), (N, Ho, Wo) int -> (K, C, kh, kw)``. Equal to :meth:`conv2d_weight_sums` with
        ``g = one_hot(index)``, at O(P·C·kh·kw) instead of O(P·C·kh·kw·K): one winner per position is one
        row to add, not K. Default: the positions sorted by winner (a stable sort of small integers), their
        patches gathered from a strided view of the input straight into that order, one sum over each
        winner's contiguous block. The rows are gathered :attr:`winner_rows_max_bytes` at a time, so that
        each chunk is still in cache when its blocks are summed.
        """
        xp = self.xp
        n, c, h, wd = x.shape
        kh, kw = kernel_size
        ho, wo = index.shape[1:]
        d = kh * kw * c
        xh = self._channels_last(x)
        it = xh.itemsize
        # One patch per input pixel, the pixel its window starts at (rows overlap; only the winners' are read):
        # (b, c) of a patch row are contiguous in channels-last memory, one axis of kw·C elements.
        starts = max(0, n * h * wd - (kh - 1) * wd - (kw - 1))  # none in an empty batch
        patches = self._strided(xh, (starts, kh, kw * c), (c * it, wd * c * it, it))
        start = (
            xp.arange(n).reshape(-1, 1, 1) * (h * wd)
            + xp.arange(ho).reshape(-1, 1) * (stride * wd)
            + xp.arange(wo) * stride
        ).reshape(-1)  # the pixel each output position's window starts at
        win = index.reshape(-1)
        stable = {"kind": "stable"} if xp is np else {}  # numpy: a radix sort for 16-bit keys; cupy's is stable
        order = xp.argsort(win.astype(xp.uint16) if n_kernels <= 1 << 16 else win, **stable)
        start = start[order]
        bounds = [0, *np.cumsum(self.to_numpy(xp.bincount(win, minlength=n_kernels))).tolist()]
        out = xp.zeros((n_kernels, d), dtype=x.dtype)
        m = max(1, self.winner_rows_max_bytes // max(d * it, 1))
        k, rows_total = 0, int(order.shape[0])
        for r0 in range(0, rows_total, m):
            r1 = min(rows_total, r0 + m)
            rows = patches[start[r0:r1]].reshape(r1 - r0, d)  # this chunk of the sorted patches, in one copy
            while k < n_kernels and bounds[k] < r1:
                a, b = max(bounds[k], r0), min(bounds[k + 1], r1)
                if b > a:
                    out[k] += rows[a - r0 : b - r0].sum(axis=0)
                if bounds[k + 1] > r1:  # this kernel's block goes on in the next chunk
                    break
                k += 1
        return xp.ascontiguousarray(out.reshape(n_kernels, kh, kw, c).transpose(0, 3, 1, 2))

    def patch_sq_norms(self, x: Array, kernel_size: tuple[int, int], stride: int = 1) -> Array:
        """``‖patch_p(x[n])‖²`` for every sample and output position: ``(N, C, H, W) -> (N, 1, Ho, Wo)``."""
        xp = self.xp
        n, c, h, wd = x.shape
        kh, kw = kernel_size
        ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
        s = xp.ascontiguousarray(self._channel_sq_sums(x))  # (N, H, W)
        it = s.itemsize
        rows = self._strided(s, (n, h, wo, kw), (h * wd * it, wd * it, stride * it, it)).sum(axis=3)
        rows = xp.ascontiguousarray(rows)  # (N, H, Wo): sums over each window's columns
        out = self._strided(rows, (n, ho, wo, kh), (h * wo * it, stride * wo * it, it, wo * it)).sum(axis=3)
        return out[:, None]

    def _channel_sq_sums(self, x: Array) -> Array:
        """``Σ_c x[n, c, h, w]²``: ``(N, C, H, W) -> (N, H, W)``, in one pass without an ``x·x`` temporary."""
        return self.xp.einsum("nchw,nchw->nhw", x, x)

    @staticmethod
    def _window_offsets(x: Array, kernel_size: int, stride: int) -> Iterator[Array]:
        """For each offset (a, b) in a window: the strided view of ``x`` holding that element of every window."""
        h, wd = x.shape[2:]
        ho, wo = (h - kernel_size) // stride + 1, (wd - kernel_size) // stride + 1
        for a in range(kernel_size):
            for b in range(kernel_size):
                yield x[:, :, a : a + stride * (ho - 1) + 1 : stride, b : b + stride * (wo - 1) + 1 : stride]

    def max_pool2d(self, x: Array, kernel_size: int, stride: int) -> Array:
        out: Array = None
        for xs in self._window_offsets(x, kernel_size, stride):
            out = xs if out is None else self.xp.maximum(out, xs)  # keeps the memory layout of x
        return out.copy(order="K") if kernel_size == 1 else out

    def avg_pool2d(self, x: Array, kernel_size: int, stride: int) -> Array:
        """Mean over each ``kernel_size``² window, ``stride`` apart (no padding)."""
        out: Array = None
        for xs in self._window_offsets(x, kernel_size, stride):
            out = xs * 1.0 if out is None else out + xs
        return out * (1.0 / (kernel_size * kernel_size))

    def pad2d(self, x: Array, padding: int, mode: str = "zeros") -> Array:
        """``x`` ``(N, C, H, W)`` with ``padding`` values added before and after H and W: zeros, the mirror
        image without the edge (``"reflect"``) or copies of the edge (``"replicate"``), as torch's ``F.pad``."""
        p = padding
        xp_mode = {"zeros": "constant", "reflect": "reflect", "replicate": "edge"}[mode]
        return self.xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode=xp_mode)

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

    # ------------------------------------------------------------------ cosine similarity
    def cosine(self, dot: Array, w_norm: Array, x_norm: Array, eps: float) -> Array:
        """``dot / (w_norm · x_norm + eps)`` (norms broadcast against ``dot``): a new array in ``dot``'s layout.

        Default: when ``dot`` is ``(N, K)`` or a channels-last ``(N, K, Ho, Wo)`` view (what :meth:`conv2d`
        returns), the denominator is written by one matrix product ``[‖x‖, 1] · [‖w‖; eps]`` (BLAS uses every
        thread, numpy's element-wise operations one), then divided into in place.
        """
        xp = self.xp
        if xp is None:
            return dot / (w_norm * x_norm + eps)
        k = dot.shape[1]
        rows = dot.transpose(0, 2, 3, 1) if dot.ndim == 4 else dot
        per_kernel, per_position = (1, k, *(1,) * (dot.ndim - 2)), (dot.shape[0], 1, *dot.shape[2:])
        if rows.flags.c_contiguous and tuple(w_norm.shape) == per_kernel and tuple(x_norm.shape) == per_position:
            lhs = xp.ones((x_norm.size, 2), dtype=dot.dtype)
            lhs[:, 0] = x_norm.reshape(-1)  # positions in (n, h, w) order, as the rows of dot's memory
            rhs = xp.empty((2, k), dtype=dot.dtype)
            rhs[0], rhs[1] = w_norm.reshape(-1), eps
            den = xp.empty_like(rows)
            xp.matmul(lhs, rhs, out=den.reshape(-1, k))
            den = den.transpose(0, 3, 1, 2) if dot.ndim == 4 else den
            return xp.divide(dot, den, out=den)
        den = xp.empty_like(dot)
        xp.multiply(w_norm, x_norm, out=den)
        den += eps
        return xp.divide(dot, den, out=den)

    def cosine_argmax(
        self, dot: Array, w_norm: Array, x_norm: Array, eps: float, allowed: Array | None = None
    ) -> tuple[Array, Array]:
        """``(cosine(dot, w_norm, x_norm, eps), argmax_among(that, allowed))``: the similarity and the winner of a
        winner-takes-all competition, which a backend may compute in one pass over ``dot``."""
        cos = self.cosine(dot, w_norm, x_norm, eps)
        return cos, self.argmax_among(cos, allowed)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _expand(v: Array, ndim: int) -> Array:
        return v.reshape((1, -1) + (1,) * (ndim - 2))

    #: Upper bound of the patch buffer of :meth:`conv2d` / :meth:`conv2d_weight_sums` (bytes).
    im2col_max_bytes: ClassVar[int] = 16 << 20
    #: The winners' patch rows :meth:`conv2d_winner_sums` gathers at a time (bytes): about one core's L2 cache.
    winner_rows_max_bytes: ClassVar[int] = 1 << 20

    def _channels_last(self, x: Array) -> Array:
        """``x`` ``(N, C, H, W)`` as a C-contiguous ``(N, H, W, C)`` array (no copy when it already is one)."""
        return self.xp.ascontiguousarray(x.transpose(0, 2, 3, 1))

    def _strided(self, a: Array, shape: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """A read-only strided view of the C-contiguous array ``a`` (strides in bytes)."""
        return self.xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)

    def _patch_chunks(
        self, xh: Array, kh: int, kw: int, stride: int, ho: int, wo: int, max_bytes: int | None = None
    ) -> Iterator[tuple[int, int, Array]]:
        """Yield ``(start, stop, cols)`` over chunks of samples of the channels-last input ``xh``.

        ``cols[(n - start)·Ho·Wo + i·Wo + j, (a·kw + b)·C + c] = xh[n, i·s + a, j·s + b, c]``; one buffer of at
        most ``max_bytes`` (default :attr:`im2col_max_bytes`; or one sample) is reused for every chunk.
        """
        n, h, wd, c = xh.shape
        it = xh.itemsize
        # (b, c) of a patch row are contiguous in channels-last memory: one axis of kw·C elements
        view = self._strided(
            xh, (n, ho, wo, kh, kw * c), (h * wd * c * it, stride * wd * c * it, stride * c * it, wd * c * it, it)
        )
        per_sample = ho * wo * kh * kw * c * it
        m = max(1, min(n, (max_bytes or self.im2col_max_bytes) // max(per_sample, 1)))
        buf = self.xp.empty((m, ho, wo, kh, kw * c), dtype=xh.dtype)
        for s in range(0, n, m):
            e = min(n, s + m)
            b = buf[: e - s]
            b[...] = view[s:e]
            yield s, e, b.reshape((e - s) * ho * wo, kh * kw * c)

    def _window_sums(self, xh: Array, kh: int, kw: int, stride: int, ho: int, wo: int) -> Array:
        """``Σ_p patch_p(x[n])`` for each sample, ``(N, kh, kw, C)``, from the channels-last input (two reductions)."""
        xp = self.xp
        n, h, wd, c = xh.shape
        it = xh.itemsize
        cols = self._strided(xh, (n, h, kw, wo, c), (h * wd * c * it, wd * c * it, c * it, stride * c * it, it))
        rows = xp.ascontiguousarray(cols.sum(axis=3))  # (N, H, kw, C)
        win = self._strided(rows, (n, kh, ho, kw, c), (h * kw * c * it, kw * c * it, stride * kw * c * it, c * it, it))
        return win.sum(axis=2)
