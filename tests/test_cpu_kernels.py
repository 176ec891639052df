"""The compiled CPU kernels against loops, and the backends with and without them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hebbcore_backends import cpu_kernels
from hebbcore_backends.numpy_backend import NumpyOps

numba_installed = pytest.mark.skipif(cpu_kernels._kernels() is None, reason="numba is not installed")
#: How a kernel test runs: threads, Numba's team or Python threads, dtype, and the data's seed.
RUNS = {
    "threads": st.integers(1, 3),
    "openmp": st.booleans(),
    "dtype": st.sampled_from([np.float32, np.float64]),
    "seed": st.integers(0, 2**31 - 1),
}


@pytest.fixture(autouse=True, scope="module")
def _threads_on_small_arrays():
    """The tests' arrays are small: split them over threads anyway, so the partial sums and teams are tested."""
    saved, cpu_kernels.MIN_ELEMENTS_PER_THREAD = cpu_kernels.MIN_ELEMENTS_PER_THREAD, 1
    yield
    cpu_kernels.MIN_ELEMENTS_PER_THREAD = saved


def test_small_work_stays_on_one_thread(monkeypatch):
    monkeypatch.setattr(cpu_kernels, "MIN_ELEMENTS_PER_THREAD", 1 << 18)  # the library's bound, not the fixture's
    assert cpu_kernels._threads_for((1 << 18) - 1, 4) == 1
    assert cpu_kernels._threads_for(3 << 18, 4) == 3 and cpu_kernels._threads_for(1 << 30, 2) == 2


def loop_winner_sums(x, index, k, kh, kw, s):
    """``(K, C, kh, kw)``: each position's patch added to its winner's kernel, one position at a time."""
    n, c = x.shape[:2]
    out = np.zeros((k, c, kh, kw))
    for b, i, j in np.ndindex(*index.shape):
        out[index[b, i, j]] += x[b, :, i * s : i * s + kh, j * s : j * s + kw]
    return out


def rows_with_ties(rng, n, p, k, dtype):
    """``(N, P, K)`` normal values whose kernel ``K // 2`` ties with kernel 0 (the lower index must win)."""
    a = rng.standard_normal((n, p, k)).astype(dtype)
    a[:, :, k // 2] = a[:, :, 0]
    return a


def loop_cosine_argmax(dot, wn, xn, eps, allowed):
    """The cosines in float64 and, per sample and position, the first allowed kernel with the largest one."""
    cos = dot.astype(np.float64) / (wn[None, None, :].astype(np.float64) * xn[:, :, None] + eps)
    index = np.zeros(dot.shape[:2], dtype=np.int64)
    for b, q in np.ndindex(*dot.shape[:2]):
        best = None
        for j in range(dot.shape[2]):
            if (allowed is None or allowed[b, j]) and (best is None or cos[b, q, j] > cos[b, q, best]):
                best = j
        index[b, q] = 0 if best is None else best
    return cos, index


@numba_installed
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 5),
    c=st.integers(1, 5),
    k=st.integers(1, 7),
    kh=st.integers(1, 4),
    kw=st.integers(1, 4),
    s=st.integers(1, 3),
    extra=st.integers(0, 5),
    **RUNS,
)
def test_winner_sums_against_a_loop(n, c, k, kh, kw, s, extra, threads, openmp, dtype, seed):
    rng = np.random.default_rng(seed)
    h, w = kh + extra, kw + (extra * 7) % 6
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    ho, wo = (h - kh) // s + 1, (w - kw) // s + 1
    index = rng.integers(0, k, size=(n, ho, wo))
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    got = cpu_kernels.winner_sums(xh, index, k, kh, kw, s, threads, openmp)
    assert got.shape == (k, kh, kw, c) and got.dtype == dtype
    np.testing.assert_allclose(
        got.transpose(0, 3, 1, 2), loop_winner_sums(x, index, k, kh, kw, s), rtol=1e-5, atol=1e-5
    )


