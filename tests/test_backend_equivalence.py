"""Hypothesis property tests: every available backend computes what the numpy reference computes.

Covers the primitives (conv, weight-gradient sums, patch norms, pooling,
batch-norm, one-hot) and whole Hebbian steps of every built-in rule and
aggregation: forward activations, post-synaptic y, Δw and the weights after a
training step, on random shapes (kernel size, stride, channels, batch).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, backend_params, make_ops
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hebbcore.interfaces import HebbianContext
from hebbcore.network import Network
from hebbcore.spec import parse_spec

pytestmark = pytest.mark.parametrize("backend", backend_params())


@st.composite
def conv_case(draw):
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 4))
    k = draw(st.integers(1, 6))
    kh = draw(st.integers(1, 4))
    kw = draw(st.integers(1, 4))
    stride = draw(st.integers(1, 3))
    h = draw(st.integers(kh, kh + 6))
    w = draw(st.integers(kw, kw + 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((k, c, kh, kw)).astype(np.float32)
    return x, wt, stride, rng


@given(case=conv_case())
def test_conv_primitives(backend, registry, numpy_ops, case):
    x, w, stride, rng = case
    ops = make_ops(registry, *backend)
    ref = numpy_ops
    y_ref = ref.conv2d(x, w, stride)
    assert_close(ops.to_numpy(ops.conv2d(ops.asarray(x), ops.asarray(w), stride)), y_ref, what="conv2d")
    g = rng.standard_normal(y_ref.shape).astype(np.float32)
    ks = tuple(w.shape[2:])
    assert_close(
        ops.to_numpy(ops.conv2d_weight_sums(ops.asarray(x), ops.asarray(g), ks, stride)),
        ref.conv2d_weight_sums(x, g, ks, stride),
        what="conv2d_weight_sums",
    )
    assert_close(
        ops.to_numpy(ops.patch_sq_norms(ops.asarray(x), ks, stride)),
        ref.patch_sq_norms(x, ks, stride),
        what="patch_sq_norms",
    )
    # the cosine of the backend's own conv output (channels-last on numpy/cupy), against the formula in float64
    wn = np.sqrt((w.astype(np.float64) ** 2).sum(axis=(1, 2, 3))).reshape(1, -1, 1, 1)
    xn = np.sqrt(ref.patch_sq_norms(x, ks, stride).astype(np.float64))
    dot = ops.conv2d(ops.asarray(x), ops.asarray(w), stride)
    cos = ops.cosine(dot, ops.asarray(wn), ops.asarray(xn), 1e-3)
    assert_close(ops.to_numpy(cos), y_ref / (wn * xn + 1e-3), what="cosine")
    pk = min(2, x.shape[2], x.shape[3])
    assert_close(ops.to_numpy(ops.max_pool2d(ops.asarray(x), pk, pk)), ref.max_pool2d(x, pk, pk), what="max_pool2d")
    ps = min(3, x.shape[2], x.shape[3])
    assert_close(
        ops.to_numpy(ops.avg_pool2d(ops.asarray(x), ps, stride)), ref.avg_pool2d(x, ps, stride), what="avg_pool2d"
    )


def test_reference_conv_is_a_correlation(backend, numpy_ops):
    """The numpy reference itself against a direct loop (so equivalence means correctness)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 2)).astype(np.float32)
    s = 2
    out = numpy_ops.conv2d(x, w, s)
    g = rng.standard_normal(out.shape).astype(np.float32)
    loop = np.zeros(out.shape)
    dw = np.zeros(w.shape)
    for n in range(2):
        for i in range(out.shape[2]):
            for j in range(out.shape[3]):
                patch = x[n, :, i * s : i * s + 3, j * s : j * s + 2]
                loop[n, :, i, j] = (w * patch).sum(axis=(1, 2, 3))
                dw += g[n, :, i, j, None, None, None] * patch[None]
    assert_close(out, loop, what="conv2d vs loop")
    assert_close(numpy_ops.conv2d_weight_sums(x, g, (3, 2), s), dw, what="weight sums vs loop")


