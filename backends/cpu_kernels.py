"""Compiled CPU kernels (Numba) for the winner-takes-all update, shared by the numpy and the torch-CPU
backends.

A winner-takes-all update adds one input patch per position to its winner's sum. Array libraries do that in
several passes over memory (a sort and a gather of the patches, or a patch copy and an ``index_add_``); the
kernel does it in one, reading each patch where it lies in the input. A winner-takes-all competition reads the
cosines once more after they are written; the fused kernel picks the winner while each row is still in cache.

They are used when Numba is installed (``pip install hebbcore[numba]``) unless the environment sets
``HEBBCORE_NUMBA=0``; otherwise the backends keep their array-library code, which the tests hold these kernels
equal to. Numba is imported on first use, never by importing hebbcore.

Each kernel works on a range of samples with the GIL released; ``threads`` ranges run at once (see
:func:`_run`), and their partial sums are added in a fixed order, so a result depends only on the inputs and
the thread count. The numpy backend runs them on one thread, the torch backend on torch's thread count.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any

import numpy as np

#: The dtypes the kernels are compiled for.
KERNEL_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
#: At most this many bytes of per-thread partial winner sums: fewer threads for a layer with many weights.
PARTIAL_SUMS_MAX_BYTES = 64 << 20
#: At least this many elements read per thread: below it, starting a team and adding partial sums cost more than
#: the work (fc5 of the paper's net at two threads: 0.34 ms for 64 rows).
MIN_ELEMENTS_PER_THREAD = 1 << 18
#: Set to 0 to keep the array-library code even where Numba is installed (A/B timings, debugging).
ENV_SWITCH = "HEBBCORE_NUMBA"


def enabled() -> bool:
    """True when the kernels are used: Numba imports and ``HEBBCORE_NUMBA`` is not ``0``."""
    return os.environ.get(ENV_SWITCH, "1") != "0" and _kernels() is not None


def winner_sums(
    xh: np.ndarray, index: np.ndarray, n_kernels: int, kh: int, kw: int, stride: int, threads: int, openmp: bool = False
) -> Any:
    """``Σ_{(n,i,j): index[n,i,j] = k} xh[n, i·s : i·s + kh, j·s : j·s + kw, :]`` for each kernel ``k``.

    ``xh`` ``(N, H, W, C)`` C-contiguous (channels-last), ``index`` ``(N, Ho, Wo)`` integers in ``[0, K)``;
    returns ``(K, kh, kw, C)``. A dense layer is the case ``H = W = kh = kw = 1``. ``openmp``: see :func:`_run`.
    """
    kernel = _kernels().winner_sums
    n, h, wd, c = xh.shape
    ho, wo = index.shape[1:]
    # the kernel writes where the indices say: anything out of range would write outside its arrays
    if not xh.flags.c_contiguous or index.shape[0] != n or (ho - 1) * stride + kh > h or (wo - 1) * stride + kw > wd:
        raise ValueError(f"winner sums: input {xh.shape} and winners {index.shape} do not fit {kh}x{kw}/{stride}")
    if index.size and (int(index.min()) < 0 or int(index.max()) >= n_kernels):
        raise ValueError(f"winner sums: a winner index outside [0, {n_kernels})")
    size = n_kernels * kh * kw * c
    threads = min(threads, max(1, PARTIAL_SUMS_MAX_BYTES // max(size * xh.itemsize, 1)))
    bounds = _bounds(n, _threads_for(n * ho * wo * kh * kw * c, threads))
    acc = np.zeros((len(bounds) - 1, size), dtype=xh.dtype)
    index = np.ascontiguousarray(index)
    _run(
        bounds,
        lambda p: kernel(xh, index, acc[p], bounds[p], bounds[p + 1], kh, kw, stride),
        openmp and (lambda: _kernels().winner_sums_parallel(xh, index, acc, bounds, kh, kw, stride)),
    )
    return _added(acc).reshape(n_kernels, kh, kw, c)


def cosine_argmax(
    dot: np.ndarray,
    w_norm: np.ndarray,
    x_norm: np.ndarray,
    eps: float,
    allowed: Any,
    threads: int,
    openmp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(dot / (w_norm·x_norm + eps), index)`` for ``dot`` ``(N, P, K)`` C-contiguous, ``w_norm`` ``(K,)``,
    ``x_norm`` ``(N, P)``, both finite and ``>= 0``, and ``eps > 0`` (:func:`similarity_rows` checks these): the
    cosines ``(N, P, K)`` and, at each sample and position, the first kernel with the largest cosine among
    ``allowed`` ``(N, K)`` or ``(1, K)`` bool (None: all), as numpy's ``argmax`` of ``where(allowed, cosines,
    -inf)``: the first allowed NaN wins, 0 where none is allowed; ``(N, P)`` int64. ``openmp``: see :func:`_run`."""
    n, p, k = dot.shape
    dtype = dot.dtype
    w_norm = np.ascontiguousarray(w_norm, dtype=dtype).reshape(k)
    x_norm = np.ascontiguousarray(x_norm, dtype=dtype).reshape(n, p)
    ints = np.dtype(f"int{8 * dtype.itemsize}")
    allow = np.full((n, k), -1, dtype=ints)  # all ones where a kernel may win, 0 where not: a mask, not a branch
    if allowed is not None:
        allow[~np.broadcast_to(np.asarray(allowed, dtype=np.bool_).reshape(-1, k), (n, k))] = 0
    out = np.empty_like(dot)
    index = np.empty((n, p), dtype=np.int64)
    args = (dot, dot.view(ints), w_norm, x_norm, dtype.type(eps), allow, _bits(dtype, float(eps)), out, index)
    bounds = _bounds(n, _threads_for(dot.size, threads))
    _run(
        bounds,
        lambda p: _kernels().cosine_argmax(*args, bounds[p], bounds[p + 1]),
        openmp and (lambda: _kernels().cosine_argmax_parallel(*args, bounds)),
    )
    if (index < 0).any():  # rows with a non-finite or huge dot: numpy's rules, outside fast-math
        _kernels().cosine_argmax_exact(dot, w_norm, x_norm, dtype.type(eps), allow, out, index)
    return out, index