@numba_installed
def test_winner_sums_refuse_what_would_write_outside_the_arrays():
    xh = np.zeros((2, 5, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        cpu_kernels.winner_sums(xh, np.full((2, 3, 3), 4), 4, 3, 3, 1, 1)
    with pytest.raises(ValueError, match=r"outside \[0, 4\)"):
        cpu_kernels.winner_sums(xh, np.full((2, 3, 3), -1), 4, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="do not fit"):
        cpu_kernels.winner_sums(xh, np.zeros((2, 4, 4), np.int64), 4, 3, 3, 1, 1)  # 4 windows of 3 need 6 pixels


@numba_installed
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 5),
    p=st.integers(1, 9),
    k=st.integers(1, 40),
    masked=st.booleans(),
    **RUNS,
)
def test_cosine_argmax_against_a_loop(n, p, k, masked, threads, openmp, dtype, seed):
    rng = np.random.default_rng(seed)
    dot = rows_with_ties(rng, n, p, k, dtype)
    wn = np.ones(k, dtype) if k > 1 else rng.random(k).astype(dtype) + 0.5
    xn = rng.random((n, p)).astype(dtype) + 0.1
    allowed = rng.random((n, k)) < 0.5 if masked else None
    if masked and n:
        allowed[0] = False  # a sample with no allowed kernel: 0
    cos, index = cpu_kernels.cosine_argmax(dot, wn, xn, 1e-8, allowed, threads, openmp)
    want_cos, want_index = loop_cosine_argmax(dot, wn, xn, 1e-8, allowed)
    assert cos.dtype == dtype and index.dtype == np.int64
    np.testing.assert_allclose(cos, want_cos, rtol=1e-6)
    np.testing.assert_array_equal(index, want_index)


@numba_installed
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_signed_zeros_negatives_and_subnormals_order_as_numpy_orders_them(dtype):
    """The competition compares the cosines as integer keys: -0 ties with +0 (the first wins), every negative and
    subnormal value keeps its place, as numpy's argmax of the same floats."""
    tiny = np.finfo(dtype).smallest_subnormal
    rows = [
        [-0.0, 0.0, -0.0],
        [-0.0, -0.0, -tiny],
        [-3.0, -1.0, -1.0, -2.0],
        [-tiny, -0.0, tiny, 0.0, tiny],
        [-np.finfo(dtype).max / 4, -1e-30, -1e-30 * 1.5],
    ]
    for row in rows:
        dot = np.array(row, dtype=dtype).reshape(1, 1, -1)
        wn, xn = np.ones(dot.shape[-1], dtype), np.ones((1, 1), dtype)
        cos, index = cpu_kernels.cosine_argmax(dot, wn, xn, 1e-8, None, 1)
        assert index[0, 0] == np.argmax(dot / (wn * xn + dtype(1e-8))), row
    # cosines near the float's top, still on the fast path (|dot| below the exact kernel's bound): keys hold
    dot = np.array([1e29, -1e29, 9.99e28, 1e29, -3e28], dtype=dtype).reshape(1, 1, -1)
    wn, xn = np.ones(5, dtype), np.zeros((1, 1), dtype)
    bits = cpu_kernels._bits(np.dtype(dtype), 1e-8)
    assert (np.abs(dot).view(bits.dtype) < bits[1]).all()  # not left to the exact kernel
    cos, index = cpu_kernels.cosine_argmax(dot, wn, xn, 1e-8, np.array([[False, True, True, True, True]]), 1)
    assert np.isfinite(cos).all() and abs(cos[0, 0, 0]) > 1e36 and index[0, 0] == 3