@given(n=st.integers(1, 8), c=st.integers(1, 5), hw=st.integers(1, 5), seed=st.integers(0, 10**6), flat=st.booleans())
def test_batchnorm_and_one_hot(backend, registry, numpy_ops, n, c, hw, seed, flat):
    ops = make_ops(registry, *backend)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) if flat else (n, c, hw, hw)).astype(np.float32)
    mean, var = numpy_ops.batch_moments(x)
    m2, v2 = ops.batch_moments(ops.asarray(x))
    assert_close(ops.to_numpy(m2), mean, what="mean")
    assert_close(ops.to_numpy(v2), var, what="var")
    gamma, beta = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    a = [ops.asarray(v) for v in (mean, var, gamma, beta)]
    # x - mean cancels, and 1/sqrt(var + eps) amplifies that rounding (up to ~316x when var = 0: one value
    # per channel), differently for each backend's order of operations: allow float32 rounding of x times it
    amplified = float(np.max(np.abs(gamma) / np.sqrt(var + 1e-5))) * (float(np.abs(x).max()) + 1.0)
    np.testing.assert_allclose(
        ops.to_numpy(ops.batch_norm(ops.asarray(x), *a, 1e-5)),
        numpy_ops.batch_norm(x, mean, var, gamma, beta, 1e-5),
        rtol=1e-4,
        atol=1e-5 + 1e-6 * amplified,
        err_msg="batch_norm",
    )
    assert_close(ops.to_numpy(ops.one_hot_argmax(ops.asarray(x), 1)), numpy_ops.one_hot_argmax(x, 1), what="one_hot")


# ---------------------------------------------------------------------------- whole Hebbian steps

RULES = [
    ("wta", {}),
    ("wta", {"update": "hebb"}),
    ("decay", {}),
    ("hebb", {}),
    ("teacher", {"groups_per_class": 2, "common": 1}),
    ("teacher", {"groups_per_class": 2, "common": 1, "competition": "wta"}),
    ("teacher", {"groups_per_class": 2, "common": 1, "competition": "masked_wta"}),
]


def one_layer_spec(registry, kind, k, ksize, stride, rule, options, aggregation, lr=0.1):
    if kind == "conv":
        layer = {"name": "h", "type": "conv", "out_channels": k, "kernel_size": ksize, "stride": stride}
    else:
        layer = {"name": "h", "type": "linear", "out_features": k}
    layer["hebbian"] = {"rule": rule, "aggregation": aggregation, "lr": lr, "options": options}
    layers = [layer] if kind == "conv" else [{"type": "flatten", "name": "flat"}, layer]
    return parse_spec({"layers": layers, "seed": 3}, registry)


def hebbian_trace(net: Network, x, labels):
    """(activation, y, delta, new weight) of the net's single Hebbian layer on a batch, as numpy."""
    ops = net.ops
    xa = ops.asarray(x)
    node = net.hebbian_nodes[0]
    for pre in net.nodes[: net.nodes.index(node)]:
        xa = net.layer_forward(pre, xa, batch_stats=False)
    dot, cos = net.similarity(node, xa)
    ctx = HebbianContext(
        ops,
        node.spec.type,
        xa,
        node.params["weight"],
        dot,
        cos,
        ops.asarray(labels, dtype="int64"),
        net.n_classes,
        node.stride,
    )
    y = ctx.dense(node.rule.post_synaptic(ctx))
    delta = net.hebbian_update(node, net.hebbian_context(node, xa, dot, ops.asarray(labels, dtype="int64"), cos))
    return [ops.to_numpy(a) for a in (ops.relu(cos), y, delta, node.params["weight"])], ops.to_numpy(cos)


def competition_margin(cos: np.ndarray) -> float:
    """Smallest gap between the best and second-best kernel at any position (ties make argmax ill-posed)."""
    if cos.shape[1] < 2:
        return 1.0
    s = np.sort(cos, axis=1)
    return float((s[:, -1] - s[:, -2]).min())


