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


@_jit  # no fast-math: NaN and inf follow IEEE and numpy here. Called from Python only: a caller's flags would apply
def cosine_argmax_exact(dot, w_norm, x_norm, eps, penalty, out, index):  # pragma: no cover (compiled)
    """The rows :func:`cosine_argmax` left (``index < 0``: a non-finite or huge ``dot``) as numpy computes them:
    ``out = dot / (w_norm·x_norm + eps)``, then ``argmax(out + penalty)`` where the first NaN wins."""
    n, p, k = dot.shape
    for s in range(n):
        for q in range(p):
            if index[s, q] >= 0:
                continue
            d, o, pen, xs = dot[s, q], out[s, q], penalty[s], x_norm[s, q]
            best = 0
            top = -np.inf
            for j in range(k):
                o[j] = d[j] / (w_norm[j] * xs + eps)
                v = o[j] + pen[j] if pen[j] == 0 else -np.inf
                if top == top and (v != v or v > top or j == 0):
                    top, best = v, j
            index[s, q] = best


_FAST = {"nnan", "reassoc", "nsz"}  # max and min vectorise; exact anyway on the finite rows this sees


@numba.njit(nogil=True, cache=True, fastmath=_FAST)
def cosine_argmax(dot, dot_bits, w_norm, x_norm, eps, penalty, big, out, index, s0, s1):  # pragma: no cover (compiled)
    """For samples ``s0 <= s < s1`` of ``dot`` (N, P, K): ``out = dot / (w_norm · x_norm + eps)`` and ``index``
    (N, P), numpy's ``argmax(out + penalty[s])``, ``penalty`` 0 where a kernel may win and ``-inf`` where not:
    the first largest allowed value (0 where none is above ``-inf``). Each row's cosines are still in cache when
    the competition reads them.

    The caller guarantees finite norms ``>= 0`` and ``eps > 0``; ``dot_bits`` is ``dot`` seen as integers, whose
    exponent field (``big``: the mask of that field, and the smallest exponent counted as huge) flags a row with
    a non-finite or huge value. Fast-math assumes no NaN, so such a row gets ``index = -1``, left to
    :func:`cosine_argmax_exact`; every other row's cosines are finite."""
    _, p, k = dot.shape
    none = numba.int32(k)
    field, huge = big[0], big[1]
    for s in range(s0, s1):
        pen = penalty[s]
        for q in range(p):
            d = dot[s, q]
            db = dot_bits[s, q]
            o = out[s, q]
            xs = x_norm[s, q]
            odd = False
            for j in range(uint64(k)):  # integer tests: fast-math cannot assume them away
                odd |= (db[j] & field) >= huge
            if odd:
                index[s, q] = -1
                continue
            top = -np.inf
            for j in range(uint64(k)):
                o[j] = d[j] / (w_norm[j] * xs + eps)
                top = max(top, o[j] + pen[j])
            best = none
            if top > -np.inf:
                for j in range(uint64(k)):  # the first index at the top, as a min (vectorised) rather than a search
                    best = min(best, numba.int32(j) if o[j] + pen[j] == top else none)
            index[s, q] = best if best < none else 0


@numba.njit(parallel=True, cache=True)
def winner_sums_parallel(xh, index, acc, bounds, kh, kw, stride):  # pragma: no cover (compiled)
    """:func:`winner_sums` of the sample range ``bounds[t]:bounds[t + 1]`` into ``acc[t]``, the ranges in
    parallel (Numba's threading layer: OpenMP where it has one)."""
    for t in numba.prange(len(bounds) - 1):
        winner_sums(xh, index, acc[t], bounds[t], bounds[t + 1], kh, kw, stride)


@numba.njit(parallel=True, cache=True, fastmath=_FAST)  # the flags a caller compiles its callees with
def cosine_argmax_parallel(dot, dot_bits, w_norm, x_norm, eps, penalty, big, out, index, bounds):  # pragma: no cover
    """:func:`cosine_argmax` of the sample ranges ``bounds[t]:bounds[t + 1]`` in parallel."""
    for t in numba.prange(len(bounds) - 1):
        cosine_argmax(dot, dot_bits, w_norm, x_norm, eps, penalty, big, out, index, bounds[t], bounds[t + 1])
