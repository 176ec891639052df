"""The extra rule plugins (oja, sanger, hpca, kwta, softhebb, krotov, bcm, chl).

For every rule:

(a) a loop reference: every sample and position is visited, its patch cut out,
    the rule's equation (as written in the rule's docstring and paper) applied to
    that one patch, and the per-position updates aggregated per kernel, in
    float64; compared with the fast path (sums, Gram matrices, conv
    weight-gradients) through :meth:`Network.hebbian_update` on conv layers
    (stride 1 and 2) and linear layers;
(b) backend equivalence: numpy against torch-CPU (torch-CUDA and cupy where
    available, else skipped with the reason) on random small shapes (hypothesis),
    with near-ties of competitive rules excluded by ``assume`` on margins;
(c) short training runs on the ``synthetic`` dataset that check the rule learned
    something: PCA rules find the principal subspace, competitive rules give a
    teacher classifier features well above chance, BCM becomes selective, CHL
    trains a classifier.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, backend_params, make_ops
from hypothesis import assume, given
from hypothesis import strategies as st

from hebbcore.errors import SpecError
from hebbcore.network import Network
from hebbcore.runner import run
from hebbcore.spec import parse_spec

COS_EPS = 1e-8

# (rule, options, aggregation): every rule, with its defaults and with non-default options
CASES = [
    ("hebb", {}, "weighted_mean"),
    ("decay", {}, "weighted_mean"),
    ("decay", {}, "direction_mean"),
    ("hebb", {}, "mean"),
    ("oja", {}, "mean"),
    ("oja", {"activation": "cosine"}, "sum"),
    ("sanger", {}, "mean"),
    ("sanger", {"activation": "relu"}, "sum"),
    ("hpca", {}, "mean"),
    ("kwta", {"k": 2}, "weighted_mean"),
    ("kwta", {"k": 3, "update": "hebb"}, "mean"),
    ("softhebb", {"temperature": 0.5}, "sum"),
    ("softhebb", {"response": "cosine", "normalize": False, "adaptive_lr": False, "temperature": 0.2}, "mean"),
    ("softhebb", {"power_lr": 0.75, "anti_hebbian": False, "temperature": 0.7}, "sum"),
    ("softhebb", {"lebesgue_p": 3.0, "temperature": 0.5}, "sum"),
    ("softhebb", {"normalize": False}, "sum"),  # the rate alone, at temperature 1 (u not scaled)
    ("softhebb", {"adaptive_lr": False, "temperature": 1.0}, "sum"),  # the max-normalisation alone
    ("krotov", {}, "sum"),
    ("krotov", {"p": 3.0, "k": 3, "delta": 0.3, "radius": 1.5, "normalize": False}, "mean"),
    ("krotov", {"delta": 0.0}, "sum"),  # SoftHebb's "hard" mode (docs/authors_code.md)
    ("bcm", {}, "mean"),
    ("bcm", {"activation": "linear", "tau": 0.5}, "sum"),
    ("chl", {}, "mean"),
    ("chl", {"free": "dot"}, "sum"),
]
CASE_IDS = [f"{r}-{i}" for i, (r, _, _) in enumerate(CASES)]


# ---------------------------------------------------------------------------- the loop reference


def positions(x, kind, ksize=1, stride=1):
    """Every (sample index, flattened input patch) of a batch, cut out one at a time (float64)."""
    x = np.asarray(x, dtype=np.float64)
    out = []
    for s in range(x.shape[0]):
        if kind == "linear":
            out.append((s, x[s].copy()))
            continue
        _, h, w = x[s].shape
        for i in range((h - ksize) // stride + 1):
            for j in range((w - ksize) // stride + 1):
                out.append((s, x[s, :, i * stride : i * stride + ksize, j * stride : j * stride + ksize].ravel()))
    return out


def ranked(score):
    """Kernel indices by decreasing score, lower index first on ties."""
    return sorted(range(len(score)), key=lambda q: (-score[q], q))


def act(kind, dot, cos):
    return {"linear": dot, "relu": np.maximum(dot, 0.0), "cosine": np.maximum(cos, 0.0)}[kind]


def loop_update(rule, opts, agg, lr, x, w, kind, ksize=1, stride=1, labels=None, state=None):
    """Δw from the per-position equations of ``rule``, aggregated per kernel. ``state``: BCM's θ (dict)."""
    w = np.asarray(w, dtype=np.float64)
    k = w.shape[0]
    W = w.reshape(k, -1)
    pos = positions(x, kind, ksize, stride)
    steps = []  # per position: (c (K,), d (K, D))
    ys = []
    for s, v in pos:
        dot = W @ v
        cos = dot / (np.linalg.norm(W, axis=1) * np.linalg.norm(v) + COS_EPS)
        c, d = np.zeros(k), np.zeros_like(W)
        if rule in ("hebb", "decay"):
            y = np.maximum(cos, 0.0)
            for q in range(k):
                c[q], d[q] = y[q], (v - W[q] if rule == "decay" else v)
        elif rule == "oja":
            y = act(opts.get("activation", "linear"), dot, cos)
            for q in range(k):
                c[q], d[q] = y[q], v - y[q] * W[q]
        elif rule in ("sanger", "hpca"):
            y = act(opts.get("activation", "linear" if rule == "sanger" else "relu"), dot, cos)
            for q in range(k):
                recon = sum(y[j] * W[j] for j in range(q + 1))
                c[q], d[q] = y[q], v - recon
        elif rule == "kwta":
            for q in ranked(cos)[: opts.get("k", 2)]:
                c[q] = 1.0
            for q in range(k):
                d[q] = v - W[q] if opts.get("update", "decay") == "decay" else v
        elif rule == "softhebb":
            lp = opts.get("lebesgue_p", 2.0)  # the authors' currents: Σ_i sign(w_i)|w_i|^(p-1) v_i
            lcur = np.array([np.sum(np.sign(W[q]) * np.abs(W[q]) ** (lp - 1) * v) for q in range(k)])
            u = lcur if opts.get("response", "dot") == "dot" else cos
            e = np.exp((u - u.max()) / opts.get("temperature", 1.0))
            y = e / e.sum()
            win = int(np.argmax(u))
            for q in range(k):
                c[q] = y[q] if q == win or not opts.get("anti_hebbian", True) else -y[q]
                d[q] = v - u[q] * W[q]
        elif rule == "krotov":
            p, kk = opts.get("p", 2.0), opts.get("k", 2)
            R = opts.get("radius", 1.0)
            cur = np.array(
                [sum(np.sign(W[q, i]) * abs(W[q, i]) ** (p - 1) * v[i] for i in range(len(v))) for q in range(k)]
            )
            order = ranked(cur)
            c[order[0]] = 1.0
            c[order[kk - 1]] = -opts.get("delta", 0.4)
            for q in range(k):
                d[q] = R**p * v - cur[q] * W[q]
        elif rule == "bcm":
            ys.append(act(opts.get("activation", "relu"), dot, cos))
            for q in range(k):
                d[q] = v
        elif rule == "chl":
            g = opts.get("groups_per_class", 1)
            t = np.zeros(k)
            t[labels[s] * g : (labels[s] + 1) * g] = 1.0
            free = np.maximum(cos, 0.0) if opts.get("free", "cosine") == "cosine" else dot
            c = t - free
            for q in range(k):
                d[q] = v
        else:
            raise AssertionError(rule)
        steps.append((c, d))
    if rule == "bcm":  # the threshold is the running mean of y² over the batch, updated before use
        m = np.mean([y * y for y in ys], axis=0)
        tau = opts.get("tau", 0.1)
        state["theta"] = m if state.get("theta") is None else (1 - tau) * state["theta"] + tau * m
        steps = [(y * (y - state["theta"]), d) for y, (_, d) in zip(ys, steps, strict=True)]
    num = sum(c[:, None] * d for c, d in steps)  # Σ_p c_p d_p, per kernel
    den = sum(c for c, _ in steps)  # Σ_p c_p
    if rule in ("softhebb", "krotov"):
        if opts.get("normalize", True):
            num = num / max(np.abs(num).max(), 1e-30)
        if rule == "softhebb" and opts.get("adaptive_lr", True):
            lp = opts.get("lebesgue_p", 2.0)
            norm = (np.abs(W) ** lp).sum(axis=1) ** (1 / lp)
            rate = (np.abs(norm - opts.get("radius", 1.0)) + 1e-10) ** opts.get("power_lr", 0.5)
            num = num * rate[:, None]
    if agg == "weighted_mean":  # the paper's: Σ c·Δw_p / Σ|c| = Σ c²·d / Σ|c|
        num_w = sum((c * c)[:, None] * d for c, d in steps)
        den_w = sum(np.abs(c) for c, _ in steps)
        upd = np.where(den_w[:, None] > 0, num_w / np.where(den_w > 0, den_w, 1.0)[:, None], 0.0)
    elif agg == "direction_mean":
        upd = np.where(den[:, None] > 0, num / np.where(den > 0, den, 1.0)[:, None], 0.0)
    elif agg == "mean":
        upd = num / len(pos)
    else:
        upd = num
    return (lr * upd).reshape(w.shape)