@given(
    kind=st.sampled_from(["conv", "linear"]),
    rule=st.sampled_from(RULES),
    aggregation=st.sampled_from(["weighted_mean", "mean", "sum"]),
    n=st.integers(1, 6),
    c=st.integers(1, 3),
    size=st.integers(3, 7),
    ksize=st.integers(1, 3),
    stride=st.integers(1, 2),
    seed=st.integers(0, 10**6),
)
def test_hebbian_step_matches_reference(
    backend, registry, numpy_ops, kind, rule, aggregation, n, c, size, ksize, stride, seed
):
    rule_name, options = rule
    n_classes = 3
    k = n_classes * options.get("groups_per_class", 0) + options.get("common", 0) if rule_name == "teacher" else 5
    spec = one_layer_spec(registry, kind, k, ksize, stride, rule_name, options, aggregation)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    labels = rng.integers(0, n_classes, size=n)
    ref_net = Network(spec, x.shape[1:], n_classes, numpy_ops, registry)
    ref, cos = hebbian_trace(ref_net, x, labels)
    if rule_name == "wta" or options.get("competition") in ("wta", "masked_wta"):
        assume(competition_margin(cos) > 1e-3)
    ops = make_ops(registry, *backend)
    got, _ = hebbian_trace(Network(spec, x.shape[1:], n_classes, ops, registry), x, labels)
    for name, a, b in zip(("activation", "y", "delta", "weight"), got, ref, strict=True):
        assert_close(a, b, rtol=2e-4, atol=2e-5, what=f"{rule_name}/{aggregation}/{kind}: {name}")


def test_full_training_step_of_a_deep_net(backend, registry, numpy_ops):
    """One Hebbian step of a conv-pool-bn-conv-fc net (all layers learn at once) on both backends."""
    spec = parse_spec(
        {
            "seed": 1,
            "layers": [
                {"name": "c1", "type": "conv", "out_channels": 6, "kernel_size": 3, "hebbian": {"rule": "wta"}},
                {"name": "p1", "type": "pool", "kernel_size": 2},
                {"name": "b1", "type": "batchnorm"},
                {
                    "name": "c2",
                    "type": "conv",
                    "out_channels": 8,
                    "kernel_size": 2,
                    "hebbian": {"rule": "teacher", "options": {"groups_per_class": 2, "common": 2}},
                },
                {"name": "f", "type": "flatten"},
                {"name": "fc", "type": "linear", "out_features": 3, "hebbian": {"rule": "teacher"}},
            ],
        },
        registry,
    )
    rng = np.random.default_rng(7)
    x = rng.standard_normal((16, 3, 10, 10)).astype(np.float32)
    labels = rng.integers(0, 3, size=16)
    ref = Network(spec, x.shape[1:], 3, numpy_ops, registry)
    ops = make_ops(registry, *backend)
    net = Network(spec, x.shape[1:], 3, ops, registry)
    c1 = ref.similarity(ref.nodes[0], x)[1]
    assert competition_margin(c1) > 1e-4  # fixed data: no ties
    for _ in range(2):
        ref.hebbian_step(x, labels)
        net.hebbian_step(ops.asarray(x), ops.asarray(labels, dtype="int64"))
    a, b = net.state_dict(), ref.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, what=key)
    assert_close(ops.to_numpy(net.forward(ops.asarray(x))), ref.forward(x), rtol=1e-3, atol=1e-4, what="forward")


@given(
    n=st.integers(1, 5),
    k=st.integers(1, 7),
    hw=st.integers(1, 4),
    seed=st.integers(0, 10**6),
    layout=st.sampled_from(["channels_first", "channels_last", "flat"]),
)
def test_one_hot_ties_and_layouts(backend, registry, numpy_ops, n, k, hw, seed, layout):
    """The first largest value wins ties on every backend, whatever the input's memory layout."""
    ops = make_ops(registry, *backend)
    x = np.random.default_rng(seed).integers(0, 3, size=(n, k) if layout == "flat" else (n, k, hw, hw))
    a = ops.asarray(x.astype(np.float32))
    if layout == "channels_last" and backend[0] == "torch":
        a = a.contiguous(memory_format=ops.torch.channels_last)
    elif layout == "channels_last":
        a = ops.asarray(np.ascontiguousarray(x.astype(np.float32).transpose(0, 2, 3, 1))).transpose(0, 3, 1, 2)
    hot = ops.one_hot_argmax(a, 1)
    assert tuple(hot.shape) == x.shape
    np.testing.assert_array_equal(ops.to_numpy(hot), numpy_ops.one_hot_argmax(x.astype(np.float32), 1))


