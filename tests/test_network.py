"""The layer graph: class scores of a Hebbian classifier, the NaN/overflow guard, strict loading."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import backend_params, make_ops

from hebbcore.errors import DataError, TrainingDiverged
from hebbcore.network import Network
from hebbcore.spec import loads_spec

CLF = """
[data]
source = "synthetic"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "clf"
type = "linear"
out_features = 4
[layers.hebbian]
rule = "teacher"
"""


def paper_scores(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The authors' classifier score ⟨x, w_c/‖w_c‖⟩, one sample and class at a time."""
    out = np.zeros((len(x), len(w)))
    for n in range(len(x)):
        for c in range(len(w)):
            out[n, c] = float(np.dot(x[n], w[c]) / np.linalg.norm(w[c]))
    return out


@pytest.mark.parametrize("backend", [pytest.param(("numpy", "cpu"), id="numpy-cpu"), *backend_params()])
def test_a_hebbian_classifier_predicts_from_unclamped_scores(registry, backend):
    ops = make_ops(registry, *backend)
    net = Network(loads_spec(CLF, registry), (2, 3, 3), 4, ops, registry)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 18)).astype(np.float32)
    net.nodes[1].params["weight"] = ops.asarray(w)
    x = rng.standard_normal((200, 2, 3, 3)).astype(np.float32)
    x[:100] = -np.abs(x[:100]) * np.sign(w.sum(0)).reshape(1, 2, 3, 3)  # push half towards all-negative scores
    ref = paper_scores(x.reshape(200, -1), w)
    negative = (ref < 0).all(1)
    assert negative.sum() >= 20  # rows where relu(cosine) ties every class at 0
    got = net.predict(x)
    np.testing.assert_array_equal(got, ref.argmax(1))
    assert len(set(got[negative])) > 1  # not all class 0


def test_the_torch_module_scores_like_the_network(registry, numpy_ops):
    torch = pytest.importorskip("torch")
    from hebbcore.torch_model import build_module, scores

    net = Network(loads_spec(CLF, registry), (2, 3, 3), 4, numpy_ops, registry)
    x = -np.abs(np.random.default_rng(1).standard_normal((50, 2, 3, 3))).astype(np.float32)
    got = scores(build_module(net), torch.from_numpy(x)).argmax(1).numpy()
    np.testing.assert_array_equal(got, net.predict(x))


def test_overflowing_kernel_norms_stop_training(registry, numpy_ops):
    net = Network(loads_spec(CLF, registry), (2, 3, 3), 4, numpy_ops, registry)
    net.check_finite("start")
    net.nodes[1].params["weight"] = numpy_ops.asarray(np.full((4, 18), 1e19))  # finite, but ‖w‖² is not
    with pytest.raises(TrainingDiverged, match="layer 'clf': the norm of its weights overflowed at step 7"):
        net.check_finite("step 7")


def test_strict_loading_names_the_missing_parameter(registry, numpy_ops):
    net = Network(loads_spec(CLF, registry), (2, 3, 3), 4, numpy_ops, registry)
    with pytest.raises(DataError, match="no array for parameter\\(s\\) clf.weight"):
        net.load_state_dict({}, source="ckpt", strict=True)
    with pytest.raises(DataError, match="array 'x.weight' matches no parameter"):
        net.load_state_dict({"clf.weight": np.zeros((4, 18)), "x.weight": np.zeros(1)}, source="ckpt", strict=True)


LINEAR_HPCA = """
[data]
source = "synthetic"
[[layers]]
name = "c"
type = "conv"
out_channels = 5
kernel_size = 3
response = "linear"
[layers.hebbian]
rule = "hpca"
[[layers]]
name = "r"
type = "conv"
out_channels = 4
kernel_size = 3
train = "random"
response = "linear"
"""


def test_a_hebbian_layer_has_no_untrained_bias(registry, numpy_ops):
    net = Network(loads_spec(LINEAR_HPCA, registry), (2, 7, 7), 4, numpy_ops, registry)
    assert set(net.nodes[0].params) == {"weight"}  # nothing would train a bias
    assert set(net.nodes[1].params) == {"weight", "bias"}  # a random layer keeps torch's initial bias
    x = np.random.default_rng(3).standard_normal((2, 2, 7, 7)).astype(np.float32)
    w = net.nodes[0].params["weight"]
    ref = np.zeros((2, 5, 5, 5))
    for n in range(2):
        for i in range(5):
            for j in range(5):
                ref[n, :, i, j] = (w * x[n, :, i : i + 3, j : j + 3]).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(net.forward(x, upto=1), ref, rtol=1e-5, atol=1e-5)


def test_the_torch_module_of_a_bias_free_layer_matches(registry, numpy_ops):
    torch = pytest.importorskip("torch")
    from hebbcore.torch_model import build_module

    net = Network(loads_spec(LINEAR_HPCA, registry), (2, 7, 7), 4, numpy_ops, registry)
    module = build_module(net)
    assert module.c.bias is None
    x = np.random.default_rng(4).standard_normal((2, 2, 7, 7)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), net.forward(x), rtol=1e-4, atol=1e-5)


BN_NET = """
[data]
source = "synthetic"
[[layers]]
name = "c"
type = "conv"
out_channels = 4
kernel_size = 3
train = "random"
[[layers]]
name = "bn"
type = "batchnorm"
momentum = 0.3
[[layers]]
name = "h"
type = "conv"
out_channels = 3
kernel_size = 2
[layers.hebbian]
rule = "wta"
"""


def test_batchnorm_running_statistics_match_torch(registry, numpy_ops):
    """The Hebbian phase updates a batch-norm's running mean and (unbiased) variance as torch's does in training."""
    torch = pytest.importorskip("torch")
    net = Network(loads_spec(BN_NET, registry), (2, 6, 6), 3, numpy_ops, registry)
    ref = torch.nn.BatchNorm2d(4, momentum=0.3, eps=1e-5).train()
    rng = np.random.default_rng(5)
    for _ in range(3):
        x = (rng.standard_normal((5, 2, 6, 6)) * 2 + 1).astype(np.float32)
        net.hebbian_step(x, None)
        ref(torch.from_numpy(np.asarray(net.forward(x, upto=1))))
    p = net.nodes[1].params
    np.testing.assert_allclose(p["running_mean"], ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p["running_var"], ref.running_var.numpy(), rtol=1e-5, atol=1e-6)


def test_confusion_matrix_rows_are_true_classes():
    from hebbcore.runner import confusion_matrix

    cm = confusion_matrix(np.array([1, 1, 2, 0]), np.array([0, 1, 1, 0]), 3)  # predicted, true
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 0]]  # cm[true, predicted]
