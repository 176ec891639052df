"""The ridge rule: after an epoch at lr = 1 the classifier is the closed-form ridge solution (float64 numpy) over
the epoch's features, on every backend; its refusals; a second epoch leaves the solution unchanged."""

from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import assert_close, backend_params, make_ops

from hebbcore.errors import SpecError
from hebbcore.network import Network
from hebbcore.spec import parse_spec

D, K = 24, 5


def ridge_spec(l2=0.01, out=K, layers_below=(), lr=1.0):
    fc = {"name": "fc", "type": "linear", "out_features": out, "response": "linear",
          "hebbian": {"rule": "ridge", "lr": lr, "options": {"l2": l2}}}  # fmt: skip
    return {"phases": ["hebbian"], "layers": [*layers_below, fc]}


def reference(x, labels, l2):
    """argmin_W Σ‖W x_n − t_n‖² + λ‖W‖², λ = l2·tr(XᵀX/n)/D, in float64."""
    x = x.astype(np.float64)
    t = np.eye(K)[labels]
    gram = x.T @ x / len(x)
    lam = l2 * np.trace(gram) / x.shape[1]
    return np.linalg.solve(gram + lam * np.eye(x.shape[1]), x.T @ t / len(x)).T


@pytest.mark.parametrize("backend", [pytest.param(("numpy", "cpu"), id="numpy-cpu"), *backend_params()])
def test_one_epoch_gives_the_closed_form_ridge_solution(registry, backend):
    ops = make_ops(registry, *backend)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, D)).astype(np.float32) + 0.5
    labels = rng.integers(0, K, size=90)
    net = Network(parse_spec(ridge_spec(l2=0.01), registry), (D,), K, ops, registry)
    for i in range(0, 90, 32):  # batches of 32, 32 and 26: the statistics add up over the epoch
        net.hebbian_step(ops.asarray(x[i : i + 32]), ops.asarray(labels[i : i + 32], dtype="int64"))
    want = reference(x, labels, 0.01)
    assert_close(ops.to_numpy(net.nodes[0].params["weight"]), want, rtol=2e-3, atol=2e-4, what="ridge")
    for i in range(0, 90, 45):  # a second epoch over the same images: the same solution
        net.hebbian_step(ops.asarray(x[i : i + 45]), ops.asarray(labels[i : i + 45], dtype="int64"))
    assert_close(ops.to_numpy(net.nodes[0].params["weight"]), want, rtol=2e-3, atol=2e-4, what="2nd epoch")


def test_a_smaller_rate_moves_part_way(registry, numpy_ops):
    rng = np.random.default_rng(1)
    x, labels = rng.normal(size=(40, D)).astype(np.float32), rng.integers(0, K, size=40)
    net = Network(parse_spec(ridge_spec(lr=0.25), registry), (D,), K, numpy_ops, registry)
    w0 = net.nodes[0].params["weight"].copy()
    net.hebbian_step(x, labels)
    assert_close(net.nodes[0].params["weight"], w0 + 0.25 * (reference(x, labels, 0.01) - w0), rtol=2e-3, atol=2e-4)


def test_ridge_separates_what_a_linear_map_separates(registry, numpy_ops):
    """Targets that are a linear function of the features: the readout is right on unseen samples."""
    rng = np.random.default_rng(2)
    proto = rng.normal(size=(K, D))
    labels = rng.integers(0, K, size=400)
    x = (proto[labels] + 0.3 * rng.normal(size=(400, D))).astype(np.float32)
    net = Network(parse_spec(ridge_spec(l2=1e-3), registry), (D,), K, numpy_ops, registry)
    net.hebbian_step(x[:300], labels[:300])
    assert (net.predict(x[300:]) == labels[300:]).mean() > 0.95


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (ridge_spec(l2=0.0), "options.l2: expected > 0, got 0.0"),
        (ridge_spec(out=K + 1), "rule: 'ridge' needs one output per class (5), the layer has 6"),
    ],
)
def test_refusals(registry, numpy_ops, table, needle):
    with pytest.raises(SpecError, match=re.escape(f"(fc).hebbian.{needle}")):
        Network(parse_spec(table, registry), (D,), K, numpy_ops, registry)


def test_a_conv_layer_or_too_many_features_is_refused_at_load(registry):
    spec = {"data": {"source": "synthetic", "options": {"n_train": 20, "n_val": 0, "n_test": 0, "size": 8}},
            "layers": [{"name": "c", "type": "conv", "out_channels": 10, "kernel_size": 3,
                        "hebbian": {"rule": "ridge"}}]}  # fmt: skip
    with pytest.raises(SpecError, match=r"'ridge' is a dense classifier's rule, got a conv layer"):
        parse_spec(spec, registry, against_data=True)
    spec["data"]["options"]["size"] = 96  # 3·96·96 = 27,648 inputs
    spec["layers"] = [{"name": "f", "type": "flatten"}, ridge_spec(out=10)["layers"][0]]
    with pytest.raises(SpecError, match=r"D = 27648 is over 8192 \(pool the features below\)"):
        parse_spec(spec, registry, against_data=True)


def test_a_cosine_response_or_another_aggregation_is_refused(registry, numpy_ops):
    cosine = ridge_spec()
    del cosine["layers"][0]["response"]  # "auto": a Hebbian layer answers its cosine, not the readout w·x
    with pytest.raises(SpecError, match=re.escape("(fc).hebbian.rule: 'ridge' fits a linear readout w·x")):
        Network(parse_spec(cosine, registry), (D,), K, numpy_ops, registry)
    mean = ridge_spec()
    mean["layers"][0]["hebbian"]["aggregation"] = "mean"
    with pytest.raises(SpecError, match=re.escape("rule 'ridge' means aggregation = 'sum' only, got 'mean'")):
        parse_spec(mean, registry)