# ---------------------------------------------------------------------------- the fast path


def one_layer_net(registry, ops, rule, opts, agg, kind, k, in_shape, n_classes, ksize=1, stride=1, seed=3, lr=0.05):
    layer = {"name": "l", "type": kind, "hebbian": {"rule": rule, "aggregation": agg, "lr": lr, "options": opts}}
    if kind == "conv":
        layer.update(out_channels=k, kernel_size=ksize, stride=stride)
    else:
        layer.update(out_features=k)
    spec = parse_spec({"seed": seed, "layers": [layer]}, registry)
    return Network(spec, in_shape, n_classes, ops, registry)


def fast_update(net, x, labels):
    """Δw of one step through the network's own Hebbian path (weights updated in place)."""
    ops, node = net.ops, net.nodes[0]
    xb = ops.asarray(x)
    lb = None if labels is None else ops.asarray(labels, dtype="int64")
    dot, cos = net.similarity(node, xb)
    return ops.to_numpy(net.hebbian_update(node, net.hebbian_context(node, xb, dot, lb, cos)))


def competition_score(rule, opts, net, x):
    """(score the rule ranks kernels by, ranks whose gap to the next must not be a near-tie) or None."""
    ops, node = net.ops, net.nodes[0]
    xb = ops.asarray(x)
    dot, cos = (ops.to_numpy(a) for a in net.similarity(node, xb))
    if rule == "kwta":
        return cos, [opts.get("k", 2) - 1]
    if rule == "softhebb" and opts.get("anti_hebbian", True):  # without it the winner does not matter
        return (dot if opts.get("response", "dot") == "dot" else cos), [0]
    if rule == "krotov":
        kk = opts.get("k", 2)
        cur = ops.to_numpy(node.rule.currents(_ctx(net, xb)))
        return cur, sorted({0, kk - 2, kk - 1})
    return None


def _ctx(net, xb, labels=None):
    from hebbcore.interfaces import HebbianContext

    node = net.nodes[0]
    dot, cos = net.similarity(node, xb)
    return HebbianContext(
        net.ops, node.spec.type, xb, node.params["weight"], dot, cos, labels, net.n_classes, node.stride
    )


def min_margin(score, ranks):
    """Smallest gap between rank r and r+1 (r in ranks) over every position, relative to the score's scale."""
    s = -np.sort(-np.asarray(score, dtype=np.float64), axis=1)
    k = s.shape[1]
    gaps = [s[:, r] - s[:, r + 1] for r in ranks if r + 1 < k]
    if not gaps:
        return np.inf
    return float(min(g.min() for g in gaps)) / max(1e-12, float(np.abs(s).max()))


def weighted_mean_conditioned(net, x, labels, rel=1e-2):
    """False when a kernel's coefficient sum Σy is near 0 against Σ|y| (signed y, e.g. CHL's ``t − w·x``).

    ``weighted_mean`` divides by Σy: there two backends' rounding differences grow by Σ|y| / |Σy|, and the sign of
    a sum near 0 decides whether the kernel learns at all.
    """
    ops, node = net.ops, net.nodes[0]
    ctx = _ctx(net, ops.asarray(x), None if labels is None else ops.asarray(labels, dtype="int64"))
    y = np.asarray(ops.to_numpy(node.rule.post_synaptic(ctx)), dtype=np.float64)
    axes = tuple(i for i in range(y.ndim) if i != 1)
    total, size = y.sum(axis=axes), np.abs(y).sum(axis=axes)
    return bool(np.all((size == 0) | (np.abs(total) >= rel * size)))


def case_data(rule, kind, rng, n, c, size, n_classes):
    shape = (n, c, size, size) if kind == "conv" else (n, c * size)
    x = rng.standard_normal(shape).astype(np.float32)
    labels = rng.integers(0, n_classes, size=n) if rule == "chl" else None
    return x, labels


# ---------------------------------------------------------------------------- (a) loop reference

LAYOUTS = [("conv", 3, 1), ("conv", 2, 2), ("linear", 1, 1)]