@numba_installed
@pytest.mark.parametrize("openmp", [False, True])
def test_nans_and_masks_follow_numpys_argmax_of_the_masked_cosines(openmp):
    """The first allowed NaN wins, a forbidden NaN is ignored, infinities and overflowing cosines order as numpy
    orders them, a (1, K) mask applies to every sample: as numpy's argmax of ``where(allowed, cos, -inf)`` (the
    array code's), on the kernel's own cosines."""
    rng = np.random.default_rng(11)
    dot = rng.standard_normal((40, 6, 9)).astype(np.float32)
    dot[rng.random(dot.shape) < 0.1] = np.nan
    dot[rng.random(dot.shape) < 0.05] = np.inf
    dot[rng.random(dot.shape) < 0.05] = -3e37  # finite, but its cosine overflows: the exact path too
    wn, xn = rng.random(9).astype(np.float32) + 0.5, rng.random((40, 6)).astype(np.float32) + 0.5
    for allowed in (None, rng.random((40, 9)) < 0.5, rng.random((1, 9)) < 0.5):
        cos, index = cpu_kernels.cosine_argmax(dot, wn, xn, 1e-8, allowed, 2, openmp)
        mask = np.ones((1, 9), bool) if allowed is None else allowed
        np.testing.assert_array_equal(index, np.argmax(np.where(mask[:, None, :], cos, -np.inf), axis=-1))
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(cos, dot / (wn * xn[..., None] + np.float32(1e-8)), rtol=1e-6)


def loop_winner_signed_sums(y, u):
    """``y`` negated but at each row's first largest ``u`` (the first NaN if any), and its sums, in float64."""
    s = -y.astype(np.float64)
    for b, q in np.ndindex(*y.shape[:2]):
        best = first_largest(u[b, q])
        s[b, q, best] = y[b, q, best]
    return with_sums(s, u)


def first_largest(row):
    """numpy's ``argmax``, spelled out: the first NaN if the row holds one, else the first largest value."""
    nan = np.flatnonzero(np.isnan(row))
    return int(nan[0]) if len(nan) else int(np.argmax(row))


def with_sums(y, u):
    """``(y, Σ y, Σ y·u)`` over samples and positions of ``(N, P, K)`` arrays, in float64."""
    with np.errstate(invalid="ignore"):  # inf - inf and 0·inf: NaN, as the kernels' sums
        return y, y.sum(axis=(0, 1)), (y * u).sum(axis=(0, 1))


