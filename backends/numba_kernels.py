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
def cosine_argmax_exact(dot, w_norm, x_norm, eps, allow, out, index):  # pragma: no cover (compiled)
    """The rows :func:`cosine_argmax` left (``index < 0``: a non-finite or huge ``dot``) as numpy computes them:
    ``out = dot / (w_norm·x_norm + eps)``, then ``argmax(where(allow, out, -inf))`` where the first NaN wins."""
    n, p, k = dot.shape
    for s in range(n):
        for q in range(p):
            if index[s, q] >= 0:
                continue
            d, o, al, xs = dot[s, q], out[s, q], allow[s], x_norm[s, q]
            best = 0
            top = -np.inf
            for j in range(k):
                o[j] = d[j] / (w_norm[j] * xs + eps)
                v = o[j] if al[j] != 0 else -np.inf
                if top == top and (v != v or v > top or j == 0):
                    top, best = v, j
            index[s, q] = best


@numba.njit(inline="always")
def _key(b, allow, sign, low):  # pragma: no cover (compiled)
    """The integer key of the float with bits ``b``, ordered as the floats (negatives' other bits flipped, then +1
    so that -0 keys as +0), or ``~low`` (below every key) where ``allow`` is 0."""
    m = b >> sign
    return (((b ^ (m & low)) - m) & allow) | (~low & ~allow)


@_jit  # no fast-math: NaN and inf are compared by their integer keys as numpy orders them
def winner_signed_sums(y, u, u_bits, bits, s0, s1, c_sum, cu_sum):  # pragma: no cover (compiled)
    """For samples ``s0 <= s < s1`` of ``y`` and ``u`` (N, P, K): negate ``y`` in place except at the first
    largest ``u`` of each row (the first NaN, if any, as numpy's ``argmax``) and add the result and its product
    with ``u`` to ``c_sum`` and ``cu_sum`` (K,) float64. ``bits``: as :func:`cosine_argmax`'s."""
    p, k = y.shape[1], y.shape[2]
    field, sign, low = bits[0], bits[2], bits[3]
    none = numba.int32(k)
    for s in range(s0, s1):
        for q in range(p):
            yr, ur, ub = y[s, q], u[s, q], u_bits[s, q]
            nan = numba.int32(0)
            top = ~low
            for j in range(uint64(k)):
                nan |= numba.int32((ub[j] & low) > field)  # exponent all ones and a nonzero mantissa
                top = max(top, _key(ub[j], -1, sign, low))
            best = none
            if nan:
                for j in range(k):
                    if ur[j] != ur[j]:
                        best = numba.int32(j)
                        break
            else:
                for j in range(uint64(k)):  # the first index at the top, as a min (vectorised)
                    best = min(best, numba.int32(j) if _key(ub[j], -1, sign, low) == top else none)
            for j in range(uint64(k)):
                v = yr[j] if numba.int32(j) == best else -yr[j]
                yr[j] = v
                c_sum[j] += v
                cu_sum[j] += np.float64(v) * np.float64(ur[j])


@numba.njit(parallel=True, cache=True)
def winner_signed_sums_parallel(y, u, u_bits, bits, bounds, c_sum, cu_sum):  # pragma: no cover (compiled)
    """:func:`winner_signed_sums` of the sample ranges ``bounds[t]:bounds[t + 1]`` into ``c_sum[t]`` and
    ``cu_sum[t]``, in parallel."""
    for t in numba.prange(len(bounds) - 1):
        winner_signed_sums(y, u, u_bits, bits, bounds[t], bounds[t + 1], c_sum[t], cu_sum[t])


