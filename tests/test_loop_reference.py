"""The fast path against a loop over samples and positions written straight from the paper.

Amato et al. (ICIAP 2019): at every sample and position the kernel with the
largest cosine similarity to the patch wins (y = 1); its update is
Δw_p = η·y·(x_p − w) (Eq. 3); the updates of each shared kernel are combined by
a weighted average with the step coefficients as weights.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, backend_params, make_ops
from hypothesis import assume, given
from hypothesis import strategies as st

from hebbcore.network import Network
from hebbcore.spec import parse_spec


def loop_step(
    x,
    w,
    stride,
    lr,
    labels=None,
    groups=None,
    common=0,
    n_classes=0,
    rule="wta",
    agg="weighted_mean",
    competition="none",
):
    """Per-position updates, explicitly, then aggregated per kernel (float64)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    k, c, kh, kw = w.shape
    n, _, h, wd = x.shape
    ho, wo = (h - kh) // stride + 1, (wd - kw) // stride + 1
    num = np.zeros_like(w)
    den = np.zeros(k)
    count = 0
    for s in range(n):
        for i in range(ho):
            for j in range(wo):
                patch = x[s, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
                count += 1
                cos = np.array(
                    [(w[q] * patch).sum() / (np.linalg.norm(w[q]) * np.linalg.norm(patch) + 1e-8) for q in range(k)]
                )
                if rule == "wta":
                    y = np.zeros(k)
                    y[int(np.argmax(cos))] = 1.0
                else:  # teacher
                    group = np.zeros(k, dtype=bool)
                    group[labels[s] * groups : (labels[s] + 1) * groups] = True
                    shared = np.zeros(k, dtype=bool)
                    shared[n_classes * groups :] = True
                    y = np.zeros(k)
                    if competition == "none":  # the label's group and the common kernels all learn
                        y[group | shared] = 1.0
                    elif competition == "wta":  # the best of the label's group; common kernels always
                        y[int(np.argmax(np.where(group, cos, -np.inf)))] = 1.0
                        y[shared] = 1.0
                    else:  # masked_wta: one winner among the label's group and the common kernels
                        y[int(np.argmax(np.where(group | shared, cos, -np.inf)))] = 1.0
                for q in range(k):
                    step = lr * y[q] * (patch - w[q])  # Eq. 3
                    c_q = y[q]  # the step coefficient
                    if agg == "weighted_mean":
                        num[q] += c_q * (patch - w[q]) * lr if c_q else 0.0
                        den[q] += c_q
                    else:
                        num[q] += step
    if agg == "weighted_mean":
        upd = np.where(den[:, None, None, None] > 0, num / np.where(den > 0, den, 1)[:, None, None, None], 0.0)
    elif agg == "mean":
        upd = num / count
    else:
        upd = num
    return w + upd


def conv_net(registry, k, ksize, stride, hebbian):
    spec = parse_spec(
        {
            "seed": 11,
            "layers": [
                {
                    "name": "c",
                    "type": "conv",
                    "out_channels": k,
                    "kernel_size": ksize,
                    "stride": stride,
                    "hebbian": hebbian,
                }
            ],
        },
        registry,
    )
    return spec


@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    k=st.integers(2, 6),
    ksize=st.integers(1, 3),
    stride=st.integers(1, 2),
    size=st.integers(3, 6),
    seed=st.integers(0, 10**6),
    agg=st.sampled_from(["weighted_mean", "mean", "sum"]),
)
def test_wta_eq3_weighted_mean_matches_loop(registry, numpy_ops, n, c, k, ksize, stride, size, seed, agg):
    spec = conv_net(registry, k, ksize, stride, {"rule": "wta", "aggregation": agg, "lr": 0.1})
    net = Network(spec, (c, size, size), 10, numpy_ops, registry)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, size, size)).astype(np.float32)
    w0 = net.nodes[0].params["weight"].copy()
    cos = net.similarity(net.nodes[0], x)[1]
    s = np.sort(cos, axis=1)
    assume(float((s[:, -1] - s[:, -2]).min()) > 1e-4)
    expected = loop_step(x, w0, stride, 0.1, agg=agg)
    net.hebbian_step(x, None)
    assert_close(net.nodes[0].params["weight"], expected, rtol=1e-4, atol=1e-5, what=f"wta/{agg}")