def cosine_argmax_of(
    dot: np.ndarray,
    w_norm: np.ndarray,
    x_norm: np.ndarray,
    eps: float,
    allowed: Any,
    threads: int,
    openmp: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`cosine_argmax` of a layer's ``dot`` ``(N, K[, Ho, Wo])`` and its norms (``Ops.cosine_argmax``'s
    arguments, as numpy arrays): the cosines in ``dot``'s layout and the winners ``(N[, Ho, Wo])``, or None where
    the array code must compute them (see :func:`similarity_rows`)."""
    rows = similarity_rows(dot, w_norm, x_norm, eps)
    if rows is None:
        return None
    cos, index = cosine_argmax(rows, w_norm, x_norm, eps, allowed, threads, openmp)
    return _in_layout_of(dot, cos), index.reshape((dot.shape[0],) + tuple(dot.shape[2:]))


def linear_winner_sums(x: np.ndarray, index: np.ndarray, n_kernels: int, threads: int, openmp: bool = False) -> Any:
    """:func:`winner_sums` of a dense layer: ``Σ_{n: index[n] = k} x[n]`` for each kernel, ``(N, D) -> (K, D)``."""
    n, d = x.shape
    xh = np.ascontiguousarray(x).reshape(n, 1, 1, d)
    return winner_sums(xh, index.reshape(n, 1, 1), n_kernels, 1, 1, 1, threads, openmp).reshape(-1, d)


def winner_signed_sums_of(
    y: np.ndarray, u: np.ndarray, threads: int, openmp: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``Ops.winner_signed_sums`` of ``y`` and ``u`` ``(N, K[, Ho, Wo])`` (numpy arrays, ``y`` written in place):
    ``(y, Σ y, Σ y·u)`` with the sums ``(K,)`` in ``y``'s dtype, added in float64 in a fixed order; or None where
    the array code must compute them: either not laid out as :func:`kernel_rows` takes, different shapes or
    dtypes, ``y`` read-only, or ``y`` and ``u`` sharing memory (the kernel reads ``u`` after writing ``y``)."""
    rows, u_rows = kernel_rows(y), kernel_rows(u)
    if rows is None or u_rows is None or u.dtype != y.dtype or u.shape != y.shape or not y.flags.writeable:
        return None
    if np.may_share_memory(y, u):
        return None
    bounds = _bounds(rows.shape[0], _threads_for(2 * rows.size, threads))
    args = (rows, u_rows, u_rows.view(f"int{8 * y.itemsize}"), _bits(y.dtype, 1.0))
    total = _two_sums(
        bounds,
        rows.shape[2],
        lambda t, a, b: _kernels().winner_signed_sums(*args, bounds[t], bounds[t + 1], a, b),
        openmp and (lambda a, b: _kernels().winner_signed_sums_parallel(*args, bounds, a, b)),
    )
    return y, total[0].astype(y.dtype), total[1].astype(y.dtype)