@given(case=conv_case())
def test_winner_primitives(backend, registry, numpy_ops, case):
    """argmax, one-hot, winner counts and the winners' patch sums agree with numpy on every backend."""
    x, w, stride, rng = case
    ops = make_ops(registry, *backend)
    sim = numpy_ops.conv2d(x, w, stride)
    index = numpy_ops.argmax(sim, 1)
    got_index = ops.argmax(ops.asarray(sim), 1)
    np.testing.assert_array_equal(ops.to_numpy(got_index), index)
    k, ks = w.shape[0], tuple(w.shape[2:])
    np.testing.assert_array_equal(ops.to_numpy(ops.one_hot(got_index, k)), numpy_ops.one_hot(index, k))
    np.testing.assert_array_equal(ops.to_numpy(ops.winner_counts(got_index, k)), numpy_ops.winner_counts(index, k))
    ref = numpy_ops.conv2d_weight_sums(x, numpy_ops.one_hot(index, k), ks, stride)
    assert_close(
        ops.to_numpy(ops.conv2d_winner_sums(ops.asarray(x), got_index, k, ks, stride)), ref, what="conv2d_winner_sums"
    )


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 40), d=st.integers(1, 30), k=st.integers(1, 12), seed=st.integers(0, 2**31 - 1))
def test_linear_winner_sums_add_each_row_to_its_winners(backend, registry, n, d, k, seed):
    """The fully connected layers' winner sums, against a loop over the rows (every backend, empty batches too)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    index = rng.integers(0, k, size=n)
    expected = np.zeros((k, d))
    for row, winner in zip(x, index, strict=True):
        expected[winner] += row
    ops = make_ops(registry, *backend)
    got = ops.linear_winner_sums(ops.asarray(x), ops.asarray(index, dtype="int64"), k)
    assert tuple(got.shape) == (k, d) and str(got.dtype).endswith("float32")
    assert_close(ops.to_numpy(got), expected, what="linear_winner_sums")


@settings(max_examples=25, deadline=None)
@given(
    shape=st.lists(st.integers(0, 6), min_size=1, max_size=4).map(tuple),
    p=st.sampled_from([0.25, 0.7, 1.0, 1.4, 2.0, 3.0, 4.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_power_of_non_negative_arrays(backend, registry, numpy_ops, shape, p, seed):
    """``Ops.power`` of the reference and of each backend against float64 ``**`` on non-negative input with
    zeros (0 stays 0); the reference keeps a channels-last view channels-last."""
    rng = np.random.default_rng(seed)
    a = (np.abs(rng.standard_normal(shape)) * rng.choice([0.0, 1e-3, 1.0, 30.0], size=shape)).astype(np.float32)
    expected = a.astype(np.float64) ** p
    for ops in (numpy_ops, make_ops(registry, *backend)):
        got = ops.power(ops.asarray(a), p)
        assert tuple(got.shape) == shape and str(got.dtype).endswith("float32")
        assert_close(ops.to_numpy(got), expected, what=f"{ops.name} power {p}")
    assert numpy_ops.power(np.float32(4.0), 0.5) == 2.0 and numpy_ops.power(np.array(9.0, np.float32), 0.5) == 3.0
    if len(shape) == 4:  # the (N, K, H, W) view of channels-last memory a conv returns: no copy needed later
        view = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        assert numpy_ops.power(view, p).transpose(0, 2, 3, 1).flags.c_contiguous


def test_torch_native_winner_sums_on_the_cpu(backend, numpy_ops):
    """The torch-only path of the winners' sums (CUDA's), run on the CPU, against numpy."""
    if backend[0] != "torch":
        pytest.skip("torch's own path")
    from hebbcore_backends.torch_backend import TorchOps

    ops = TorchOps("cpu")
    rng = np.random.default_rng(5)
    for n, c, h, k, ks, s in [(3, 4, 9, 6, 3, 1), (2, 3, 11, 5, 5, 2), (4, 2, 6, 3, 1, 2)]:
        x = rng.standard_normal((n, c, h, h)).astype(np.float32)
        ho = (h - ks) // s + 1
        index = rng.integers(0, k, size=(n, ho, ho))
        xh = ops.asarray(x).permute(0, 2, 3, 1).contiguous()
        out = ops.torch.zeros((k, ks * ks * c))
        got = ops._winner_sums_native(xh, ops.asarray(index, dtype="int64"), out, (ks, ks), s)
        ref = numpy_ops.conv2d_weight_sums(x, numpy_ops.one_hot(index, k), (ks, ks), s)
        assert_close(ops.to_numpy(got), ref, what="torch native winner sums")


def test_torch_native_winner_counts_on_the_cpu(backend, numpy_ops):
    """The sync-free winner counts of torch on CUDA, run on the CPU, against numpy (empty and unused kernels too)."""
    if backend[0] != "torch":
        pytest.skip("torch's own path")
    from hebbcore_backends.torch_backend import TorchOps

    ops = TorchOps("cpu")
    rng = np.random.default_rng(6)
    for shape, k, high in [((3, 5, 5), 7, 7), ((2, 4, 4), 9, 3), ((0, 3, 3), 4, 4), ((64, 1000), 10, 10)]:
        index = rng.integers(0, high, size=shape)
        got = ops._counts_native(ops.asarray(index, dtype="int64").reshape(-1), k)
        assert got.dtype == ops.torch.float32
        np.testing.assert_array_equal(ops.to_numpy(got), numpy_ops.winner_counts(index, k))


def test_torch_winner_sums_on_one_cpu_thread(backend, numpy_ops):
    """On one CPU thread torch copies the winners' patches with numpy (with more, with its own copy): same sums,
    in one chunk or in one chunk per sample."""
    if backend[0] != "torch":
        pytest.skip("torch's own path")
    from hebbcore_backends.torch_backend import TorchOps

    class OneSamplePerChunk(TorchOps):
        winner_rows_max_bytes = 1

    rng = np.random.default_rng(7)
    threads = TorchOps("cpu").torch.get_num_threads()
    try:
        for ops in (TorchOps("cpu"), OneSamplePerChunk("cpu")):
            for t in sorted({1, threads}):
                ops.torch.set_num_threads(t)
                for n, c, h, k, ks, s in [(3, 4, 9, 6, 3, 1), (2, 3, 11, 5, 5, 2)]:
                    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
                    ho = (h - ks) // s + 1
                    index = rng.integers(0, k, size=(n, ho, ho))
                    got = ops.conv2d_winner_sums(ops.asarray(x), ops.asarray(index, dtype="int64"), k, (ks, ks), s)
                    ref = numpy_ops.conv2d_weight_sums(x, numpy_ops.one_hot(index, k), (ks, ks), s)
                    assert_close(
                        ops.to_numpy(got), ref, what=f"torch winner sums on {t} thread(s), {type(ops).__name__}"
                    )
    finally:
        ops.torch.set_num_threads(threads)


def test_relu_new_in_place_and_into_another_array(backend, registry, numpy_ops, monkeypatch):
    """``Ops.relu`` against ``np.where(a > 0, a, 0)`` with NaN and infinities: a new array, in place (``out=a``,
    the same array back), and into another array; the response a Hebbian layer passes up is relu of its cosines
    whether its similarity is the built-in one (clamped in place) or a plugin's (a new array, its own untouched)."""
    a = np.array([[-2.0, -0.0, 0.0, 3.5], [np.nan, -np.inf, np.inf, 1e-30]], np.float32)
    want = np.where(np.isnan(a) | (a > 0), a, 0).astype(np.float32)
    ops = make_ops(registry, *backend)
    for o in (numpy_ops, ops):
        new, mine, other = o.asarray(a), o.asarray(a), o.asarray(np.full_like(a, 7))
        np.testing.assert_array_equal(o.to_numpy(o.relu(new)), want)
        np.testing.assert_array_equal(o.to_numpy(new), a)  # not written
        assert o.relu(mine, out=mine) is mine
        assert o.relu(new, out=other) is other
        for got in (mine, other):
            np.testing.assert_array_equal(o.to_numpy(got), want)
    spec = parse_spec({"layers": [{"type": "conv", "out_channels": 3, "kernel_size": 2, "train": "hebbian"}]}, registry)
    layer = Network(spec, (2, 4, 4), 10, ops, registry).nodes[0].layer
    mine = ops.asarray(a)
    assert layer.clamped(ops, mine) is mine  # the built-in similarity's cosines: clamped in place
    held = ops.asarray(a)
    for method in ("similarity_argmax", "similarity"):  # a plugin's, which may keep what it returns
        with monkeypatch.context() as m:  # one overridden at a time
            m.setattr(type(layer), method, lambda self, *args: held)
            np.testing.assert_array_equal(ops.to_numpy(layer.clamped(ops, held)), want)
            np.testing.assert_array_equal(ops.to_numpy(held), a)
