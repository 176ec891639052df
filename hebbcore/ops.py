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

import math
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np

Array = Any  # an array of the backend's own type


def inference_batch(device: str) -> int:
    """Rows per inference batch on ``device``: few on a CPU, where one batch's activations should stay in its
    caches (32 rows ran 2-6x faster than 1,000 on the paper's conv1 + probe), many on a GPU."""
    return 32 if str(device).startswith("cpu") else 1024


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

    def relu(self, a: Array) -> Array:
        return self.xp.maximum(a, 0)

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

    def minus_per_kernel(self, a: Array, v: Array, w: Array) -> Array:
        """``a − v_k·w_k`` for each kernel ``k``, a new array: ``a`` and ``w`` ``(K, ...)``, ``v`` ``(K,)``; the decay
        term of a Hebbian update (``Σ_p c_p·x_p − (Σ_p β_p)·w``). Default: the difference written over the product,
        one new array instead of two (numpy, conv3's weights: 2.5 ms against 7-8.5)."""
        xp = self.xp
        out = xp.multiply(v.reshape((-1,) + (1,) * (w.ndim - 1)), w)
        if out.shape != a.shape or xp.result_type(a, out) != out.dtype:  # a wider or broadcast a: a new result
            return a - out
        return xp.subtract(a, out, out=out)

    def decay_and_max_abs(self, a: Array, v: Array, w: Array) -> tuple[Array, Array]:
        """``(a − v_k·w_k, max |a − v·w|)`` for each kernel ``k``: the decay term of a Hebbian update
        (:meth:`minus_per_kernel`) and its largest magnitude (a 0-d array on the device, NaN if it holds one), by
        which Krotov's and SoftHebb's updates are divided. ``a`` and ``w`` ``(K, ...)``, ``v`` ``(K,)``; ``a`` may be
        overwritten (pass an array you own), so a backend can do it in one pass."""
        d = self.minus_per_kernel(a, v, w)
        return d, self.max_abs(d)

    def kernel_affine(self, w: Array, a: Array | float, s: Array, b: Array | float, out: Array | None = None) -> Array:
        """``a_k·w_k + b_k·s_k`` for each kernel ``k``: ``w`` and ``s`` ``(K, ...)``, ``a`` and ``b`` ``(K,)`` arrays
        in ``s``'s dtype or Python floats. A new array in ``s``'s layout, or written into ``out`` (which may be
        ``w`` or ``s``). The weight update of a Hebbian step, ``w + η·g_k·(S − β_k·w)`` with ``a = 1 − η·g·β`` and
        ``b = η·g`` (:class:`hebbcore.interfaces.KernelTerms`): one pass over the weights where the backend can,
        instead of one per term. Default: ``s·b`` written over, plus ``w·a``."""
        xp = self.xp
        new = xp.multiply(s, b if isinstance(b, float) else b.reshape((-1,) + (1,) * (s.ndim - 1)))
        if isinstance(a, float) and a == 1.0:
            new = xp.add(new, w, out=new)
        else:
            new = xp.add(new, w * (a if isinstance(a, float) else a.reshape((-1,) + (1,) * (w.ndim - 1))), out=new)
        if out is None:
            return new
        out[...] = new
        return out

    def max_abs(self, a: Array) -> Array:
        """``max |a|`` over every element, as a 0-d array on the device (no host sync); NaN if ``a`` holds one.
        Default: the larger of ``max a`` and ``-min a``, two reads and no ``|a|`` temporary."""
        return self.xp.maximum(a.max(), -a.min())

    def one_hot_argmax(self, a: Array, axis: int = 1) -> Array:
        """1.0 where ``a`` is largest along ``axis`` (first one on ties), 0.0 elsewhere."""
        if not a.size:
            return self.xp.zeros(a.shape, dtype=a.dtype)
        # argmax over a channels-last axis needs no copy; one zero fill and one scatter, no boolean temporary
        return self.one_hot(self.argmax(a, axis), a.shape[axis], axis, str(a.dtype))

    def winner_signed_sums(self, y: Array, u: Array, with_sum: bool = True) -> tuple[Array, Array | None, Array]:
        """``(s, Σ s, Σ s·u)``: ``s = y`` at the first largest ``u`` along axis 1 of each sample and position and
        ``-y`` elsewhere (SoftHebb's anti-Hebbian coefficients), with its sums over every axis but 1 (``(K,)``;
        ``Σ s`` None unless ``with_sum``). ``y`` and ``u`` are shaped alike and share no memory; ``y`` may be
        overwritten with ``s`` (pass an array you own), so a backend can do it all in one pass."""
        s = y * (self.one_hot_argmax(u, axis=1) * 2.0 - 1.0)
        axes = (0,) + tuple(range(2, s.ndim))
        return s, self.sum(s, axis=axes) if with_sum else None, self.sum(s * u, axis=axes)

    def ranked_coefficients(
        self, u: Array, rank: int, delta: float, with_sum: bool = True
    ) -> tuple[Array, Array | None, Array, tuple[Array, Array]]:
        """``(y, Σ y, Σ y·u, (first, kth))``: Krotov and Hopfield's ranking along axis 1 of each sample and
        position, ``y = 1`` at the largest ``u`` and ``-delta`` added at the ``rank``-th largest (``1 <= rank <=
        K``; ranks as repeated :meth:`argmax`, each winner then set to -inf), 0 elsewhere, shaped like ``u``; the
        sums over every axis but 1 (``(K,)``; ``Σ y`` None unless ``with_sum``); ``first`` and ``kth``, the two
        ranks' kernel indices (integers shaped like ``u`` without axis 1), so that a sum of ``y`` against the
        inputs adds two rows per position (:meth:`hebbcore.interfaces.HebbianContext.winner_correlation`)."""
        n, dtype = u.shape[1], self.dtype_name(u.dtype)
        first = index = self.argmax(u, 1)
        hit = self.one_hot(index, n, 1, dtype)
        y = hit
        masked = u
        for _ in range(rank - 1):  # ranks 2..rank: mask the last winner, take the next argmax
            masked = self.where(hit > 0, -math.inf, masked)
            index = self.argmax(masked, 1)
            hit = self.one_hot(index, n, 1, dtype)
        y = y - hit * delta
        axes = (0,) + tuple(range(2, y.ndim))
        return y, self.sum(y, axis=axes) if with_sum else None, self.sum(y * u, axis=axes), (first, index)

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

    # ------------------------------------------------------------------ layers
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

    # ------------------------------------------------------------------ rule primitives (competition, PCA)
    def kernel_gram(self, y: Array) -> Array:
        """``G[k, j] = Σ_{n,p} y[n, k, p] · y[n, j, p]`` over samples and positions: ``(N, K[, Ho, Wo]) -> (K, K)``."""
        ym = self._by_position(y)
        return ym.T @ ym

    #: Kernels per block of :meth:`lower_gram_product` (the width of its products).
    gram_block: ClassVar[int] = 64

    def lower_gram_product(self, y: Array, w: Array) -> Array:
        """``Σ_{j≤k} G_kj · w_j`` for each kernel ``k``, with ``G`` = :meth:`kernel_gram` ``(y)``: the decay of
        Sanger's and Hebbian PCA's update, shaped and laid out like ``w`` ``(K, ...)``.

        Default: the kernels in ``B`` blocks of about :attr:`gram_block`; each block's rows of ``G`` up to its
        last kernel (:meth:`_gram_rows`), the entries past the diagonal zeroed, times those kernels' weights:
        ``D·K²·(B + 1)/(2B)`` multiply-adds instead of ``tril(G)·W``'s ``D·K²`` (``D`` a kernel's size).
        """
        k = y.shape[1]
        gram_rows = self._gram_rows(self._by_position(y))
        wm, restore = self._kernel_rows(w)
        b = max(1, round(k / self.gram_block))
        bounds = [k * i // b for i in range(b + 1)]
        rows = [
            self._tril(gram_rows(a0, a1), a0) @ wm[:a1]  # zero where j > k
            for a0, a1 in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return restore(self.concatenate(rows))

    def _gram_rows(self, ym: Array) -> Callable[[int, int], Array]:
        """The function ``(a0, a1) -> G[a0:a1, :a1]`` of ``ym`` ``(P, K)``'s Gram matrix. Default: the whole
        ``G`` in one product, sliced (numpy's matmul makes ``YᵀY`` a BLAS ``syrk``: half the multiply-adds)."""
        g = ym.T @ ym
        return lambda a0, a1: g[a0:a1, :a1]

    def _by_position(self, y: Array) -> Array:
        """``y`` ``(N, K[, Ho, Wo])`` as a ``(P, K)`` matrix, one row per sample and position."""
        return y if y.ndim == 2 else self.xp.ascontiguousarray(y.transpose(0, 2, 3, 1)).reshape(-1, y.shape[1])

    def _kernel_rows(self, w: Array) -> tuple[Array, Callable[[Array], Array]]:
        """``w`` ``(K, ...)`` as ``(K, D)`` rows in its memory order (a view where it is dense), and the function
        that gives a ``(K, D)`` result ``w``'s shape and layout."""
        inner = sorted(range(1, w.ndim), key=lambda i: -self._stride(w, i))
        perm = (0, *inner)
        rows = self._permute(w, perm)
        shape, inverse = tuple(rows.shape), tuple(int(i) for i in np.argsort(perm))
        return rows.reshape(w.shape[0], -1), lambda r: self._permute(r.reshape(shape), inverse)

    @staticmethod
    def _stride(a: Array, axis: int) -> int:
        return int(a.strides[axis])

    @staticmethod
    def _permute(a: Array, axes: tuple[int, ...]) -> Array:
        return a.transpose(axes)

    def _tril(self, a: Array, k: int) -> Array:
        """``a`` with the entries above its ``k``-th diagonal zeroed (``j > i + k``)."""
        return self.xp.tril(a, k)

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
        """``exp(a) / Σ exp(a)`` along ``axis`` (max-shifted); outputs below the smallest normal float are 0.

        Subnormal outputs (common when one kernel dominates a wide competition) slow every later product on
        x86 by one to two orders of magnitude (docs/benchmarks.md). Flushing them here, rather than turning the
        processor's flush-to-zero mode on, leaves the user's process and its other libraries alone.
        """
        xp = self.xp
        e = a - a.max(axis=axis, keepdims=True)
        # in place on that one new array: numpy's out-of-place passes and where() took 3-4x as long
        xp.exp(e, out=e)
        e /= e.sum(axis=axis, keepdims=True)
        e *= e >= xp.finfo(e.dtype).tiny  # NaN >= tiny is False, and NaN * 0 stays NaN for the NaN check
        return e

    # ------------------------------------------------------------------ fused response
    def solve(self, a: Array, b: Array) -> Array:
        """``x`` with ``a @ x = b`` for a square, well-conditioned ``a`` ``(D, D)`` and ``b`` ``(D, K)``."""
        return self.xp.linalg.solve(a, b)

    def cosine(self, dot: Array, w_norm: Array, x_norm: Array, eps: float) -> Array:
        """``dot / (w_norm · x_norm + eps)`` (norms broadcast against ``dot``), in the memory layout of ``dot``.

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