def ranked_of(
    u: np.ndarray, rank: int, delta: float, threads: int, openmp: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]] | None:
    """``Ops.ranked_coefficients`` of ``u`` ``(N, K[, Ho, Wo])`` (a numpy array): ``y`` in ``u``'s layout, its
    sums ``(K,)`` in ``u``'s dtype, added in float64 in a fixed order, and the two ranks' indices (int64); or None
    where the array code must compute them: ``u`` not laid out as :func:`kernel_rows` takes, or ``rank`` outside
    ``[1, K]``."""
    rows = kernel_rows(u)
    if rows is None or not 1 <= rank <= rows.shape[2]:
        return None
    bounds = _bounds(rows.shape[0], _threads_for(rank * rows.size, threads))
    y = np.zeros_like(rows)
    win = np.empty((2, *rows.shape[:2]), dtype=np.int64)
    args = (rows, rows.view(f"int{8 * u.itemsize}"), _bits(u.dtype, 1.0), rank, u.dtype.type(delta))
    total = _two_sums(
        bounds,
        rows.shape[2],
        lambda t, a, b: _kernels().ranked(*args, bounds[t], bounds[t + 1], y, win, a, b),
        openmp and (lambda a, b: _kernels().ranked_parallel(*args, bounds, y, win, a, b)),
    )
    ranks = win.reshape((2, u.shape[0], *u.shape[2:]))
    return _in_layout_of(u, y), total[0].astype(u.dtype), total[1].astype(u.dtype), (ranks[0], ranks[1])


def decay_and_max_abs_of(
    a: np.ndarray,
    v: np.ndarray,
    w: np.ndarray,
    threads: int,
    openmp: bool = False,
) -> tuple[np.ndarray, np.ndarray] | None:
    """``Ops.decay_and_max_abs`` of numpy arrays in one pass: ``a − v·w`` in place in ``a`` (returned) and its largest
    magnitude, a 0-d array; rows with ``v = 0`` (Krotov's kernels no position chose) are read, not written. None
    where the array code must do it: ``a`` and ``w`` not laid out alike with each kernel's elements together
    (:func:`kernel_major`), sharing memory, ``a`` read-only, or ``v`` not one per kernel."""
    rows, w_rows = kernel_major(a), kernel_major(w)
    if (
        rows is None
        or w_rows is None
        or a.shape != w.shape
        or a.strides != w.strides
        or a.dtype != w.dtype
        or not a.flags.writeable
        or np.may_share_memory(a, w)
        or v.size != rows.shape[0]
    ):
        return None
    k = rows.shape[0]
    ints = np.dtype(f"int{8 * a.itemsize}")
    low, inf_bits = ints.type(np.iinfo(ints).max), np.array(np.inf, a.dtype).view(ints)[()]
    row_max = np.empty(k, dtype=ints)
    bounds = _bounds(k, _threads_for(2 * rows.size, threads))
    args = (rows, rows.view(ints), np.ascontiguousarray(v.reshape(-1), dtype=a.dtype), w_rows, w_rows.view(ints))
    _run(
        bounds,
        lambda t: _kernels().decay_rows(*args, bounds[t], bounds[t + 1], low, inf_bits, row_max),
        openmp and (lambda: _kernels().decay_rows_parallel(*args, bounds, low, inf_bits, row_max)),
    )
    top = row_max.max()
    return a, np.array(np.nan if top > inf_bits else top.view(a.dtype), dtype=a.dtype)