@pytest.mark.parametrize("layout", LAYOUTS, ids=["conv-k3s1", "conv-k2s2", "linear"])
@pytest.mark.parametrize("rule,opts,agg", CASES, ids=CASE_IDS)
def test_rule_matches_loop_reference(registry, numpy_ops, rule, opts, agg, layout):
    kind, ksize, stride = layout
    k = n_classes = 5
    c, size = 2, 6
    in_shape = (c, size, size) if kind == "conv" else (c * size,)
    net = one_layer_net(registry, numpy_ops, rule, opts, agg, kind, k, in_shape, n_classes, ksize, stride, lr=0.05)
    rng = np.random.default_rng(7)
    state = {}
    for step in range(2):  # two steps: BCM's threshold carries over, the others see updated weights
        x, labels = case_data(rule, kind, rng, 3, c, size, n_classes)
        comp = competition_score(rule, opts, net, x)
        if comp is not None:
            assert min_margin(*comp) > 1e-4, "test data has a near-tie; pick another seed"
        w0 = net.nodes[0].params["weight"].copy()
        expected = loop_update(rule, opts, agg, 0.05, x, w0, kind, ksize, stride, labels, state)
        got = fast_update(net, x, labels)
        assert np.abs(expected).max() > 1e-6, "the reference update is zero: the test would prove nothing"
        assert_close(got, expected, rtol=1e-4, atol=1e-5, what=f"{rule} {opts} {agg} {layout} step {step}")


# ---------------------------------------------------------------------------- (b) backend equivalence


@st.composite
def shapes(draw):
    kind = draw(st.sampled_from(["conv", "linear"]))
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    ksize = draw(st.integers(1, 3))
    size = draw(st.integers(ksize, ksize + 4))
    stride = draw(st.integers(1, 2))
    k = draw(st.integers(3, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    return kind, n, c, ksize, size, stride, k, seed


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("rule,opts,agg", CASES, ids=CASE_IDS)
@given(case=shapes())
def test_rule_backend_equivalence(registry, numpy_ops, backend, rule, opts, agg, case):
    kind, n, c, ksize, size, stride, k, seed = case
    ops = make_ops(registry, *backend)
    n_classes = k
    in_shape = (c, size, size) if kind == "conv" else (c * size,)
    nets = [
        one_layer_net(registry, o, rule, opts, agg, kind, k, in_shape, n_classes, ksize, stride, seed=seed % 1000)
        for o in (numpy_ops, ops)
    ]
    rng = np.random.default_rng(seed)
    for step in range(2):
        x, labels = case_data(rule, kind, rng, n, c, size, n_classes)
        comp = competition_score(rule, opts, nets[0], x)
        if comp is not None:
            assume(min_margin(*comp) > 1e-3)
        if rule == "chl" and agg == "weighted_mean":
            assume(weighted_mean_conditioned(nets[0], x, labels))
        ref = fast_update(nets[0], x, labels)
        got = fast_update(nets[1], x, labels)
        assert_close(got, ref, rtol=1e-4, atol=1e-5, what=f"{backend} {rule} {opts} step {step}")
    if rule == "bcm":
        assert_close(
            ops.to_numpy(nets[1].nodes[0].rule_state["theta"]), nets[0].nodes[0].rule_state["theta"], what="bcm theta"
        )


@pytest.mark.parametrize("backend", backend_params())
@given(  # 32 and more samples: torch's CPU kernel_gram goes to oneDNN
    n=st.sampled_from([1, 2, 3, 32, 33]),
    k=st.integers(2, 7),
    h=st.integers(1, 4),
    top=st.integers(1, 7),
    seed=st.integers(0, 2**31 - 1),
)
def test_rule_primitives_backend_equivalence(registry, numpy_ops, backend, n, k, h, top, seed):
    ops = make_ops(registry, *backend)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, k, h, h)).astype(np.float32)
    top = min(top, k)
    last = np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)  # channels-last, as convs return
    for arr in (a, a[:, :, 0, 0].copy(), np.round(a), last):  # rounded: many exact ties, broken the same way
        b = ops.asarray(arr)
        if arr is last and hasattr(b, "stride"):
            assert b.permute(0, 2, 3, 1).is_contiguous()
        assert_close(ops.to_numpy(ops.kernel_gram(b)), numpy_ops.kernel_gram(arr), what="kernel_gram")
        assert_close(ops.to_numpy(ops.softmax(b, axis=1)), numpy_ops.softmax(arr, axis=1), what="softmax")
        assert float(ops.to_numpy(ops.max_abs(b))) == np.abs(arr).max()  # exact: a max picks one of the values
        flat = arr.reshape(len(arr), -1).astype(np.float64)
        assert_close(ops.to_numpy(ops.kernel_norms(b)), np.sqrt((flat**2).sum(axis=1)), what="kernel_norms")
        v = rng.standard_normal(len(arr)).astype(np.float32)
        want = flat - v[:, None].astype(np.float64) * flat[::-1].reshape(flat.shape)
        got = ops.minus_per_kernel(b, ops.asarray(v), ops.asarray(arr[::-1].copy()))
        assert_close(ops.to_numpy(got).reshape(len(arr), -1), want, what="minus_per_kernel")
        # the weight update a_k·w + b_k·Δ in Δ's layout, or in place in w
        av, bv = (rng.uniform(-2, 2, len(arr)).astype(np.float32) for _ in range(2))
        s = float(rng.uniform(-2, 2))
        w64, d64 = arr[::-1].astype(np.float64), arr.astype(np.float64)
        per = (-1,) + (1,) * (arr.ndim - 1)
        for ka, kb, want in (
            (av, bv, av.reshape(per) * w64 + bv.reshape(per) * d64),
            (1.0, s, w64 + s * d64),
            (1.0, bv, w64 + bv.reshape(per) * d64),
            (av, s, av.reshape(per) * w64 + s * d64),
        ):
            for o, bb in ((ops, b), (numpy_ops, arr)):
                ak, bk = (k if isinstance(k, float) else o.asarray(k) for k in (ka, kb))
                got = o.kernel_affine(o.asarray(arr[::-1].copy()), ak, bb, bk)
                assert_close(o.to_numpy(got), want, what=f"{o.name} kernel_affine")
                assert got.dtype == bb.dtype and (
                    arr is not last or not hasattr(got, "stride") or got.stride() == b.stride()
                )
                w = o.asarray(arr[::-1].copy())
                assert o.kernel_affine(w, ak, bb, bk, out=w) is w
                assert_close(o.to_numpy(w), want, what=f"{o.name} kernel_affine in place in w")
                s_own = o.asarray(arr.copy())
                assert o.kernel_affine(o.asarray(arr[::-1].copy()), ak, s_own, bk, out=s_own) is s_own
                assert_close(o.to_numpy(s_own), want, what=f"{o.name} kernel_affine in place in s")
                one = o.asarray(arr.copy())  # w, s and out the same array: (a + b)·w
                both = (ka if isinstance(ka, float) else ka.reshape(per)) + (
                    kb if isinstance(kb, float) else kb.reshape(per)
                )
                assert o.kernel_affine(one, ak, one, bk, out=one) is one
                assert_close(o.to_numpy(one), both * d64, what=f"{o.name} kernel_affine of w with itself")
        mask = ops.to_numpy(ops.top_k_mask(b, top, axis=1))
        assert mask.dtype == np.float32
        np.testing.assert_array_equal(mask, numpy_ops.top_k_mask(arr, top, axis=1))
        assert (mask.sum(axis=1) == top).all()


