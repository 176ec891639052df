"""The default (numpy/cupy) convolution with its patch buffer forced into many chunks, against a direct loop."""

from __future__ import annotations

import numpy as np
import pytest

from hebbcore_backends.numpy_backend import NumpyOps


class TinyChunks(NumpyOps):
    im2col_max_bytes = 1  # one sample per chunk
    winner_rows_max_bytes = 1  # one winner's patch per gathered chunk


def loop_conv(x, w, s):
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    ho, wo = (h - kh) // s + 1, (wd - kw) // s + 1
    out = np.zeros((n, k, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * s : i * s + kh, j * s : j * s + kw].astype(np.float64)
            out[:, :, i, j] = np.einsum("ncab,kcab->nk", patch, w)
    return out


def loop_weight_sums(x, g, kh, kw, s):
    n, k, ho, wo = g.shape
    out = np.zeros((k, x.shape[1], kh, kw))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, :, i * s : i * s + kh, j * s : j * s + kw].astype(np.float64)
            out += np.einsum("nk,ncab->kcab", g[:, :, i, j], patch)
    return out


@pytest.mark.parametrize("ops", [NumpyOps(), TinyChunks()], ids=["default", "chunked"])
@pytest.mark.parametrize(
    "n,c,h,w,k,kh,kw,s",
    [(5, 3, 9, 8, 4, 3, 2, 1), (3, 2, 11, 10, 6, 5, 5, 2), (4, 7, 6, 6, 3, 3, 3, 1), (2, 4, 5, 7, 5, 1, 1, 3)],
)
def test_conv_and_weight_sums_against_loops(ops, n, c, h, w, k, kh, kw, s):
    rng = np.random.default_rng(n * 100 + c)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    y = ops.conv2d(x, wt, s)
    np.testing.assert_allclose(y, loop_conv(x, wt, s), rtol=1e-4, atol=1e-4)
    g = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(
        ops.conv2d_weight_sums(x, g, (kh, kw), s), loop_weight_sums(x, g, kh, kw, s), rtol=1e-4, atol=1e-3
    )
    # channels-last output fed back in, as the next layer does
    np.testing.assert_allclose(
        ops.conv2d_weight_sums(x, y, (kh, kw), s), loop_weight_sums(x, np.asarray(y), kh, kw, s), rtol=1e-4, atol=1e-3
    )
    # g broadcast over positions (the teacher signal): the window-sum path
    gb = np.broadcast_to(rng.standard_normal((n, k, 1, 1)).astype(np.float32), y.shape)
    np.testing.assert_allclose(
        ops.conv2d_weight_sums(x, gb, (kh, kw), s),
        loop_weight_sums(x, np.ascontiguousarray(gb), kh, kw, s),
        rtol=1e-4,
        atol=1e-3,
    )
    sq = np.asarray(ops.patch_sq_norms(x, (kh, kw), s))
    np.testing.assert_allclose(
        sq[:, 0], loop_conv(x * x, np.ones((1, c, kh, kw), np.float32), s)[:, 0], rtol=1e-4, atol=1e-4
    )


