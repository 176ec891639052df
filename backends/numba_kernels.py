"""The Numba kernels behind :mod:`hebbcore_backends.cpu_kernels` (which imports this module only when asked to).

Offsets are unsigned: Numba wraps negative signed indices, and that check keeps LLVM from vectorising the adds.
"""

import numba
import numpy as np
from numba import uint64

_jit = numba.njit(nogil=True, cache=True)


@_jit
def winner_sums(xh, index, acc, s0, s1, kh, kw, stride):  # pragma: no cover (compiled)
    """Add, for samples ``s0 <= s < s1``, each position's patch of ``xh`` (N, H, W, C) to its winner's row of
    ``acc`` (flat ``(K, kh, kw, C)``)."""
    _, h, wd, c = xh.shape
    ho, wo = index.shape[1], index.shape[2]
    span = kw * c
    row = wd * c
    flat = xh.reshape(-1)
    for s in range(s0, s1):
        for i in range(ho):
            for j in range(wo):
                src0 = (s * h + i * stride) * row + j * stride * c
                dst0 = index[s, i, j] * kh * span
                for a in range(kh):
                    src = uint64(src0 + a * row)
                    dst = uint64(dst0 + a * span)
                    for e in range(uint64(span)):
                        acc[dst + e] += flat[src + e]


@numba.njit(nogil=True, cache=True, fastmath={"nnan", "reassoc", "nsz"})  # only max and min reassociate: exact
def cosine_argmax(dot, w_norm, x_norm, eps, penalty, out, index, s0, s1):  # pragma: no cover (compiled)
    """For samples ``s0 <= s < s1`` of ``dot`` (N, P, K): ``out = dot / (w_norm · x_norm + eps)`` and ``index``
    (N, P), the first ``k`` with the largest ``out + penalty[s]`` (``penalty`` 0 where a kernel may win, ``-inf``
    where not; 0 where none may). Each row's cosines are still in cache when the competition reads them."""
    _, p, k = dot.shape
    none = numba.int32(k)
    for s in range(s0, s1):
        pen = penalty[s]
        for q in range(p):
            d = dot[s, q]
            o = out[s, q]
            xs = x_norm[s, q]
            top = -np.inf
            for j in range(uint64(k)):
                o[j] = d[j] / (w_norm[j] * xs + eps)
                top = max(top, o[j] + pen[j])
            best = none
            for j in range(uint64(k)):  # the first index at the top, as a min (vectorised) rather than a search
                best = min(best, numba.int32(j) if o[j] + pen[j] == top else none)
            index[s, q] = best if best < none and top > -np.inf else 0  # a NaN row finds no top


@numba.njit(parallel=True, cache=True)
def winner_sums_parallel(xh, index, acc, bounds, kh, kw, stride):  # pragma: no cover (compiled)
    """:func:`winner_sums` of the sample range ``bounds[t]:bounds[t + 1]`` into ``acc[t]``, the ranges in
    parallel (Numba's threading layer: OpenMP where it has one)."""
    for t in numba.prange(len(bounds) - 1):
        winner_sums(xh, index, acc[t], bounds[t], bounds[t + 1], kh, kw, stride)


@numba.njit(parallel=True, cache=True)
def cosine_argmax_parallel(dot, w_norm, x_norm, eps, penalty, out, index, bounds):  # pragma: no cover (compiled)
    """:func:`cosine_argmax` of the sample ranges ``bounds[t]:bounds[t + 1]`` in parallel."""
    for t in numba.prange(len(bounds) - 1):
        cosine_argmax(dot, w_norm, x_norm, eps, penalty, out, index, bounds[t], bounds[t + 1])