@numba_installed
@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 5),
    p=st.integers(1, 9),
    k=st.integers(1, 40),
    special=st.sampled_from(["none", "nan", "inf", "zeros"]),
    **RUNS,
)
def test_winner_signed_sums_against_a_loop(n, p, k, special, threads, openmp, dtype, seed):
    rng = np.random.default_rng(seed)
    u = rows_with_ties(rng, n, p, k, dtype)
    if special == "nan":
        u[0, 0, -1] = np.nan
        u[-1, -1, k // 3] = -np.nan  # a NaN with its sign bit set wins as well
    elif special == "inf":
        u[0, 0, -1], u[-1, -1, 0] = np.inf, -np.inf
    elif special == "zeros":  # -0 ties with +0: the first wins, -0 first here
        u[0, 0] = -1.0
        u[0, 0, 0], u[0, 0, k - 1] = -0.0, 0.0
    y = rng.random((n, p, k)).astype(dtype)
    want, want_sum, want_u_sum = loop_winner_signed_sums(y, u)
    # as the backends pass them: (N, K, H, W) views of channels-last memory
    y4, u4 = (a.reshape(n, p, 1, k).transpose(0, 3, 1, 2) for a in (y, u))
    got, c_sum, cu_sum = cpu_kernels.winner_signed_sums_of(y4, u4, threads, openmp)
    assert got is y4 and c_sum.dtype == dtype and c_sum.shape == (k,)
    np.testing.assert_array_equal(y, want.astype(dtype))  # written in place, signs exact
    np.testing.assert_allclose(c_sum, want_sum, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cu_sum, want_u_sum, rtol=1e-5, atol=1e-5, equal_nan=True)


def loop_ranked(u, rank, delta):
    """Krotov's coefficients by a loop, each row ranked by repeated masked argmax (the first NaN wins), the sums
    in float64 and the two ranks' indices."""
    y = np.zeros(u.shape, np.float64)
    ranks = np.zeros((2, *u.shape[:2]), np.int64)
    for b, q in np.ndindex(*u.shape[:2]):
        row = u[b, q].astype(np.float64)
        hits = []
        for _ in range(rank):
            hits.append(first_largest(row))
            row[hits[-1]] = -np.inf
        y[b, q, hits[0]] = 1.0
        y[b, q, hits[-1]] -= delta
        ranks[:, b, q] = hits[0], hits[-1]
    return (*with_sums(y, u), ranks)


@numba_installed
@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 4),
    p=st.integers(1, 5),
    k=st.integers(1, 30),
    rank=st.integers(1, 8),
    special=st.sampled_from(["none", "nan", "inf", "zeros", "all_nan"]),
    **RUNS,
)
def test_ranked_coefficients_against_a_loop(n, p, k, rank, special, threads, openmp, dtype, seed):
    rng = np.random.default_rng(seed)
    rank = min(rank, k)
    u = rows_with_ties(rng, n, p, k, dtype)
    row = u[0, 0]
    if special == "nan":
        row[rng.integers(k)], row[rng.integers(k)] = np.nan, -np.nan
    elif special == "inf":  # ranks past the finite values fall on -inf, masked winners among them
        row[:] = -np.inf
        row[rng.integers(k)] = 1.0
    elif special == "zeros":  # -0 ties with +0: the lower index ranks first
        row[:] = 0.0
        row[0] = row[rng.integers(k)] = -0.0
    elif special == "all_nan":
        row[:] = np.nan
    want, want_sum, want_u_sum, want_ranks = loop_ranked(u, rank, 0.4)
    u4 = u.reshape(n, p, 1, k).transpose(0, 3, 1, 2)  # (N, K, H, W) views of channels-last memory
    y, c_sum, cu_sum, ranks = cpu_kernels.ranked_of(u4, rank, 0.4, threads, openmp)
    np.testing.assert_array_equal(np.stack(ranks).reshape(2, n, p), want_ranks)
    assert y.dtype == dtype and y.strides == u4.strides and c_sum.shape == (k,)
    np.testing.assert_allclose(y.transpose(0, 2, 3, 1).reshape(n, p, k), want, rtol=1e-6)
    np.testing.assert_allclose(c_sum, want_sum, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(cu_sum, want_u_sum, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_winner_signed_sums_leave_what_the_kernel_cannot_take_to_the_array_code():
    last = np.zeros((2, 4, 5, 3), np.float32).transpose(0, 3, 1, 2)
    chw = np.zeros((2, 3, 4, 5), np.float32)
    assert cpu_kernels.winner_signed_sums_of(chw, chw.copy(), 1) is None  # not channels-last
    assert cpu_kernels.winner_signed_sums_of(last, last.astype(np.float64), 1) is None  # mixed dtypes
    assert cpu_kernels.winner_signed_sums_of(last[:0], last[:0], 1) is None  # an empty shard
    frozen = last.copy()
    frozen.flags.writeable = False
    assert cpu_kernels.winner_signed_sums_of(frozen, last, 1) is None


@pytest.fixture(params=["numpy", "torch"])
def cpu_ops(request, registry):
    """The two backends that run the kernels: numpy and torch on the CPU."""
    if request.param == "torch":
        pytest.importorskip("torch")
    return registry.get("backend", request.param)("cpu")


@numba_installed
def test_backends_sign_and_rank_coefficients_the_same_with_and_without_the_kernels(cpu_ops, monkeypatch):
    ops = cpu_ops
    rng = np.random.default_rng(3)
    xa, wa = ops.asarray(rng.standard_normal((5, 4, 8, 8))), ops.asarray(rng.standard_normal((6, 4, 3, 3)))
    u = ops.conv2d(xa, wa)  # the convolution's layout (channels-last): the kernel's rows
    dense = ops.asarray(rng.standard_normal((7, 6)))
    calls = []
    kernel = cpu_kernels.winner_signed_sums_of

    def flat(result):  # ranked_coefficients: (y, sums..., (first, kth)) as one list of arrays
        return [*result[:-1], *result[-1]] if isinstance(result[-1], tuple) else list(result)

    def counted(fn, tag):  # a kernel that ran (not one that declined and left the call to the array code)
        return lambda *a, **kw: (r := fn(*a, **kw)) is not None and calls.append(tag) or r

    monkeypatch.setattr(cpu_kernels, "winner_signed_sums_of", counted(kernel, 1))
    ranked = cpu_kernels.ranked_of
    monkeypatch.setattr(cpu_kernels, "ranked_of", counted(ranked, 2))
    results = {}
    for switch in ("1", "0"):
        monkeypatch.setenv(cpu_kernels.ENV_SWITCH, switch)
        results[switch] = [
            [ops.to_numpy(a) for a in ops.winner_signed_sums(ops.softmax(v, axis=1), v)] for v in (u, dense)
        ] + [[ops.to_numpy(a) for a in flat(ops.ranked_coefficients(v, 3, 0.4))] for v in (u, dense)]
    assert calls == [1, 1, 2, 2]  # the kernels computed every call with the switch on
    for got, want in zip(results["1"], results["0"], strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        for a, b in zip(got[3:], want[3:], strict=True):  # the ranks' indices
            np.testing.assert_array_equal(a, b)
        for a, b in zip(got[1:3], want[1:3], strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_rows_are_taken_only_where_the_kernel_may_compute():
    chw = np.zeros((2, 3, 4, 5), np.float32)  # (N, K, H, W) with W fastest: not the kernels' rows
    last = np.zeros((2, 4, 5, 3), np.float32).transpose(0, 3, 1, 2)
    wn, xn = np.ones((1, 3, 1, 1), np.float32), np.ones((2, 1, 4, 5), np.float32)
    assert cpu_kernels.similarity_rows(chw, wn, xn, 1e-8) is None
    rows = cpu_kernels.similarity_rows(last, wn, xn, 1e-8)
    assert rows.shape == (2, 20, 3) and np.shares_memory(rows, last)
    assert cpu_kernels.similarity_rows(last, wn, np.ones((1, 1, 4, 5), np.float32), 1e-8) is None  # broadcast x_norm
    assert cpu_kernels.similarity_rows(last.astype(np.float16), wn, xn, 1e-8) is None
    assert cpu_kernels.similarity_rows(last[:0], wn, xn[:0], 1e-8) is None  # an empty shard
    assert cpu_kernels.similarity_rows(last, wn, xn, 0.0) is None  # 0/0 possible: NaN, the array code's way
    for bad in (np.nan, np.inf, -1.0):  # the fast-math kernel assumes finite cosines
        assert cpu_kernels.similarity_rows(last, wn, np.where(xn > 0, bad, xn), 1e-8) is None
        assert cpu_kernels.similarity_rows(last, np.full_like(wn, bad), xn, 1e-8) is None


def test_the_switch_and_a_missing_numba_keep_the_array_code(monkeypatch):
    monkeypatch.setenv(cpu_kernels.ENV_SWITCH, "0")
    assert not cpu_kernels.enabled()
    monkeypatch.delenv(cpu_kernels.ENV_SWITCH)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    monkeypatch.delitem(sys.modules, "hebbcore_backends.numba_kernels", raising=False)
    monkeypatch.delattr(sys.modules["hebbcore_backends"], "numba_kernels", raising=False)
    cpu_kernels._kernels.cache_clear()
    try:
        assert not cpu_kernels.enabled()
        x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
        index = np.zeros((2, 4, 4), np.int64)
        got = NumpyOps().conv2d_winner_sums(x, index, 2, (3, 3))
        np.testing.assert_allclose(got, loop_winner_sums(x, index, 2, 3, 3, 1), rtol=1e-5, atol=1e-5)
    finally:
        cpu_kernels._kernels.cache_clear()


@numba_installed
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_backends_give_the_same_with_and_without_the_kernels(backend, registry, monkeypatch):
    """Winner sums (conv and dense) and the fused cosine and competition, kernels on and off, in every layout
    the backend's convolution returns."""
    if backend == "torch":
        pytest.importorskip("torch")
    ops = registry.get("backend", backend)("cpu")
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((6, 4, 9, 9)), rng.standard_normal((7, 4, 3, 3))
    xa, wa = ops.asarray(x), ops.asarray(w)
    dot = ops.conv2d(xa, wa, 2)
    wn = ops.sqrt(ops.sum(wa * wa, axis=(1, 2, 3))).reshape(1, -1, 1, 1)
    xn = ops.sqrt(ops.patch_sq_norms(xa, (3, 3), 2))
    allowed = ops.asarray(rng.random((6, 7)) < 0.5, dtype="bool")
    dense_x = ops.asarray(rng.standard_normal((6, 11)))
    index = ops.asarray(rng.integers(0, 7, (6, 4, 4)), dtype="int64")

    def results():
        cos, winners = ops.cosine_argmax(dot, wn, xn, 1e-8)
        _, masked = ops.cosine_argmax(dot, wn, xn, 1e-8, allowed)
        return [
            ops.to_numpy(a)
            for a in (
                cos,
                winners,
                masked,
                ops.conv2d_winner_sums(xa, index, 7, (3, 3), 2),
                ops.linear_winner_sums(dense_x, index[:, 0, 0], 7),
            )
        ]

    calls = []
    for name in ("cosine_argmax", "winner_sums"):
        kernel = getattr(cpu_kernels, name)
        monkeypatch.setattr(cpu_kernels, name, lambda *a, _k=kernel, _n=name, **kw: calls.append(_n) or _k(*a, **kw))
    strides = (lambda a: a.stride()) if backend == "torch" else (lambda a: a.strides)
    cos = ops.cosine_argmax(dot, wn, xn, 1e-8)[0]
    assert tuple(cos.shape) == tuple(dot.shape) and strides(cos) == strides(dot)  # the convolution's layout
    with_kernels = results()
    assert calls.count("cosine_argmax") == 3 and calls.count("winner_sums") == 2  # the kernels took every call
    empty = ops.cosine_argmax(dot[:0], wn, xn[:0], 1e-8, allowed[:0])  # an empty shard of a data-parallel batch
    assert tuple(empty[0].shape) == (0, 7, 4, 4) and tuple(empty[1].shape) == (0, 4, 4)
    monkeypatch.setenv(cpu_kernels.ENV_SWITCH, "0")
    without = results()
    for a, b in zip(with_kernels, without, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _sums_in_a_child(queue):
    xh = np.ones((4, 3, 3, 2), np.float32)
    index = np.zeros((4, 1, 1), np.int64)
    queue.put([cpu_kernels.winner_sums(xh, index, 1, 3, 3, 1, 2, openmp).sum() for openmp in (False, True)])


@numba_installed
@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="no fork on this platform")
def test_a_forked_child_runs_the_kernels_on_its_own_threads():
    """The parent's Python threads and OpenMP team are both in use; a forked child has neither and must not
    hang on the one or be stopped by the other."""
    import multiprocessing

    xh = np.ones((4, 3, 3, 2), np.float32)
    index = np.zeros((4, 1, 1), np.int64)
    for openmp in (False, True):
        assert cpu_kernels.winner_sums(xh, index, 1, 3, 3, 1, 2, openmp).sum() == 72
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_sums_in_a_child, args=(queue,), daemon=True)
    child.start()
    assert queue.get(timeout=30) == [72, 72]
    child.join(timeout=60)
    assert child.exitcode == 0


_CONCURRENT = """
import threading, numpy as np
from hebbcore_backends import cpu_kernels
xh, index, bad = np.ones((8, 3, 3, 2), np.float32), np.zeros((8, 1, 1), np.int64), []
def work():
    for _ in range(20):
        if cpu_kernels.winner_sums(xh, index, 1, 3, 3, 1, 2, True).sum() != 144:
            bad.append(1)
threads = [threading.Thread(target=work) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
assert not bad
"""


@numba_installed
@pytest.mark.parametrize("layer", ["default", "workqueue"])
def test_parallel_kernels_from_several_python_threads(layer):
    """Numba's fallback threading layer (workqueue) aborts the process on concurrent parallel launches: the
    kernels take turns."""
    import os
    import subprocess

    env = dict(os.environ) if layer == "default" else {**os.environ, "NUMBA_THREADING_LAYER": layer}
    done = subprocess.run([sys.executable, "-c", _CONCURRENT], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def loop_decay_and_max_abs(a, v, w):
    """``(a − v·w, max |a − v·w|)`` kernel by kernel, element by element, each product and difference rounded to
    the arrays' dtype as IEEE arithmetic rounds them (NaN if any is)."""
    k = a.shape[0]
    with np.errstate(invalid="ignore"):  # 0·inf
        d = np.array([[x - v[i] * y for x, y in zip(a[i].ravel(), w[i].ravel(), strict=True)] for i in range(k)])
    flat = np.abs(d).ravel()
    return d.reshape(a.shape), (np.nan if np.isnan(flat).any() else flat.max())


@numba_installed
@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 9),
    shape=st.sampled_from([(5,), (2, 3, 3)]),
    special=st.sampled_from(["none", "zero_rows", "nan", "inf_w", "inf_a", "tiny"]),
    channels_last=st.booleans(),
    **RUNS,
)
def test_decay_and_max_abs_against_a_loop(k, shape, special, channels_last, threads, openmp, dtype, seed):
    rng = np.random.default_rng(seed)
    a, w = (rng.standard_normal((k, *shape)).astype(dtype) for _ in range(2))
    v = rng.standard_normal(k).astype(dtype)
    if special == "zero_rows":  # Krotov's kernels no position chose: no sum, no decay
        a[::2], v[::2] = 0, 0
    elif special == "nan":
        a[rng.integers(k)].flat[0] = np.nan
    elif special == "inf_w":  # 0·inf is NaN: a row with v = 0 is not left alone then
        v[0] = 0
        w[0].flat[-1] = np.inf
    elif special == "inf_a":  # the maximum is inf
        a[rng.integers(k)].flat[0] = -np.inf
    elif special == "tiny":  # subnormal sums: the maximum is exact still
        a, v = a * dtype(1e-35), v * 0
    if channels_last and len(shape) == 3:  # (K, C, kh, kw) in (K, kh, kw, C) memory, as torch's conv gradients
        a, w = (np.ascontiguousarray(t.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) for t in (a, w))
    want, want_max = loop_decay_and_max_abs(a, v, w)
    with np.errstate(all="ignore"):
        got, top = cpu_kernels.decay_and_max_abs_of(a, v, w, threads, openmp)
    assert got is a and top.shape == () and top.dtype == dtype
    np.testing.assert_array_equal(got, want)  # exactly: no fused multiply-add, NaN where the loop has one
    np.testing.assert_array_equal(top, want_max)


def test_decay_and_max_abs_leaves_what_the_kernel_cannot_take_to_the_array_code():
    a = np.ones((3, 2, 2, 2), np.float32)
    last = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    v = np.ones(3, np.float32)
    assert cpu_kernels.decay_and_max_abs_of(a, v, last, 1) is None  # laid out differently
    assert cpu_kernels.decay_and_max_abs_of(a, v, a, 1) is None  # a is w
    assert cpu_kernels.decay_and_max_abs_of(a[:, :, ::2], v, a[:, :, ::2].copy(), 1) is None  # gaps
    assert cpu_kernels.decay_and_max_abs_of(a, v[:2], a.copy(), 1) is None  # not one v per kernel
    frozen = a.copy()
    frozen.flags.writeable = False
    assert cpu_kernels.decay_and_max_abs_of(frozen, v, a, 1) is None


@numba_installed
def test_backends_decay_the_same_with_and_without_the_kernel(cpu_ops, monkeypatch):
    ops = cpu_ops
    rng = np.random.default_rng(4)
    a, w = rng.standard_normal((2, 6, 4, 3, 3)).astype(np.float32)
    v = rng.standard_normal(6).astype(np.float32)
    a[1], v[1] = 0, 0
    ran = []
    kernel = cpu_kernels.decay_and_max_abs_of
    monkeypatch.setattr(cpu_kernels, "decay_and_max_abs_of", lambda *x: ran.append(r := kernel(*x)) or r)
    results = {}
    for switch in ("1", "0"):  # a copy each time: the kernel overwrites a
        monkeypatch.setenv(cpu_kernels.ENV_SWITCH, switch)
        d, top = ops.decay_and_max_abs(ops.asarray(a.copy()), ops.asarray(v), ops.asarray(w))
        results[switch] = (ops.to_numpy(d), float(ops.to_numpy(top)))
    assert len(ran) == 1 and ran[0] is not None  # the kernel computed it with the switch on
    np.testing.assert_allclose(results["1"][0], results["0"][0], rtol=1e-6, atol=1e-7)
    assert results["1"][1] == results["0"][1]


@numba_installed
@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 9),
    shape=st.sampled_from([(5,), (2, 3, 3)]),
    special=st.sampled_from(["none", "nan", "inf", "zero_scale"]),
    into=st.sampled_from(["new", "w", "s"]),
    channels_last=st.booleans(),
    **RUNS,
)
def test_kernel_affine_against_a_loop(k, shape, special, into, channels_last, threads, openmp, dtype, seed):
    rng = np.random.default_rng(seed)
    w, s = (rng.standard_normal((k, *shape)).astype(dtype) for _ in range(2))
    a, b = (rng.uniform(-2, 2, k).astype(dtype) for _ in range(2))
    if special == "nan":
        s[rng.integers(k)].flat[0] = np.nan
    elif special == "inf":  # inf·0 is NaN, as the array code gives
        w[0].flat[-1], a[0] = np.inf, 0
    elif special == "zero_scale":  # a kernel no position chose: w·1 + 0·0
        a[::2], b[::2], s[::2] = 1, 0, 0
    if channels_last and len(shape) == 3:  # (K, C, kh, kw) in (K, kh, kw, C) memory, as torch's conv gradients
        w, s = (np.ascontiguousarray(t.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2) for t in (w, s))
    want = np.array(
        [[float(a[i]) * float(x) + float(b[i]) * float(y) for x, y in zip(w[i].ravel(), s[i].ravel(), strict=True)]
         for i in range(k)]
    ).reshape(w.shape)  # fmt: skip
    out = {"new": np.empty_like(s), "w": w, "s": s}[into]
    with np.errstate(all="ignore"):
        got = cpu_kernels.kernel_affine_of(w, a, s, b, out, threads, openmp)
    assert got is out
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-6, equal_nan=True)