def test_chunked_conv_memory_is_bounded():
    """The patch buffer never exceeds im2col_max_bytes (or one sample's patches)."""
    import tracemalloc

    class Bounded(NumpyOps):
        im2col_max_bytes = 1 << 20

    ops = Bounded()
    x = np.random.default_rng(0).standard_normal((256, 16, 16, 16)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((8, 16, 3, 3)).astype(np.float32)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        y = ops.conv2d(x, w)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    unfolded = 256 * 14 * 14 * 16 * 9 * 4  # the whole batch's patches: 29 MB
    assert peak < x.nbytes + y.nbytes + (2 << 20) < unfolded


@pytest.mark.parametrize("layout", ["channels_first", "channels_last", "flat"])
def test_one_hot_argmax_against_a_loop_with_ties(layout):
    """Exactly one 1 per position, at the first largest value, whatever the memory layout of the input."""
    rng = np.random.default_rng(3)
    shape = (4, 6) if layout == "flat" else (4, 6, 3, 5)
    x = rng.integers(0, 3, size=shape).astype(np.float32)  # many ties
    if layout == "channels_last":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    hot = NumpyOps().one_hot_argmax(x, 1)
    assert hot.shape == x.shape and hot.dtype == x.dtype
    moved, got = np.moveaxis(x, 1, -1).reshape(-1, 6), np.moveaxis(hot, 1, -1).reshape(-1, 6)
    for row, out in zip(moved, got, strict=True):
        expected = np.zeros(6, np.float32)
        expected[list(row).index(row.max())] = 1.0
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("ops", [NumpyOps(), TinyChunks()], ids=["default", "chunked"])
@pytest.mark.parametrize(
    "n,c,h,w,k,kh,kw,s",
    [(5, 3, 9, 8, 4, 3, 2, 1), (3, 2, 11, 10, 6, 5, 5, 2), (4, 7, 6, 6, 9, 3, 3, 1), (2, 4, 5, 7, 5, 1, 1, 3)],
)
def test_winner_sums_against_a_loop(ops, n, c, h, w, k, kh, kw, s):
    """The patches each kernel won, summed: the weight-sums of the one-hot, kernels that never win get 0."""
    rng = np.random.default_rng(n * 10 + k)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    ho, wo = (h - kh) // s + 1, (w - kw) // s + 1
    index = rng.integers(0, max(1, k - 2), size=(n, ho, wo))  # the last kernels never win
    hot = np.zeros((n, k, ho, wo))
    for i in np.ndindex(n, ho, wo):
        hot[i[0], index[i], i[1], i[2]] = 1.0
    got = ops.conv2d_winner_sums(x, index, k, (kh, kw), s)
    assert got.shape == (k, c, kh, kw) and got.dtype == np.float32
    np.testing.assert_allclose(got, loop_weight_sums(x, hot, kh, kw, s), rtol=1e-5, atol=1e-5)
    if k > 2:
        assert not got[k - 2 :].any()
    np.testing.assert_array_equal(ops.winner_counts(index, k), hot.sum(axis=(0, 2, 3)))
    np.testing.assert_array_equal(ops.one_hot(index, k), hot)
    empty = ops.conv2d_winner_sums(x[:0], index[:0], k, (kh, kw), s)  # an empty shard of a batch: no patches
    assert empty.shape == (k, c, kh, kw) and not empty.any()


@pytest.mark.parametrize("layout", ["channels-last", "nchw", "linear", "broadcast x_norm"])
def test_cosine_in_every_layout(layout):
    """The cosine of the default Ops (a matrix product for the denominator where the layout allows) against the
    formula in float64, in the layout of ``dot``."""
    rng = np.random.default_rng(3)
    k = 7
    if layout == "linear":
        dot = rng.standard_normal((5, k)).astype(np.float32)
        wn, xn = rng.random((1, k)).astype(np.float32) + 0.1, rng.random((5, 1)).astype(np.float32) + 0.1
    else:
        dot = rng.standard_normal((4, 3, 2, k)).astype(np.float32).transpose(0, 3, 1, 2)
        if layout == "nchw":
            dot = np.ascontiguousarray(dot)
        wn = rng.random((1, k, 1, 1)).astype(np.float32) + 0.1
        xn = rng.random((1, 1, 3, 2) if layout == "broadcast x_norm" else (4, 1, 3, 2)).astype(np.float32) + 0.1
    eps = 1e-3
    got = NumpyOps().cosine(dot, wn, xn, eps)
    want = dot.astype(np.float64) / (wn.astype(np.float64) * xn + eps)
    assert got.shape == dot.shape and got.dtype == np.float32 and got.strides == dot.strides
    np.testing.assert_allclose(got, want, rtol=1e-6)