@_jit  # no fast-math: NaN rows take the exact path below
def ranked(u, u_bits, bits, rank, delta, s0, s1, y, win, c_sum, cu_sum):  # pragma: no cover (compiled)
    """For samples ``s0 <= s < s1`` of ``u`` (N, P, K): ``y`` (zeros on entry) gets 1 at each row's rank-1 index
    and ``-delta`` added at its rank-``rank`` one, ranks taken as numpy's ``argmax`` (the first largest; the first
    NaN if any), each winner then set to -inf; ``win`` (2, N, P) gets the two indices; ``c_sum`` and ``cu_sum``
    (K,) float64 gain ``y`` and ``y·u`` (its zeros too where ``u`` is not finite: NaN, as the array code's product
    gives).
    ``bits``: as :func:`cosine_argmax`'s; ``delta`` in ``y``'s dtype."""
    p, k = u.shape[1], u.shape[2]
    field, sign, low = bits[0], bits[2], bits[3]
    none = numba.int32(k)
    keys = np.empty(k, dtype=u_bits.dtype)
    ninf = _key(field | ~low, -1, sign, low)  # -inf's key: a masked winner
    for s in range(s0, s1):
        for q in range(p):
            ur, ub, yr = u[s, q], u_bits[s, q], y[s, q]
            nan = numba.int32(0)
            odd = numba.int32(0)
            for j in range(uint64(k)):
                nan |= numba.int32((ub[j] & low) > field)
                odd |= numba.int32((ub[j] & field) == field)  # NaN or inf
                keys[j] = _key(ub[j], -1, sign, low)
            first = none
            best = none
            for r in range(rank):
                best = none
                if nan:  # the first NaN not yet masked (a masked winner is -inf, no longer NaN)
                    for j in range(k):
                        if keys[j] != ninf and ur[j] != ur[j]:
                            best = numba.int32(j)
                            break
                if best == none:
                    top = ~low
                    for j in range(uint64(k)):
                        top = max(top, keys[j])
                    for j in range(uint64(k)):  # the first index at the top, as a min (vectorised)
                        best = min(best, numba.int32(j) if keys[j] == top else none)
                keys[best] = ninf
                if r == 0:
                    first = best
            win[0, s, q] = first
            win[1, s, q] = best
            yr[first] = 1.0
            yr[best] = yr[best] - delta  # delta in y's dtype: 1 - delta where both ranks fall on one kernel
            c_sum[first] += 1.0
            c_sum[best] -= np.float64(delta)
            if odd:  # 0·inf and 0·NaN are NaN: the array code's sum of y·u carries them, so does this one
                for j in range(k):
                    cu_sum[j] += np.float64(yr[j]) * np.float64(ur[j])
            else:
                cu_sum[first] += np.float64(ur[first])
                cu_sum[best] -= np.float64(delta) * np.float64(ur[best])


@numba.njit(parallel=True, cache=True)
def ranked_parallel(u, u_bits, bits, rank, delta, bounds, y, win, c_sum, cu_sum):  # pragma: no cover (compiled)
    """:func:`ranked` of the sample ranges ``bounds[t]:bounds[t + 1]`` into ``c_sum[t]``, ``cu_sum[t]``."""
    for t in numba.prange(len(bounds) - 1):
        ranked(u, u_bits, bits, rank, delta, bounds[t], bounds[t + 1], y, win, c_sum[t], cu_sum[t])


_FAST = {"nnan", "reassoc", "nsz"}  # its passes vectorise better (0.43 against 0.63 ms on conv3); exact on finite rows


@numba.njit(nogil=True, cache=True, fastmath=_FAST, error_model="numpy")  # numpy's: no zero test per division
def cosine_argmax(dot, dot_bits, w_norm, x_norm, eps, allow, bits, out, index, s0, s1):  # pragma: no cover (compiled)
    """For samples ``s0 <= s < s1`` of ``dot`` (N, P, K): ``out = dot / (w_norm · x_norm + eps)`` and ``index``
    (N, P), numpy's ``argmax(where(allow[s], out, -inf))``, ``allow`` all ones (may win) or 0 (may not) as
    integers of the float's width: the first largest allowed value, 0 where none is allowed. Each row's cosines
    are still in cache when the competition reads them.

    The caller guarantees finite norms ``>= 0`` and ``eps > 0``; ``dot_bits`` is ``dot`` seen as integers, whose
    exponent field (``bits[0]``: the mask of that field; ``bits[1]``: the smallest exponent counted as huge)
    flags a row with a non-finite or huge value. Fast-math assumes no NaN, so such a row gets ``index = -1``,
    left to :func:`cosine_argmax_exact`; every other row's cosines are finite. Those are compared as integer
    keys (``bits[2]``: the sign's shift, ``bits[3]``: every bit but the sign), ordered as the floats with both
    zeros equal: LLVM vectorises an integer max, not a float one."""
    out_bits = out.view(dot_bits.dtype)
    _, p, k = dot.shape
    none = numba.int32(k)
    field, huge, sign, low = bits[0], bits[1], bits[2], bits[3]
    lowest = ~low  # below every float's key: a kernel that may not win
    for s in range(s0, s1):
        al = allow[s]
        for q in range(p):
            d, db, o, ob, xs = dot[s, q], dot_bits[s, q], out[s, q], out_bits[s, q], x_norm[s, q]
            odd = numba.int32(0)
            for j in range(uint64(k)):  # integer tests: fast-math cannot assume them away
                o[j] = d[j] / (w_norm[j] * xs + eps)
                odd |= numba.int32((db[j] & field) >= huge)
            if odd:
                index[s, q] = -1
                continue
            top = lowest
            for j in range(uint64(k)):
                top = max(top, _key(ob[j], al[j], sign, low))
            best = none
            if top != lowest:
                for j in range(uint64(k)):  # the first index at the top, as a min (vectorised) rather than a search
                    best = min(best, numba.int32(j) if _key(ob[j], al[j], sign, low) == top else none)
            index[s, q] = best if best < none else 0