def test_kernel_affine_leaves_what_the_kernel_cannot_take_to_the_array_code():
    w = np.ones((3, 2, 2, 2), np.float32)
    last = np.ascontiguousarray(w.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    a = np.ones(3, np.float32)
    assert cpu_kernels.kernel_affine_of(w, a, last, a, np.empty_like(w), 1) is None  # laid out differently
    assert cpu_kernels.kernel_affine_of(w, a, w.copy(), a, w[::-1], 1) is None  # out overlaps w, reversed
    assert cpu_kernels.kernel_affine_of(w[:, :, ::2], a, w[:, :, ::2].copy(), a, w[:, :, ::2].copy(), 1) is None
    assert cpu_kernels.kernel_affine_of(w, a, w.astype(np.float64), a, w.copy(), 1) is None  # dtypes differ
    frozen = w.copy()
    frozen.flags.writeable = False
    assert cpu_kernels.kernel_affine_of(w, a, w.copy(), a, frozen, 1) is None


@numba_installed
def test_numpy_applies_the_update_the_same_with_and_without_the_kernel(monkeypatch):
    ops = NumpyOps()  # torch's own two passes beat the kernel on the weights' sizes (torch_backend.kernel_affine)
    rng = np.random.default_rng(5)
    w, s = rng.standard_normal((2, 6, 4, 3, 3)).astype(np.float32)
    a, b = rng.uniform(-2, 2, (2, 6)).astype(np.float32)
    ran = []
    kernel = cpu_kernels.kernel_affine_of
    monkeypatch.setattr(cpu_kernels, "kernel_affine_of", lambda *x: ran.append(r := kernel(*x)) or r)
    results = {}
    for switch in ("1", "0"):
        monkeypatch.setenv(cpu_kernels.ENV_SWITCH, switch)
        results[switch] = [
            ops.to_numpy(ops.kernel_affine(ops.asarray(w), ka, ops.asarray(s), kb))
            for ka, kb in ((ops.asarray(a), ops.asarray(b)), (1.0, 0.5), (ops.asarray(a), 0.5))
        ]
    assert len(ran) == 3 and all(r is not None for r in ran)  # the kernel computed every call with the switch on
    for got, want in zip(results["1"], results["0"], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