@pytest.mark.parametrize(
    "rule, opts",
    [("hpca", {}), ("sanger", {}), ("krotov", {"k": 2}), ("softhebb", {"anti_hebbian": False}), ("softhebb", {})],
)
@pytest.mark.parametrize("agg", ["mean", "sum"])
def test_sums_no_aggregation_reads_are_not_computed(registry, numpy_ops, monkeypatch, rule, opts, agg):
    """``mean`` and ``sum`` never read the coefficient sums: the rules hand them None (nothing computes them,
    nor sums them over processes), and the update is the one the sums' presence gives."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 6, 6)).astype(np.float32)
    agg_cls = type(registry.get("aggregation", agg)())
    seen = []
    scale = agg_cls.kernel_scale
    monkeypatch.setattr(agg_cls, "kernel_scale", lambda self, ctx, c: seen.append(c) or scale(self, ctx, c))
    deltas, reduced = {}, {}
    for reads in (False, True):
        monkeypatch.setattr(agg_cls, "reads_coefficient_sum", reads)
        net = one_layer_net(registry, numpy_ops, rule, opts, agg, "conv", 4, (2, 6, 6), 3, ksize=3)
        reduced[reads] = []
        net.reducer = lambda a, _r=reduced[reads]: _r.append(tuple(a.shape)) or a  # one process's data-parallel sum
        deltas[reads] = fast_update(net, x, None)
    assert seen[0] is None and seen[1] is not None and seen[1].shape == (4,)
    assert (4,) not in reduced[False] and reduced[True].count((4,)) == 1 and (4, 2, 3, 3) in reduced[False]
    np.testing.assert_allclose(deltas[False], deltas[True], rtol=1e-6, atol=1e-7)


def test_no_sums_for_an_aggregation_that_reads_them_is_refused(registry, numpy_ops, monkeypatch):
    from hebbcore.errors import PluginError

    net = one_layer_net(registry, numpy_ops, "hebb", {}, "direction_mean", "linear", 4, (5,), 3)
    rule_cls = type(net.nodes[0].rule)
    sums = rule_cls.update_sums
    monkeypatch.setattr(rule_cls, "update_sums", lambda self, ctx, c: (sums(self, ctx, c)[0], None))  # omits them
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    with pytest.raises(PluginError, match="rule 'hebb' returned no coefficient sums.*'direction_mean' reads"):
        fast_update(net, x, None)


def test_an_aggregation_that_overrides_combine_gets_it_called(registry, numpy_ops, monkeypatch):
    """A subclass of a built-in that overrides ``combine`` gets its own update, not the inherited per-kernel
    factor folded into the step's pass; the update equals a loop's ``2·Σ_p y_p·(x_p − w)``."""
    sum_cls = type(registry.get("aggregation", "sum")())

    class Doubled(sum_cls):
        def combine(self, ctx, direction_sum, coefficient_sum):
            return direction_sum * 2.0

    net = one_layer_net(registry, numpy_ops, "decay", {}, "sum", "linear", 4, (5,), 3)
    node = net.nodes[0]
    node.aggregation = Doubled()
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    w = node.params["weight"].copy()
    cos = (x @ w.T) / (np.linalg.norm(x, axis=1)[:, None] * np.linalg.norm(w, axis=1)[None, :] + 1e-8)
    y = np.maximum(cos, 0).astype(np.float64)
    want = 2 * sum(y[n, :, None] * (x[n][None, :] - w) for n in range(6))
    np.testing.assert_allclose(fast_update(net, x, None) / 0.05, want, rtol=1e-4, atol=1e-5)


def test_plugins_whose_terms_or_interface_are_wrong_are_refused(registry, numpy_ops, monkeypatch):
    from hebbcore.errors import PluginError
    from hebbcore.interfaces import Aggregation, KernelTerms

    with pytest.raises(PluginError, match="Aggregation.sums.*no longer called.*weighting"):
        type("Old", (Aggregation,), {"name": "old", "sums": lambda self, ctx, rule, c: None})
    net = one_layer_net(registry, numpy_ops, "decay", {}, "sum", "linear", 4, (5,), 3)
    rule_cls = type(net.nodes[0].rule)
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    terms = rule_cls.update_terms
    for bad, match in (
        (lambda t: (t[0].hebb, t[1]), "update_terms returned ndarray.*expected hebbcore.interfaces.KernelTerms"),
        (lambda t: (KernelTerms(t[0].hebb, t[0].decay.astype(np.float64)), t[1]), r"decay ndarray \(4,\) float64"),
        (lambda t: (KernelTerms(t[0].hebb, t[0].decay[:2]), t[1]), r"decay ndarray \(2,\) float32.*shape \(4,\)"),
    ):
        monkeypatch.setattr(rule_cls, "update_terms", lambda self, ctx, c, _b=bad: _b(terms(self, ctx, c)))
        with pytest.raises(PluginError, match=match):
            fast_update(net, x, None)
    # a number for a scale, of any numeric type, is a float
    monkeypatch.setattr(
        rule_cls, "update_terms", lambda self, ctx, c: (terms(self, ctx, c)[0].times(np.int64(2)), None)
    )
    doubled = fast_update(net, x, None)
    monkeypatch.setattr(rule_cls, "update_terms", terms)
    np.testing.assert_allclose(
        doubled,
        2 * fast_update(one_layer_net(registry, numpy_ops, "decay", {}, "sum", "linear", 4, (5,), 3), x, None),
        rtol=1e-5,
        atol=1e-6,
    )
    for scale in (np.float32(2), np.int64(2), 2, True):  # numbers of any real type become Python floats
        assert type(KernelTerms(np.ones(2), None, scale).scale) is float
        assert type(KernelTerms(np.ones(2)).times(scale).scale) is float
    for bad, match in (
        (lambda t: (KernelTerms(t[0].hebb, 0.5), t[1]), "decay float; expected None or an array of shape \\(4,\\)"),
        (lambda t: t[0], "update_terms returned KernelTerms; expected a pair"),
    ):
        monkeypatch.setattr(rule_cls, "update_terms", lambda self, ctx, c, _b=bad: _b(terms(self, ctx, c)))
        with pytest.raises(PluginError, match=match):
            fast_update(net, x, None)
    monkeypatch.setattr(rule_cls, "update_terms", terms)
    agg_cls = type(net.nodes[0].aggregation)
    monkeypatch.setattr(agg_cls, "weighting", lambda self, ctx, c: c)  # one array, not a pair
    with pytest.raises(PluginError, match="aggregation 'sum': weighting returned ndarray; expected a pair"):
        fast_update(net, x, None)


def test_plugin_arrays_on_another_device_are_refused(registry, monkeypatch):
    """A factor or sum on another device than the weights is a PluginError naming both (torch's ``meta`` device
    stands in for a GPU here); it would otherwise fail inside the update without naming the plugin."""
    torch = pytest.importorskip("torch")
    from hebbcore.errors import PluginError
    from hebbcore.interfaces import KernelTerms

    net = one_layer_net(registry, make_ops(registry, "torch", "cpu"), "decay", {}, "sum", "linear", 4, (5,), 3)
    rule_cls = type(net.nodes[0].rule)
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    terms = rule_cls.update_terms
    for bad, match in (
        (lambda t: KernelTerms(t.hebb, t.decay.to("meta")), r"decay Tensor \(4,\) torch.float32 on meta; .* on cpu"),
        (lambda t: KernelTerms(t.hebb, t.decay, t.decay.to("meta")), r"scale Tensor \(4,\) torch.float32 on meta"),
        (lambda t: KernelTerms(t.hebb.to("meta"), t.decay), r"summed update Tensor \(4, 5\) torch.float32 on meta"),
    ):
        monkeypatch.setattr(rule_cls, "update_terms", lambda self, ctx, c, _b=bad: (_b(terms(self, ctx, c)[0]), None))
        with pytest.raises(PluginError, match=match):
            fast_update(net, x, None)
    monkeypatch.setattr(rule_cls, "update_terms", terms)
    assert torch.isfinite(torch.as_tensor(fast_update(net, x, None))).all()
    post = rule_cls.post_synaptic
    monkeypatch.setattr(rule_cls, "post_synaptic", lambda self, ctx: post(self, ctx).to("meta"))
    with pytest.raises(PluginError, match=r"post_synaptic returned Tensor \(6, 4\) torch.float32 on meta; .*on cpu"):
        fast_update(net, x, None)
    monkeypatch.setattr(rule_cls, "post_synaptic", post)
    agg_cls = type(net.nodes[0].aggregation)
    monkeypatch.setattr(agg_cls, "kernel_scale", lambda self, ctx, c: torch.ones(4, device="meta"))
    with pytest.raises(PluginError, match=r"aggregation 'sum': kernel_scale returned Tensor \(4,\) .* on meta"):
        fast_update(net, x, None)
    monkeypatch.setattr(agg_cls, "combine", lambda self, ctx, d, c: d.to("meta"))  # the step calls combine now
    with pytest.raises(PluginError, match=r"aggregation 'sum': combine returned Tensor \(4, 5\) .* on meta"):
        fast_update(net, x, None)
    monkeypatch.setattr(agg_cls, "combine", lambda self, ctx, d, c: [])  # not an array: its type alone
    with pytest.raises(PluginError, match=r"combine returned list; expected the shape and dtype of w, \(4, 5\)"):
        fast_update(net, x, None)


@pytest.mark.parametrize("backend", [pytest.param(("numpy", None), id="numpy"), *backend_params()])
def test_softmax_flushes_subnormal_outputs(registry, backend):
    """A sharp softmax leaves outputs below 1e-38; every backend returns 0 there (they slow products ~50x)."""
    ops = make_ops(registry, *backend)
    a = np.array([[0.0, -60.0, -89.0, -95.0, -200.0]], dtype=np.float32)  # exp: 1, 9e-27, 2e-39, 5e-42, 0
    y = ops.to_numpy(ops.softmax(ops.asarray(a), axis=1))
    tiny = np.finfo(np.float32).tiny
    assert not ((y > 0) & (y < tiny)).any(), y
    np.testing.assert_array_equal(y[0, 2:], 0.0)
    assert y[0, 1] > 0 and abs(y[0, 0] - 1.0) < 1e-6
    nan = ops.to_numpy(ops.softmax(ops.asarray(np.array([[0.0, np.nan, 1.0]], dtype=np.float32)), axis=1))
    assert np.isnan(nan).all()  # a NaN response stays visible to the run's NaN check, not flushed to 0
    # the same as a channels-last (N, K, H, W) response, as convolutions return them
    last = np.concatenate([a, np.array([[0.0, np.nan, 1.0, 0.0, 0.0]], np.float32)]).reshape(2, 1, 1, 5)
    y4 = ops.to_numpy(ops.softmax(ops.asarray(np.ascontiguousarray(last).transpose(0, 3, 1, 2)), axis=1))
    np.testing.assert_array_equal(y4[0, :, 0, 0], y[0])
    assert np.isnan(y4[1]).all()


@pytest.mark.parametrize("backend", [pytest.param(("numpy", None), id="numpy"), *backend_params()])
def test_max_abs_keeps_a_nan_visible(registry, backend):
    """A NaN anywhere makes ``max |a|`` NaN, so a normalised update carries it to the run's NaN check."""
    ops = make_ops(registry, *backend)
    for pos in (0, 5, 23):
        a = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4) - 30.0
        a.reshape(-1)[pos] = np.nan
        assert np.isnan(ops.to_numpy(ops.max_abs(ops.asarray(a))))
    assert float(ops.to_numpy(ops.max_abs(ops.asarray(np.array([[-3.0, 2.0]], np.float32))))) == 3.0


