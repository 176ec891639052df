"""The `pad`, `triangle` and average-`pool` layers and the weight `init` options: shapes, spec errors, backends vs
NumPy, the torch module vs the network."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, backend_params, make_ops

from hebbcore.errors import SpecError
from hebbcore.network import Network
from hebbcore.spec import parse_spec

LAYERS = [
    {"name": "bn0", "type": "batchnorm"},
    {"name": "pad1", "type": "pad", "padding": 2},
    {
        "name": "conv1",
        "type": "conv",
        "out_channels": 8,
        "kernel_size": 5,
        "response": "linear",
        "init": "normal",
        "init_scale": 3.0,
        "hebbian": {"rule": "softhebb", "aggregation": "sum", "lr": 0.05, "options": {"temperature": 0.5}},
    },
    {"name": "tri1", "type": "triangle", "power": 0.7},
    {"name": "padp", "type": "pad", "padding": 1},
    {"name": "pool1", "type": "pool", "kernel_size": 4, "stride": 2},
    {"name": "pool2", "type": "pool", "kernel_size": 2, "mode": "avg"},
    {"name": "flat", "type": "flatten"},
    {"name": "clf", "type": "linear", "out_features": 4, "hebbian": {"rule": "teacher"}},
]


def make_net(registry, ops, layers=LAYERS, shape=(3, 8, 8)):
    return Network(parse_spec({"seed": 2, "layers": layers}, registry), shape, 4, ops, registry)


def test_shapes_and_values(registry, numpy_ops):
    net = make_net(registry, numpy_ops)
    shapes = {n.name: n.out_shape for n in net.nodes}
    assert shapes["pad1"] == (3, 12, 12) and shapes["conv1"] == (8, 8, 8)  # "same" convolution
    assert shapes["padp"] == (8, 10, 10) and shapes["pool1"] == (8, 4, 4)
    x = np.random.default_rng(0).normal(size=(3, 8, 5, 5)).astype(np.float32)
    tri = next(n for n in net.nodes if n.name == "tri1")
    pad = next(n for n in net.nodes if n.name == "pad1")
    np.testing.assert_allclose(
        net.layer_forward(tri, x, False), np.maximum(x - x.mean(axis=1, keepdims=True), 0) ** 0.7, rtol=1e-5, atol=1e-6
    )
    padded = net.layer_forward(pad, x, False)
    assert padded.shape == (3, 8, 9, 9) and not padded[:, :, :2].any() and not padded[:, :, :, -2:].any()
    np.testing.assert_array_equal(padded[:, :, 2:-2, 2:-2], x)
    assert shapes["pool2"] == (8, 2, 2)
    avg = net.layer_forward(next(n for n in net.nodes if n.name == "pool2"), x[:, :, :4, :4], False)
    np.testing.assert_allclose(avg, x[:, :, :4, :4].reshape(3, 8, 2, 2, 2, 2).mean(axis=(3, 5)), rtol=1e-5, atol=1e-6)


def test_weight_init_options(registry, numpy_ops):
    conv = next(n for n in make_net(registry, numpy_ops).nodes if n.name == "conv1")
    w, fan_in = conv.params["weight"], 3 * 5 * 5
    assert abs(w.std() * np.sqrt(fan_in) / 3.0 - 1) < 0.1 and abs(w.mean()) < 0.05  # N(0, (3/sqrt(75))²)
    assert "bias" not in conv.params  # a Hebbian linear-response layer has no bias (nothing would train it)
    layers = [
        {"name": "c", "type": "conv", "out_channels": 8, "kernel_size": 5, "init_scale": 2.0},
        {"name": "f", "type": "flatten"},
        {"name": "clf", "type": "linear", "out_features": 4},
    ]
    c = make_net(registry, numpy_ops, layers).nodes[0]
    bound = 1 / np.sqrt(fan_in)
    assert 1.8 * bound < abs(c.params["weight"]).max() <= 2 * bound  # uniform in ±2/sqrt(fan_in)
    bias = c.params["bias"]
    assert abs(bias).max() <= bound and bias.min() < -bound / 4 and bias.max() > bound / 4  # torch's ±1/sqrt(fan_in)
    bad_init = r"\(c\)\.init: expected one of 'uniform', 'normal', got string 'norml' \(did you mean 'normal'"
    with pytest.raises(SpecError, match=bad_init):
        parse_spec({"layers": [dict(layers[0], init="norml")]}, registry)
    with pytest.raises(SpecError, match=r"init_scale: expected > 0, got -1"):
        parse_spec({"layers": [dict(layers[0], init_scale=-1.0)]}, registry)
    with pytest.raises(SpecError, match=r"\(t\)\.power: expected > 0, got 0"):
        parse_spec({"layers": [{"name": "t", "type": "triangle", "power": 0.0}]}, registry)


def test_spec_errors(registry, numpy_ops):
    with pytest.raises(SpecError, match=r"\(p\)\.mode: expected one of 'max', 'avg', got string 'mean'"):
        parse_spec({"layers": [{"name": "p", "type": "pool", "kernel_size": 2, "mode": "mean"}]}, registry)
    with pytest.raises(SpecError, match=r"layers\[0\] \(p\)\.padding: missing"):
        parse_spec({"layers": [{"name": "p", "type": "pad"}]}, registry)
    with pytest.raises(SpecError, match=r"padding: expected >= 1, got 0"):
        parse_spec({"layers": [{"name": "p", "type": "pad", "padding": 0}]}, registry)
    with pytest.raises(SpecError, match=r"a pad layer needs \(C, H, W\) input"):
        make_net(
            registry,
            numpy_ops,
            [
                {"name": "f", "type": "flatten"},
                {"name": "p", "type": "pad", "padding": 1},
                {"name": "clf", "type": "linear", "out_features": 4},
            ],
        )


@pytest.mark.parametrize("backend", backend_params())
def test_backends_match_numpy(backend, registry, numpy_ops):
    """Forward pass and two Hebbian steps through pad and triangle layers, against the NumPy reference."""
    ops = make_ops(registry, *backend)
    ref, other = make_net(registry, numpy_ops), make_net(registry, ops)
    rng = np.random.default_rng(1)
    for _ in range(2):
        x = rng.normal(size=(6, 3, 8, 8)).astype(np.float32)
        y = rng.integers(0, 4, size=6)
        ref.hebbian_step(numpy_ops.asarray(x), numpy_ops.asarray(y, dtype="int64"))
        other.hebbian_step(ops.asarray(x), ops.asarray(y, dtype="int64"))
    for k, v in ref.state_dict().items():
        assert_close(other.state_dict()[k], v, what=k)
    assert_close(ops.to_numpy(other.forward(ops.asarray(x))), numpy_ops.to_numpy(ref.forward(x)), what="forward")


def test_torch_module_matches_network_forward(registry, numpy_ops):
    torch = pytest.importorskip("torch", reason="the SGD phase needs torch")
    from hebbcore.torch_model import build_module

    layers = [dict(l) for l in LAYERS[:-1]] + [{"name": "clf", "type": "linear", "out_features": 4, "train": "sgd"}]
    net = make_net(registry, numpy_ops, layers)
    x = np.random.default_rng(0).normal(size=(5, 3, 8, 8)).astype(np.float32)
    net.hebbian_step(numpy_ops.asarray(x), None)  # batch-norm statistics that are not the defaults
    module = build_module(net).eval()
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, net.forward(x), rtol=1e-4, atol=1e-5)


def test_linear_response_hebbian_layer_under_an_sgd_top(registry, tmp_path):
    """A Hebbian layer that passes ``w·x + b`` up (e.g. Hebbian PCA) below SGD layers: both phases run."""
    pytest.importorskip("torch", reason="the SGD phase needs torch")
    from hebbcore.runner import run

    layers = [dict(l) for l in LAYERS[:-1]] + [{"name": "clf", "type": "linear", "out_features": 10, "train": "sgd"}]
    spec = parse_spec(
        {
            "seed": 0,
            "layers": layers,
            "hebbian": {"epochs": 1, "batch_size": 32},
            "sgd": {"epochs": 1, "batch_size": 32, "lr": 0.05},
            "data": {"source": "synthetic", "options": {"n_train": 200, "n_val": 50, "n_test": 50, "size": 8}},
        },
        registry,
    )
    result = run(spec, registry, "numpy", tmp_path, progress=False)
    assert [e["phase"] for e in result.metrics["epochs"]] == ["hebbian", "sgd"]
    assert result.metrics["final"]["test_acc"] is not None


def test_relu_after_a_clamped_layer_is_the_identity(registry, numpy_ops):
    """A relu whose input a cosine layer (``relu(cos)``) or another relu already clamped, directly or through a
    pool, is skipped; one after a linear-response layer is not; the step and the forward pass are the same as
    with every relu applied."""
    layers = [
        {"name": "conv1", "type": "conv", "out_channels": 6, "kernel_size": 3, "hebbian": {"rule": "wta"}},
        {"name": "relu1", "type": "relu"},
        {"name": "relu1b", "type": "relu"},
        {"name": "pool1", "type": "pool", "kernel_size": 2, "stride": 1},
        {"name": "relu1c", "type": "relu"},
        {"name": "conv2", "type": "conv", "out_channels": 5, "kernel_size": 3, "train": "sgd"},
        {"name": "relu2", "type": "relu"},
        {"name": "flat", "type": "flatten"},
        {"name": "fc", "type": "linear", "out_features": 4, "hebbian": {"rule": "teacher"}},
    ]
    net, ref = make_net(registry, numpy_ops, layers), make_net(registry, numpy_ops, layers)
    assert {n.name: n.layer.identity for n in net.nodes if n.spec.type == "relu"} == {
        "relu1": True,
        "relu1b": True,
        "relu1c": True,
        "relu2": False,
    }
    for n in ref.nodes:
        if n.spec.type == "relu":
            n.layer.identity = False
    rng = np.random.default_rng(1)
    x = rng.normal(size=(5, 3, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 4, size=5)
    assert net.nodes[5].params["weight"].min() < 0  # the SGD conv's output has negative values for relu2 to clamp
    np.testing.assert_array_equal(net.forward(x), ref.forward(x))
    net.hebbian_step(x, labels)
    ref.hebbian_step(x, labels)
    for a, b in zip(net.nodes, ref.nodes, strict=True):
        for k in a.params:
            np.testing.assert_array_equal(a.params[k], b.params[k])
    relu2 = net.nodes[6]
    h = net.forward(x, upto=6)
    assert h.min() < 0 and net.layer_forward(relu2, h, False).min() == 0


def pad_layers(mode):
    return [
        {"name": "p", "type": "pad", "padding": 2, **({"mode": mode} if mode else {})},
        {"name": "c", "type": "conv", "out_channels": 2, "kernel_size": 3, "train": "random"},
    ]


@pytest.mark.parametrize("backend", [pytest.param(("numpy", "cpu"), id="numpy-cpu"), *backend_params()])
@pytest.mark.parametrize("mode", ["", "zeros", "reflect", "replicate"])
def test_pad_modes_match_torch_pad(registry, backend, mode):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    ops = make_ops(registry, *backend)
    net = make_net(registry, ops, pad_layers(mode), shape=(3, 5, 6))
    assert net.nodes[0].spec.options.mode == (mode or "zeros")  # the resolved spec names the default
    x = np.random.default_rng(1).normal(size=(2, 3, 5, 6)).astype(np.float32)
    ref = F.pad(torch.from_numpy(x), (2, 2, 2, 2), mode={"": "constant", "zeros": "constant"}.get(mode, mode))
    assert_close(ops.to_numpy(net.forward(ops.asarray(x), upto=1)), ref.numpy(), what=f"pad {mode}")


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_pad_modes_in_the_torch_module(registry, numpy_ops, mode):
    torch = pytest.importorskip("torch")
    from hebbcore.torch_model import build_module

    net = make_net(registry, numpy_ops, pad_layers(mode), shape=(3, 5, 6))
    x = np.random.default_rng(2).normal(size=(2, 3, 5, 6)).astype(np.float32)
    got = build_module(net)(torch.from_numpy(x)).detach().numpy()
    assert_close(got, net.forward(x), what=mode)


def test_pad_and_pool_modes_are_checked(registry, numpy_ops):
    with pytest.raises(
        SpecError,
        match=r"\(p\)\.mode: expected one of 'zeros', 'reflect', 'replicate', got string 'max'",
    ):
        parse_spec({"layers": pad_layers("max")}, registry)
    with pytest.raises(SpecError, match=r"\(q\)\.mode: expected one of 'max', 'avg', got string 'reflect'"):
        parse_spec(
            {
                "layers": [
                    {"name": "q", "type": "pool", "kernel_size": 2, "mode": "reflect"},
                    {"name": "c", "type": "conv", "out_channels": 2, "kernel_size": 1},
                ]
            },
            registry,
        )
    with pytest.raises(SpecError, match="reflect padding 2 needs an input larger than it"):
        make_net(registry, numpy_ops, pad_layers("reflect"), shape=(3, 2, 6))


# The weight layers' edges: each test below is one that a surviving mutant of `tests/mutation/core.toml` showed
# missing (see CONTRIBUTING.md, Mutation testing).


def _conv(**options):
    return {"name": "c", "type": "conv", "out_channels": 4, "kernel_size": 3, **options}


def test_a_frozen_or_sgd_weight_layer_answers_linearly_unless_it_says_cosine(registry, numpy_ops):
    """``response = "auto"`` is the clamped cosine only on a Hebbian layer; frozen, random and SGD layers answer
    ``w·x + b``."""
    x = np.random.default_rng(1).normal(size=(2, 3, 6, 6)).astype(np.float32)
    for train in ("frozen", "random", "sgd", "hebbian"):
        layers = [
            _conv(train=train),
            {"name": "f", "type": "flatten"},
            {"name": "clf", "type": "linear", "out_features": 4},
        ]
        if train == "hebbian":
            layers[0]["hebbian"] = {"rule": "wta"}
        node = make_net(registry, numpy_ops, layers, shape=(3, 6, 6)).nodes[0]
        w = node.params["weight"]
        dot = np.einsum("kcij,ncij->nk", w, x[:, :, :3, :3])  # the first output position
        out = node.layer.forward(numpy_ops, node.params, x, _inference())[:, :, 0, 0]
        if train == "hebbian":
            cos = dot / (
                np.linalg.norm(w.reshape(4, -1), axis=1)
                * np.linalg.norm(x[:, :, :3, :3].reshape(2, -1), axis=1)[:, None]
            )
            assert node.layer.cosine and "bias" not in node.params
            np.testing.assert_allclose(out, np.maximum(cos, 0), rtol=1e-4, atol=1e-6)
        else:
            assert not node.layer.cosine and node.params["bias"].shape == (4,), train
            np.testing.assert_allclose(out, dot + node.params["bias"], rtol=1e-4, atol=1e-5)


def _inference():
    from hebbcore.layers import ForwardContext

    return ForwardContext(batch_stats=False)


def test_a_relu_above_a_layer_with_negative_outputs_clamps(registry, numpy_ops):
    """Only a layer that says its outputs are >= 0 lets the ReLU above it be the identity; batch norm does not."""
    layers = [{"name": "bn", "type": "batchnorm"}, {"name": "r", "type": "relu"}, {"name": "f", "type": "flatten"},
              {"name": "clf", "type": "linear", "out_features": 4, "train": "sgd"}]  # fmt: skip
    net = make_net(registry, numpy_ops, layers, shape=(3, 4, 4))
    bn, relu = net.nodes[0], net.nodes[1]
    assert not bn.layer.nonnegative and not relu.layer.identity
    x = np.random.default_rng(2).normal(size=(2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(net.layer_forward(relu, x, False), np.maximum(x, 0))


def test_normal_init_gives_a_zero_bias_per_kernel(registry, numpy_ops):
    layers = [{"name": "f", "type": "flatten"},
              {"name": "clf", "type": "linear", "out_features": 5, "train": "sgd", "init": "normal"}]  # fmt: skip
    clf = make_net(registry, numpy_ops, layers, shape=(2, 3, 3)).nodes[1]
    assert clf.params["weight"].shape == (5, 18)
    np.testing.assert_array_equal(clf.params["bias"], np.zeros(5))


def test_linear_default_init_is_torchs(registry, numpy_ops):
    """A linear layer's default weights are uniform in ``±1/sqrt(fan_in)``, as ``torch.nn.Linear``'s."""
    layers = [{"name": "f", "type": "flatten"}, {"name": "clf", "type": "linear", "out_features": 64, "train": "sgd"}]
    w = make_net(registry, numpy_ops, layers, shape=(4, 5, 5)).nodes[1].params["weight"]
    bound = 1 / np.sqrt(100)
    assert 0.95 * bound < abs(w).max() <= bound


@pytest.mark.parametrize("backend", backend_params())
def test_a_weight_layer_with_a_bias_matches_numpy(backend, registry, numpy_ops):
    """``w·x + b`` of a conv and a linear layer with a bias (SGD layers) on every backend."""
    ops = make_ops(registry, *backend)
    layers = [_conv(train="sgd", stride=2), {"name": "f", "type": "flatten"},
              {"name": "clf", "type": "linear", "out_features": 3, "train": "sgd"}]  # fmt: skip
    ref, other = make_net(registry, numpy_ops, layers, (3, 7, 8)), make_net(registry, ops, layers, (3, 7, 8))
    x = np.random.default_rng(3).normal(size=(2, 3, 7, 8)).astype(np.float32)
    assert_close(ops.to_numpy(other.forward(ops.asarray(x))), ref.forward(x), what=str(backend))


def test_conv_and_linear_input_shapes(registry, numpy_ops):
    """Output shapes are integers that the forward pass gives, and inputs of the wrong rank or smaller than the
    kernel on either side are refused in one line."""
    layers = [_conv(stride=2), {"name": "f", "type": "flatten"}, {"name": "clf", "type": "linear", "out_features": 3}]
    net = make_net(registry, numpy_ops, layers, shape=(3, 8, 9))
    shape = net.nodes[0].out_shape
    assert shape == (4, 3, 4) and all(type(d) is int for d in shape)
    assert net.layer_forward(net.nodes[0], np.zeros((1, 3, 8, 9), np.float32), False).shape[1:] == shape
    for bad in ((3, 2, 9), (3, 9, 2)):  # the kernel (3) is larger than one side
        with pytest.raises(SpecError, match="larger than"):
            make_net(registry, numpy_ops, layers, shape=bad)
    for bad in ((3, 8, 9, 1), (8, 9)):
        with pytest.raises(SpecError, match=r"\(C, H, W\)"):
            make_net(registry, numpy_ops, layers, shape=bad)
    with pytest.raises(SpecError, match="flat"):  # a linear layer straight on a (C, H, W) output
        make_net(registry, numpy_ops, [_conv(), {"name": "clf", "type": "linear", "out_features": 3}], shape=(3, 8, 8))


def test_weight_option_values_are_checked(registry):
    for options, message in (
        ({"stride": -1}, r"stride: expected >= 1 \(0, the default, means 1\), got -1"),
        ({"init_scale": 0.0}, r"init_scale: expected > 0, got 0"),
    ):
        with pytest.raises(SpecError, match=message):
            parse_spec({"layers": [_conv(**options)]}, registry)


def test_layer_options_and_contexts_are_frozen(registry):
    """Settings are immutable once loaded: every registered layer type's options, and a forward context."""
    import dataclasses

    from hebbcore.layers import Layer

    for name in registry.names("layer"):
        cls = registry.get("layer", name)
        assert dataclasses.is_dataclass(cls.Options) and cls.Options.__dataclass_params__.frozen, name
    with pytest.raises(dataclasses.FrozenInstanceError):
        _inference().batch_stats = True  # type: ignore[misc]
    # a third-party layer that declares nothing is neither cacheable as a fixed feature nor a running-statistics one
    assert Layer.fixed is False and Layer.running_stats is False