@numba.njit(parallel=True, cache=True)
def winner_sums_parallel(xh, index, acc, bounds, kh, kw, stride):  # pragma: no cover (compiled)
    """:func:`winner_sums` of the sample range ``bounds[t]:bounds[t + 1]`` into ``acc[t]``, the ranges in
    parallel (Numba's threading layer: OpenMP where it has one)."""
    for t in numba.prange(len(bounds) - 1):
        winner_sums(xh, index, acc[t], bounds[t], bounds[t + 1], kh, kw, stride)


@numba.njit(parallel=True, cache=True, fastmath=_FAST, error_model="numpy")  # the flags its callee is compiled with
def cosine_argmax_parallel(dot, dot_bits, w_norm, x_norm, eps, allow, bits, out, index, bounds):  # pragma: no cover
    """:func:`cosine_argmax` of the sample ranges ``bounds[t]:bounds[t + 1]`` in parallel."""
    for t in numba.prange(len(bounds) - 1):
        cosine_argmax(dot, dot_bits, w_norm, x_norm, eps, allow, bits, out, index, bounds[t], bounds[t + 1])


@_jit  # no fast-math: the differences follow IEEE as the array code's; the max runs on integer keys
def decay_rows(a, a_bits, v, w, w_bits, r0, r1, low, inf_bits, row_max):  # pragma: no cover (compiled)
    """For kernels ``r0 <= k < r1`` of ``a`` and ``w`` (K, D) alike: ``a_k -= v_k·w_k`` in place and ``row_max[k]``
    the largest ``|a_k|`` afterwards, as the bits of a float without its sign (``low``: every bit but the sign;
    above ``inf_bits``: a NaN), which order as the floats do and make an integer max LLVM vectorises. A row with
    ``v_k = 0`` and a finite ``w_k`` is read, not written (``a − 0·w = a`` there)."""
    d = a.shape[1]
    for k in range(r0, r1):
        ak, ab, wk, wb = a[k], a_bits[k], w[k], w_bits[k]
        vk = v[k]
        top = low ^ low
        if vk == 0:
            for e in range(uint64(d)):
                top = max(top, wb[e] & low)
        if vk != 0 or top >= inf_bits:  # a NaN or inf in w makes 0·w NaN, as the array code's product does
            for e in range(uint64(d)):
                ak[e] = ak[e] - vk * wk[e]
        top = low ^ low
        for e in range(uint64(d)):
            top = max(top, ab[e] & low)
        row_max[k] = top


@numba.njit(parallel=True, cache=True)
def decay_rows_parallel(a, a_bits, v, w, w_bits, bounds, low, inf_bits, row_max):  # pragma: no cover (compiled)
    """:func:`decay_rows` of the kernel ranges ``bounds[t]:bounds[t + 1]`` on Numba's threads."""
    for t in numba.prange(len(bounds) - 1):
        decay_rows(a, a_bits, v, w, w_bits, bounds[t], bounds[t + 1], low, inf_bits, row_max)


@_jit  # no fast-math: w·a + s·b rounds as the array code's two products and one sum
def affine_rows(w, a, s, b, out, r0, r1):  # pragma: no cover (compiled)
    """``out_k = a_k·w_k + b_k·s_k`` for kernels ``r0 <= k < r1`` of ``w``, ``s`` and ``out`` (K, D) alike
    (``out`` may be ``w`` or ``s``: each element is read before it is written)."""
    d = w.shape[1]
    for k in range(r0, r1):
        wk, sk, ok = w[k], s[k], out[k]
        ak, bk = a[k], b[k]
        for e in range(uint64(d)):
            ok[e] = wk[e] * ak + sk[e] * bk


@numba.njit(parallel=True, cache=True)
def affine_rows_parallel(w, a, s, b, out, bounds):  # pragma: no cover (compiled)
    """:func:`affine_rows` of the kernel ranges ``bounds[t]:bounds[t + 1]`` on Numba's threads."""
    for t in numba.prange(len(bounds) - 1):
        affine_rows(w, a, s, b, out, bounds[t], bounds[t + 1])