@given(
    n=st.integers(1, 4),
    groups=st.integers(1, 3),
    common=st.integers(0, 2),
    seed=st.integers(0, 10**6),
    competition=st.sampled_from(["none", "wta", "masked_wta"]),
)
def test_teacher_matches_loop(registry, numpy_ops, n, groups, common, seed, competition):
    n_classes = 3
    k = n_classes * groups + common
    spec = conv_net(
        registry,
        k,
        2,
        1,
        {
            "rule": "teacher",
            "lr": 0.2,
            "options": {"groups_per_class": groups, "common": common, "competition": competition},
        },
    )
    net = Network(spec, (2, 4, 4), n_classes, numpy_ops, registry)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2, 4, 4)).astype(np.float32)
    labels = rng.integers(0, n_classes, size=n)
    if competition != "none" and k > 1:  # no near-tie between any two kernels (any pair may be candidates)
        s = np.sort(net.similarity(net.nodes[0], x)[1], axis=1)
        assume(float(np.diff(s, axis=1).min()) > 1e-4)
    expected = loop_step(
        x,
        net.nodes[0].params["weight"].copy(),
        1,
        0.2,
        labels=labels,
        groups=groups,
        common=common,
        n_classes=n_classes,
        rule="teacher",
        competition=competition,
    )
    net.hebbian_step(x, labels)
    assert_close(net.nodes[0].params["weight"], expected, rtol=1e-4, atol=1e-5, what=f"teacher/{competition}")


def test_masked_wta_keeps_a_class_group_distinct(registry, numpy_ops):
    """Without competition a class group's kernels all move to one class mean; the masked WTA keeps them apart."""
    rng = np.random.default_rng(0)
    n_classes, groups = 2, 3
    x = rng.standard_normal((64, 4, 3, 3)).astype(np.float32)
    labels = rng.integers(0, n_classes, size=64)
    spread = {}
    for competition in ("none", "masked_wta"):
        spec = conv_net(
            registry,
            n_classes * groups,
            3,
            1,
            {"rule": "teacher", "lr": 0.5, "options": {"groups_per_class": groups, "competition": competition}},
        )
        net = Network(spec, (4, 3, 3), n_classes, numpy_ops, registry)
        for _ in range(30):
            net.hebbian_step(x, labels)
        w = net.nodes[0].params["weight"].reshape(n_classes * groups, -1)
        spread[competition] = float(np.abs(w[:groups] - w[:groups].mean(axis=0)).max())
    assert spread["none"] < 1e-3 < spread["masked_wta"], spread


def test_kernel_that_never_wins_is_unchanged(registry, numpy_ops):
    spec = conv_net(registry, 3, 2, 1, {"rule": "wta"})
    net = Network(spec, (1, 3, 3), 10, numpy_ops, registry)
    w = net.nodes[0].params["weight"]
    w[2] = -np.abs(w[2]) * 0 - 1.0  # always anti-aligned with positive inputs: never wins
    w[0], w[1] = 1.0, 0.5
    x = np.abs(np.random.default_rng(0).standard_normal((4, 1, 3, 3))).astype(np.float32) + 0.1
    before = w.copy()
    net.hebbian_step(x, None)
    after = net.nodes[0].params["weight"]
    np.testing.assert_array_equal(after[2], before[2])
    assert not np.allclose(after[0], before[0])


def test_wta_converges_to_mean_of_won_patches(registry, numpy_ops):
    """With lr = 1 and weighted_mean, a single winner jumps to the mean of the patches it won."""
    spec = conv_net(registry, 1, 2, 2, {"rule": "wta", "lr": 1.0})
    net = Network(spec, (1, 4, 4), 10, numpy_ops, registry)
    x = np.random.default_rng(1).standard_normal((3, 1, 4, 4)).astype(np.float32)
    net.hebbian_step(x, None)
    patches = x.reshape(3, 1, 2, 2, 2, 2).transpose(0, 2, 4, 1, 3, 5).reshape(-1, 1, 2, 2)
    assert_close(net.nodes[0].params["weight"][0], patches.mean(0), what="mean of patches")


@pytest.mark.parametrize("backend", [pytest.param(("numpy", "cpu"), id="numpy-cpu"), *backend_params()])
@pytest.mark.parametrize("ties", ["lowest", "all"])
def test_wta_ties_lowest_or_all_match_a_loop(registry, backend, ties):
    """Two identical kernels tie exactly at every position: the lowest index wins, or both learn (Lagani's code)."""
    spec = conv_net(registry, 3, 2, 1, {"rule": "wta", "lr": 0.5, "options": {"ties": ties}})
    ops = make_ops(registry, *backend)
    net = Network(spec, (1, 3, 3), 10, ops, registry)
    w = np.stack([np.ones((1, 2, 2)), np.ones((1, 2, 2)), -np.ones((1, 2, 2))]).astype(np.float32)
    net.nodes[0].params["weight"] = ops.asarray(w)
    x = np.random.default_rng(0).uniform(0.1, 1.0, (2, 1, 3, 3)).astype(np.float32)  # positive: kernels 0, 1 tie
    patches = [x[n, :, i : i + 2, j : j + 2] for n in range(2) for i in range(2) for j in range(2)]
    winners = [0, 1] if ties == "all" else [0]
    expected = w.astype(np.float64).copy()
    for k in winners:  # weighted_mean of 0/1 coefficients: the mean step over the won positions
        expected[k] += 0.5 * np.mean([p - w[k] for p in patches], axis=0)
    net.hebbian_step(ops.asarray(x), None)
    np.testing.assert_allclose(ops.to_numpy(net.nodes[0].params["weight"]), expected, rtol=1e-5, atol=1e-6)