@pytest.mark.parametrize("backend", [pytest.param(("numpy", None), id="numpy"), *backend_params()])
def test_isfinite_all_finds_every_nan_and_inf(registry, backend):
    """The run's NaN check: any NaN or inf anywhere, in a channels-last layout too; an empty array is finite."""
    ops = make_ops(registry, *backend)
    base = np.arange(24, dtype=np.float32).reshape(1, 4, 2, 3) - 30.0
    assert ops.isfinite_all(ops.asarray(base)) and ops.isfinite_all(ops.asarray(base[:0]))
    big = np.ones((64, 128, 16, 8), np.float32)  # past the threads' grain: each part's max is combined
    assert ops.isfinite_all(ops.asarray(big))
    big[-1, -1, -1, -2] = np.nan
    assert not ops.isfinite_all(ops.asarray(big))
    assert ops.isfinite_all(ops.asarray(np.array([1, 2], np.int64)))
    for bad in (np.nan, -np.nan, np.inf, -np.inf):
        for pos in (0, 7, 23):
            a = base.copy()
            a.reshape(-1)[pos] = bad
            assert not ops.isfinite_all(ops.asarray(a))
            v = ops.asarray(np.ascontiguousarray(a.transpose(0, 2, 3, 1)))
            last = v.permute(0, 3, 1, 2) if hasattr(v, "permute") else v.transpose(0, 3, 1, 2)
            assert not ops.isfinite_all(last)


