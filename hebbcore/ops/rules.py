"""The learning rules' array operations: decays and weight updates, competition, Gram products, softmax.

Written once against ``xp``, as :class:`hebbcore.ops.Ops` is; a backend overrides what must be native.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from .base import Array, ArrayOps, per_kernel


class RuleOps(ArrayOps):
    """The operations the learning rules and the Hebbian step call beyond the layers'."""

    def minus_per_kernel(self, a: Array, v: Array, w: Array) -> Array:
        """``a − v_k·w_k`` for each kernel ``k``, a new array: ``a`` and ``w`` ``(K, ...)``, ``v`` ``(K,)``; the decay
        term of a Hebbian update (``Σ_p c_p·x_p − (Σ_p β_p)·w``). Default: the difference written over the product,
        one new array instead of two (numpy, conv3's weights: 2.5 ms against 7-8.5)."""
        xp = self.xp
        out = xp.multiply(per_kernel(v, w.ndim), w)
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
        """``a_k·w_k + b_k·s_k`` for each kernel ``k``: ``w`` and ``s`` ``(K, ...)`` of one shape and dtype, ``a`` and
        ``b`` ``(K,)`` or 0-d arrays in ``s``'s dtype, or Python floats. A new array in ``s``'s layout, or written
        into ``out`` (which may be ``w`` or ``s``). The weight update of a Hebbian step, ``w + η·g_k·(S − β_k·w)``
        with ``a = 1 − η·g·β`` and ``b = η·g`` (:class:`hebbcore.interfaces.KernelTerms`): one pass over the weights
        where the backend can, instead of one per term. Default: ``s·b`` written over, plus ``w·a``."""
        xp = self.xp
        new = xp.multiply(s, per_kernel(b, s.ndim))
        if isinstance(a, float) and a == 1.0:
            new = xp.add(new, w, out=new)
        else:
            new = xp.add(new, w * per_kernel(a, w.ndim), out=new)
        if out is None:
            return new
        out[...] = new
        return out

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
        gram_rows = self._gram_rows(y)
        wm, restore = self._kernel_rows(w)
        b = max(1, round(k / self.gram_block))
        bounds = [k * i // b for i in range(b + 1)]
        rows = [
            self._tril(gram_rows(a0, a1), a0) @ wm[:a1]  # zero where j > k
            for a0, a1 in zip(bounds[:-1], bounds[1:], strict=True)
        ]
        return restore(self.concatenate(rows))

    def _gram_rows(self, y: Array) -> Callable[[int, int], Array]:
        """The function ``(a0, a1) -> G[a0:a1, :a1]`` of ``y`` ``(N, K[, Ho, Wo])``'s Gram matrix (:meth:`kernel_gram`).
        Default: the whole ``G`` in one product, sliced (numpy's matmul makes ``YᵀY`` a BLAS ``syrk``: half the
        multiply-adds)."""
        g = self.kernel_gram(y)
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

    def solve(self, a: Array, b: Array) -> Array:
        """``x`` with ``a @ x = b`` for a square, well-conditioned ``a`` ``(D, D)`` and ``b`` ``(D, K)``."""
        return self.xp.linalg.solve(a, b)