def kernel_affine_of(
    w: np.ndarray,
    a: np.ndarray,
    s: np.ndarray,
    b: np.ndarray,
    out: np.ndarray | None,
    threads: int,
    openmp: bool = False,
) -> np.ndarray | None:
    """``Ops.kernel_affine`` of numpy arrays: ``out_k = a_k·w_k + b_k·s_k`` in one pass, ``a`` and ``b`` ``(K,)``
    or one value; ``out`` (returned; None: a new array in ``s``'s layout) may be ``w`` or ``s``. None where the
    array code must do it: ``w``, ``s`` and ``out`` not laid out alike with each kernel's elements together
    (:func:`kernel_major`), ``out`` read-only or overlapping ``w`` or ``s`` other than as the same array, or a
    factor with more than one value per kernel."""
    k = w.shape[0] if w.ndim else 0
    if a.size not in (1, k) or b.size not in (1, k):
        return None
    w_rows, s_rows = kernel_major(w), kernel_major(s)
    if w_rows is None or s_rows is None or w.shape != s.shape or w.strides != s.strides or w.dtype != s.dtype:
        return None
    out = np.empty_like(s) if out is None else out
    rows = kernel_major(out)
    if (
        rows is None
        or (out.shape, out.strides, out.dtype) != (s.shape, s.strides, s.dtype)
        or not out.flags.writeable
        or any(x is not out and np.may_share_memory(x, out) for x in (w, s))
    ):
        return None
    a = np.ascontiguousarray(np.broadcast_to(a.reshape(-1), (k,)), dtype=out.dtype)
    b = np.ascontiguousarray(np.broadcast_to(b.reshape(-1), (k,)), dtype=out.dtype)
    bounds = _bounds(k, _threads_for(2 * rows.size, threads))
    _run(
        bounds,
        lambda t: _kernels().affine_rows(w_rows, a, s_rows, b, rows, bounds[t], bounds[t + 1]),
        openmp and (lambda: _kernels().affine_rows_parallel(w_rows, a, s_rows, b, rows, bounds)),
    )
    return out


def kernel_major(a: np.ndarray) -> np.ndarray | None:
    """``a`` ``(K, ...)`` as ``(K, D)`` C-contiguous rows, each kernel's elements in memory order (no copy), or
    None where its memory is not so (kernel axis slowest, no gaps), empty, or not float32/64."""
    if a.ndim < 2 or a.dtype not in KERNEL_DTYPES or a.size == 0:
        return None
    inner = sorted(range(1, a.ndim), key=lambda i: -a.strides[i])
    rows = a.transpose(0, *inner)
    return rows.reshape(a.shape[0], -1) if rows.flags.c_contiguous else None


def _two_sums(bounds: np.ndarray, k: int, part: Callable[..., Any], parallel: Any) -> np.ndarray:
    """``(2, k)`` float64: the two per-kernel sums a kernel adds up over the sample ranges of ``bounds``, run as
    :func:`_run` runs ``part(t, sum_a, sum_b)`` (or ``parallel(sums_a, sums_b)``, one row per range), each range's
    partial sums added in order."""
    sums = np.zeros((2, len(bounds) - 1, k))
    _run(bounds, lambda t: part(t, sums[0, t], sums[1, t]), parallel and (lambda: parallel(sums[0], sums[1])))
    return np.stack([_added(sums[0]), _added(sums[1])])


def _added(parts: np.ndarray) -> np.ndarray:
    """The per-range partial sums ``parts[0] + parts[1] + ...`` added in order (a result that depends only on the
    inputs and the thread count), into ``parts[0]``."""
    out = parts[0]
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf is NaN, as the array code's one sum gives
        for p in range(1, len(parts)):
            out += parts[p]
    return out


def kernel_rows(a: np.ndarray) -> np.ndarray | None:
    """``a`` ``(N, K[, Ho, Wo])`` as ``(N, P, K)`` C-contiguous rows (no copy), or None where it is not laid out
    so (kernel axis fastest, as convolutions return activations), empty, or not float32/64."""
    if a.ndim not in (2, 4) or a.dtype not in KERNEL_DTYPES or a.size == 0:
        return None
    rows = a.transpose(0, 2, 3, 1) if a.ndim == 4 else a
    return rows.reshape(a.shape[0], -1, a.shape[1]) if rows.flags.c_contiguous else None


def _bits(dtype: np.dtype, eps: float) -> np.ndarray:
    """The integer constants of :func:`numba_kernels.cosine_argmax` for floats of ``dtype``, as integers of its
    width: the mask of the exponent field; the exponent field of ``2**m``, with ``m`` the largest power for which
    ``|dot| < 2**m`` keeps ``dot / eps`` finite (a row holding a larger, infinite or NaN ``dot`` is computed
    exactly, outside fast-math); the sign bit's shift; every bit but the sign."""
    fi = np.finfo(dtype)
    width = fi.bits - 1 - fi.nmant  # exponent bits
    bias = (1 << (width - 1)) - 1
    m = int(np.floor(np.log2(float(fi.max) * eps))) - 1
    exponent = min(max(bias + m, 1), (1 << width) - 1)
    consts = [((1 << width) - 1) << fi.nmant, exponent << fi.nmant, fi.bits - 1, (1 << (fi.bits - 1)) - 1]
    return np.array(consts, dtype=f"int{fi.bits}")