def test_backends_leave_the_floating_point_mode_alone(registry):
    """No backend turns flush-to-zero on for the process (it breaks other libraries, e.g. hypothesis's floats)."""
    torch = pytest.importorskip("torch")
    make_ops(registry, "torch", "cpu")
    assert (torch.tensor([1e-39], dtype=torch.float32) * 1.0).item() > 0.0
    assert 5e-324 > 0.0


def test_primitives_against_loops(numpy_ops):
    rng = np.random.default_rng(0)
    y = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    g = np.zeros((3, 3))
    for n in range(2):
        for i in range(2):
            for j in range(2):
                g += np.outer(y[n, :, i, j], y[n, :, i, j])
    assert_close(numpy_ops.kernel_gram(y), g, what="gram")
    a = np.array([[0.5, 2.0, 0.5, -1.0]], dtype=np.float32)
    np.testing.assert_array_equal(numpy_ops.top_k_mask(a, 2, axis=1), [[1, 1, 0, 0]])  # tie: lower index first
    np.testing.assert_array_equal(numpy_ops.top_k_mask(a, 3, axis=1), [[1, 1, 1, 0]])
    b = np.array([[0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]], dtype=np.float32)  # k > 4: the sort path, same ties
    np.testing.assert_array_equal(numpy_ops.top_k_mask(b, 5, axis=1), [[1, 1, 1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(numpy_ops.top_k_mask(b, 3, axis=1), [[1, 1, 0, 0, 1, 0, 0]])
    assert_close(numpy_ops.softmax(a, axis=1), np.exp(a) / np.exp(a).sum(), what="softmax")


# ---------------------------------------------------------------------------- option checks


@pytest.mark.parametrize(
    "rule,opts,needle",
    [
        ("kwta", {"k": 9}, "options.k"),
        ("krotov", {"k": 1}, "options.k"),
        ("krotov", {"p": 1.5}, "options.p"),
        ("softhebb", {"response": "tanh"}, "options.response"),
        ("softhebb", {"lebesgue_p": 1.5}, "options.lebesgue_p"),
        ("softhebb", {"lebesgue_p": 3.0, "response": "cosine"}, "options.lebesgue_p"),
        ("oja", {"activation": "sigmoid"}, "options.activation"),
        ("bcm", {"tau": 0.0}, "options.tau"),
        ("chl", {"groups_per_class": 2}, "kernels"),
    ],
)
def test_bad_options_are_reported(registry, numpy_ops, rule, opts, needle):
    with pytest.raises(SpecError, match=needle):
        one_layer_net(registry, numpy_ops, rule, opts, "mean", "linear", 5, (8,), 5)


def test_chl_needs_labels(registry, numpy_ops):
    net = one_layer_net(registry, numpy_ops, "chl", {}, "mean", "linear", 5, (8,), 5)
    with pytest.raises(ValueError, match="labels"):
        fast_update(net, np.ones((2, 8), np.float32), None)


# ---------------------------------------------------------------------------- (c) learning


@pytest.mark.parametrize("rule", ["oja", "sanger"])
def test_pca_rules_find_the_principal_components(registry, numpy_ops, rule):
    """On Gaussian data with a known spectrum: Oja's kernels each align with the leading
    eigenvector at unit norm; Sanger's kernels become the leading eigenvectors, in order."""
    d, k = 8, 3
    rng = np.random.default_rng(0)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scales = np.sqrt(np.array([6.0, 3.0, 1.5, 0.4, 0.3, 0.2, 0.1, 0.05]))
    net = one_layer_net(registry, numpy_ops, rule, {}, "mean", "linear", k, (d,), 10, seed=1, lr=0.02)
    for _ in range(400):
        x = ((rng.standard_normal((64, d)) * scales) @ basis.T).astype(np.float32)
        net.hebbian_step(x, None)
    w = net.nodes[0].params["weight"].astype(np.float64)
    norms = np.linalg.norm(w, axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=0.05)
    align = np.abs((w / norms[:, None]) @ basis[:, :k])  # |cos| between kernel q and eigenvector j
    target = np.zeros((k, k))
    if rule == "oja":
        target[:, 0] = 1.0
    else:
        target = np.eye(k)
    np.testing.assert_allclose(align, target, atol=0.1, err_msg=f"{rule}: kernels vs eigenvectors\n{align}")


def synthetic_spec(registry, conv_train, rule="", opts=None, agg="mean", lr=0.05, classifier=None):
    conv = {"name": "conv1", "type": "conv", "out_channels": 16, "kernel_size": 5, "train": conv_train}
    if conv_train == "hebbian":
        conv["hebbian"] = {"rule": rule, "aggregation": agg, "lr": lr, "options": opts or {}}
    classifier = classifier or {"rule": "teacher", "lr": 0.1}
    return parse_spec(
        {
            "seed": 0,
            "data": {"source": "synthetic", "options": {"n_train": 600, "n_val": 0, "n_test": 400}},
            "hebbian": {"epochs": 1, "batch_size": 32},
            "layers": [
                conv,
                {"name": "pool", "type": "pool", "kernel_size": 2},
                {"name": "bn", "type": "batchnorm"},
                {"name": "flat", "type": "flatten"},
                {"name": "clf", "type": "linear", "out_features": 10, "hebbian": classifier},
            ],
        },
        registry,
    )


@pytest.fixture(scope="module")
def synthetic(registry):
    from hebbcore.runner import load_dataset

    return load_dataset(synthetic_spec(registry, "random"), registry)


@pytest.fixture(scope="module")
def random_features_accuracy(registry, synthetic, tmp_path_factory):
    """Test accuracy of the teacher classifier on the untrained (random) conv layer: the bar to beat."""
    out = tmp_path_factory.mktemp("random")
    return run(synthetic_spec(registry, "random"), registry, "numpy", out, progress=False, dataset=synthetic).metrics[
        "final"
    ]["test_acc"]


@pytest.mark.parametrize(
    "rule,opts,agg,lr",
    [
        ("oja", {}, "mean", 0.05),
        ("sanger", {}, "mean", 0.05),
        ("hpca", {}, "mean", 0.05),
        ("kwta", {"k": 2}, "weighted_mean", 0.1),
        ("softhebb", {}, "sum", 0.2),
        ("krotov", {}, "sum", 0.05),
        ("bcm", {}, "mean", 0.05),
    ],
)
def test_rule_learns_useful_features(registry, synthetic, random_features_accuracy, tmp_path, rule, opts, agg, lr):
    """One Hebbian epoch of conv1 with the rule; a teacher classifier on its features must beat
    the same classifier on random conv1 features by a clear margin (and chance, 0.1, by far)."""
    res = run(
        synthetic_spec(registry, "hebbian", rule, opts, agg, lr),
        registry,
        "numpy",
        tmp_path,
        progress=False,
        dataset=synthetic,
    )
    acc = res.metrics["final"]["test_acc"]
    assert random_features_accuracy < 0.55, random_features_accuracy
    assert acc > random_features_accuracy + 0.08, (rule, acc, random_features_accuracy)
    assert acc > 0.5, (rule, acc)


def test_chl_trains_a_classifier(registry, synthetic, tmp_path):
    """CHL (free: the layer's response, clamped: the target) as the classifier rule, on random conv1 features."""
    clf = {"rule": "chl", "aggregation": "mean", "lr": 0.5}
    net_spec = synthetic_spec(registry, "random", classifier=clf)
    res = run(net_spec, registry, "numpy", tmp_path, progress=False, dataset=synthetic)
    acc = res.metrics["final"]["test_acc"]
    assert acc > 0.45, acc  # chance is 0.1


def test_bcm_threshold_tracks_the_second_moment(registry, numpy_ops):
    """θ is the running mean of y² (τ = 1: exactly the last batch's mean)."""
    net = one_layer_net(registry, numpy_ops, "bcm", {"tau": 1.0}, "mean", "linear", 4, (6,), 10, lr=0.01)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((16, 6)).astype(np.float32)
        w = net.nodes[0].params["weight"].copy()
        y = np.maximum(x @ w.T, 0)
        net.hebbian_step(x, None)
        assert_close(net.nodes[0].rule_state["theta"], (y * y).mean(0), what="theta")


@pytest.mark.parametrize(
    "response, hebbian",
    [
        ("linear", {"rule": "hpca", "aggregation": "mean"}),
        ("cosine", {"rule": "hpca", "aggregation": "mean"}),
        # its p-norm currents are not w·x: the response passed up is computed for the layer above alone
        ("linear", {"rule": "krotov", "aggregation": "sum", "options": {"p": 3.0, "k": 2}}),
    ],
)
def test_hebbian_step_passes_the_layer_response_up(registry, numpy_ops, response, hebbian):
    """The layer above a Hebbian layer sees, during the Hebbian step, what it sees at inference.

    A batch-norm with momentum 1 keeps the last batch's statistics: they must be the moments of
    the Hebbian layer's inference output (``w·x + b`` for ``response = "linear"``, not its cosine).
    """
    spec = parse_spec(
        {
            "seed": 0,
            "layers": [
                {
                    "name": "conv",
                    "type": "conv",
                    "out_channels": 6,
                    "kernel_size": 3,
                    "response": response,
                    "hebbian": {**hebbian, "lr": 1e-12},
                },
                {"name": "bn", "type": "batchnorm", "momentum": 1.0},
                {"name": "flat", "type": "flatten"},
                {"name": "clf", "type": "linear", "out_features": 3, "hebbian": {"rule": "teacher", "lr": 0.1}},
            ],
        },
        registry,
    )
    net = Network(spec, (2, 7, 7), 3, numpy_ops, registry)
    x = np.random.default_rng(0).normal(size=(16, 2, 7, 7)).astype(np.float32)
    net.hebbian_step(numpy_ops.asarray(x), numpy_ops.asarray(np.arange(16) % 3, dtype="int64"))
    out = numpy_ops.to_numpy(net.forward(numpy_ops.asarray(x), upto=1))
    bn = next(n for n in net.nodes if n.name == "bn")
    np.testing.assert_allclose(
        numpy_ops.to_numpy(bn.params["running_mean"]), out.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_the_top_hebbian_layer_computes_only_what_its_rule_reads(registry, numpy_ops, monkeypatch, kind):
    """Krotov's p-norm currents replace ``w·x``, and nothing reads the top Hebbian layer's response during the
    Hebbian step: one product per step (the currents'), and the step's update is the one with ``dot`` given."""
    shape = (2, 6, 6) if kind == "conv" else (7,)
    opts = {"p": 3.0, "k": 2}
    nets = [one_layer_net(registry, numpy_ops, "krotov", opts, "sum", kind, 5, shape, 3, ksize=3) for _ in range(2)]
    x = np.random.default_rng(5).standard_normal((4, *shape)).astype(np.float32)
    want = fast_update(nets[0], x, None)  # dot and cosine computed and handed over
    ops = type(numpy_ops)
    calls = []
    for name in ("linear", "conv2d"):
        real = getattr(ops, name)
        monkeypatch.setattr(ops, name, lambda self, *a, _f=real, _n=name: calls.append(_n) or _f(self, *a))
    w0 = numpy_ops.to_numpy(nets[1].nodes[0].params["weight"])
    nets[1].hebbian_step(numpy_ops.asarray(x), None)
    assert calls == ["linear" if kind == "linear" else "conv2d"]
    np.testing.assert_allclose(numpy_ops.to_numpy(nets[1].nodes[0].params["weight"]) - w0, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param(("numpy", None), id="numpy"),
        pytest.param(("numpy", "no-numba"), id="numpy-array-code"),  # a one-hot product: one dense product instead
        *backend_params(),
    ],
)
@pytest.mark.parametrize("kind", ["conv-k3s1", "conv-k2s2", "linear"])
def test_winner_correlation_is_the_correlation_of_the_weighted_one_hots(registry, monkeypatch, backend, kind):
    """``Σ_j a_j·one_hot(winners_j)`` against the inputs, added two rows per position (or, where the backend's
    winner sums are a one-hot product, as one dense product), against a loop over the patches in float64 (with
    collisions: both sets may pick one kernel)."""
    from hebbcore.interfaces import HebbianContext
    from hebbcore_backends import cpu_kernels

    if backend[1] == "no-numba":
        monkeypatch.setenv(cpu_kernels.ENV_SWITCH, "0")
        backend = ("numpy", None)
    ops = make_ops(registry, *backend)
    rng = np.random.default_rng(6)
    k, ksize, stride = 5, (3 if kind == "conv-k3s1" else 2), (1 if kind == "conv-k3s1" else 2)
    if kind == "linear":
        x, w, pos_shape = rng.standard_normal((6, 7)), rng.standard_normal((k, 7)), (6,)
    else:
        x, w = rng.standard_normal((3, 2, 7, 7)), rng.standard_normal((k, 2, ksize, ksize))
        pos_shape = (3, (7 - ksize) // stride + 1, (7 - ksize) // stride + 1)
    sets = [rng.integers(0, k, pos_shape) for _ in range(2)]
    weights = (1.5, -0.4)
    want = np.zeros((k, w[0].size))
    flat_sets = [s.reshape(-1) for s in sets]
    for p, (_, patch) in enumerate(positions(x, "linear" if kind == "linear" else "conv", ksize, stride)):
        for a, idx in zip(weights, flat_sets, strict=True):
            want[idx[p]] += a * patch
    xd, wd = ops.asarray(x.astype(np.float32)), ops.asarray(w.astype(np.float32))
    ctx = HebbianContext(
        ops, "linear" if kind == "linear" else "conv", xd, wd, lambda: None, lambda: None, None, 3,
        stride if kind != "linear" else 1, dot_shape=(pos_shape[0], k, *pos_shape[1:]),
    )  # fmt: skip
    products = []
    for name in ("linear_weight_sums", "conv2d_weight_sums"):
        real = getattr(type(ops), name)
        monkeypatch.setattr(type(ops), name, lambda self, *a, _f=real, **kw: products.append(1) or _f(self, *a, **kw))
    got = ctx.winner_correlation([ops.asarray(s, dtype="int64") for s in sets], weights)
    assert_close(ops.to_numpy(got).reshape(k, -1), want, rtol=1e-5, atol=1e-5, what="winner correlation")
    assert len(products) == (0 if ops.adds_winner_rows(xd, ctx.kind) else 1)


def test_a_dot_computed_on_first_use_needs_its_shape(numpy_ops):
    from hebbcore.interfaces import HebbianContext

    x = numpy_ops.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="needs its dot_shape"):
        HebbianContext(numpy_ops, "linear", x, x, lambda: x, lambda: x, None, 3)


@pytest.mark.parametrize("backend", [pytest.param(("numpy", None), id="numpy"), *backend_params()])
@pytest.mark.parametrize("block", [3, 4, 64])  # several blocks of unequal widths, and one
@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("n", [3, 32])  # torch's CPU Gram of a batch this large is oneDNN's 1x1 weight-gradient
def test_lower_gram_product_is_sangers_decay(registry, monkeypatch, backend, block, kind, n):
    """``Σ_{j≤k} G_kj·w_j`` by blocks against ``tril(YᵀY)·W`` in float64, laid out like ``w``."""
    ops = make_ops(registry, *backend)
    monkeypatch.setattr(type(ops), "gram_block", block)
    rng = np.random.default_rng(7)
    k = 10
    if kind == "conv":  # y and w channels-last, as a torch CPU convolution and its update leave them
        y = np.ascontiguousarray(rng.standard_normal((n, 4, 4, k)).astype(np.float32)).transpose(0, 3, 1, 2)
        w = np.ascontiguousarray(rng.standard_normal((k, 3, 3, 2)).astype(np.float32)).transpose(0, 3, 1, 2)
        ym = y.transpose(0, 2, 3, 1).reshape(-1, k).astype(np.float64)
    else:
        y, w = rng.standard_normal((n, k)).astype(np.float32), rng.standard_normal((k, 6)).astype(np.float32)
        ym = y.astype(np.float64)
    want = (np.tril(ym.T @ ym) @ w.reshape(k, -1).astype(np.float64)).reshape(w.shape)
    wd = ops.asarray(w)
    if kind == "conv" and hasattr(wd, "stride"):
        wd = wd.contiguous(memory_format=__import__("torch").channels_last)
    got = ops.lower_gram_product(ops.asarray(y), wd)
    assert_close(ops.to_numpy(got), want, rtol=1e-5, atol=1e-5, what="lower_gram_product")
    assert_close(ops.to_numpy(ops.kernel_gram(ops.asarray(y))), ym.T @ ym, rtol=1e-5, atol=1e-5, what="kernel_gram")
    # in w's layout: the update's subtraction reads both alike
    assert (got.stride() == wd.stride()) if hasattr(got, "stride") else (got.strides == wd.strides)
    if kind == "conv":  # no positions (a direct call; a network cannot make one): a zero Gram, as the sums over none
        none = ops.asarray(np.zeros((n, k, 0, 3), np.float32))
        np.testing.assert_array_equal(ops.to_numpy(ops.lower_gram_product(none, wd)), np.zeros(w.shape, np.float32))


@pytest.mark.parametrize(
    "hebbian",
    [
        {"rule": "krotov", "aggregation": "sum", "options": {"p": 3.0, "k": 2}},  # w·x read after the update
        {"rule": "hpca", "aggregation": "mean"},  # read before it
    ],
)
def test_the_response_passed_up_is_the_one_before_the_update(registry, numpy_ops, hebbian):
    spec = parse_spec(
        {
            "seed": 0,
            "layers": [
                {
                    "name": "fc",
                    "type": "linear",
                    "out_features": 5,
                    "response": "linear",
                    "hebbian": {**hebbian, "lr": 0.5},
                },
                {"name": "bn", "type": "batchnorm", "momentum": 1.0},
                {"name": "clf", "type": "linear", "out_features": 3, "hebbian": {"rule": "teacher", "lr": 0.1}},
            ],
        },
        registry,
    )
    net = Network(spec, (7,), 3, numpy_ops, registry)
    x = np.random.default_rng(1).normal(size=(16, 7)).astype(np.float32)
    w0 = numpy_ops.to_numpy(net.nodes[0].params["weight"]).copy()
    net.hebbian_step(numpy_ops.asarray(x), numpy_ops.asarray(np.arange(16) % 3, dtype="int64"))
    assert np.abs(numpy_ops.to_numpy(net.nodes[0].params["weight"]) - w0).max() > 1e-3  # the update was not tiny
    bn = next(n for n in net.nodes if n.name == "bn")
    want = (x.astype(np.float64) @ w0.T.astype(np.float64)).mean(axis=0)
    np.testing.assert_allclose(numpy_ops.to_numpy(bn.params["running_mean"]), want, rtol=1e-5, atol=1e-5)


def test_a_dot_of_another_shape_than_the_layer_output_is_a_plugin_error(numpy_ops):
    from hebbcore.errors import PluginError
    from hebbcore.interfaces import HebbianContext

    x = numpy_ops.asarray(np.zeros((2, 3)))
    ctx = HebbianContext(numpy_ops, "linear", x, x, lambda: x, lambda: x, None, 3, dot_shape=(2, 4))
    with pytest.raises(PluginError, match=r"dot product has shape \(2, 3\); its output shape says \(2, 4\)"):
        _ = ctx.dot