def similarity_rows(dot: np.ndarray, w_norm: np.ndarray, x_norm: np.ndarray, eps: float) -> np.ndarray | None:
    """``dot`` ``(N, K[, Ho, Wo])`` as the ``(N, P, K)`` C-contiguous rows :func:`cosine_argmax` takes (no copy),
    or None where the array code must do it: ``dot`` not laid out so (kernel axis fastest, as convolutions return
    activations), empty, or not float32/64; norms that are not one per kernel and one per sample and position,
    not finite or negative; ``eps`` not above 0 in ``dot``'s dtype."""
    rows = kernel_rows(dot)
    if (
        rows is None
        or not dot.dtype.type(eps) > 0
        or w_norm.size != rows.shape[2]
        or x_norm.size != rows.size // rows.shape[2]
    ):
        return None
    if not all(np.isfinite(a).all() and (a >= 0).all() for a in (w_norm, x_norm)):  # small: K and N·P values
        return None
    return rows


def _in_layout_of(dot: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The ``(N, P, K)`` rows as an array shaped like ``dot`` ``(N, K[, Ho, Wo])``, kernel axis fastest (a view)."""
    if dot.ndim == 2:
        return rows.reshape(dot.shape)
    n, k, ho, wo = dot.shape
    return rows.reshape(n, ho, wo, k).transpose(0, 3, 1, 2)


def _threads_for(elements: int, threads: int) -> int:
    """At most ``threads``, and one per :data:`MIN_ELEMENTS_PER_THREAD` elements (at least one)."""
    return max(1, min(threads, elements // MIN_ELEMENTS_PER_THREAD))


def _bounds(n: int, threads: int) -> np.ndarray:
    """The bounds of ``threads`` (at most ``n``) contiguous ranges of samples covering ``[0, n)``."""
    t = max(1, min(threads, n))
    return np.array([n * i // t for i in range(t + 1)], dtype=np.int64)


def _run(bounds: np.ndarray, part: Callable[[int], Any], parallel: Any) -> None:
    """Run ``part(p)`` for each range ``bounds[p]:bounds[p + 1]``: one range on this thread; several on Python
    threads (the kernels release the GIL), or with ``parallel`` (a call running them all) on Numba's threading
    layer. The latter suits a process whose other work runs on an OpenMP team (torch's): after each of its
    operations those workers spin for a while and leave a Python thread no core, while an OpenMP team of
    Numba's takes the work at once (paper net, torch, 2 threads: Hebbian / forward 0.60-0.66 with Python
    threads, 0.71-0.85 with Numba's; docs/benchmarks.md). numpy's BLAS spins too, but an OpenMP team there slowed
    its products (0.81 to 0.49), so the numpy backend runs one range. A forked child keeps to Python threads: GNU
    OpenMP does not survive a fork."""
    parts = len(bounds) - 1
    if parts == 1:
        part(0)
    elif parallel and os.getpid() == _PARENT_PID:
        import numba

        # one parallel launch at a time: Numba's fallback threading layer (workqueue) aborts on concurrent ones
        with _PARALLEL_LOCK:
            before = numba.get_num_threads()
            numba.set_num_threads(min(parts, numba.config.NUMBA_NUM_THREADS))  # this thread's setting only
            try:
                parallel()
            finally:
                numba.set_num_threads(before)
    else:
        for f in [_pool(os.getpid()).submit(part, p) for p in range(parts)]:
            f.result()


_PARENT_PID = os.getpid()  # a child forked after this import keeps to Python threads
_PARALLEL_LOCK = threading.Lock()


@cache
def _pool(pid: int) -> ThreadPoolExecutor:
    """The thread pool of process ``pid``: a forked child has none of its parent's threads, so it makes its own."""
    return ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="hebbcore-kernel")


@cache
def _kernels() -> Any:
    """The compiled kernels' module, or None without Numba (compiled on first call, cached on disk by Numba)."""
    try:
        from . import numba_kernels
    except ImportError:
        return None
    return numba_kernels
