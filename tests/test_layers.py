"""Layer types as plugins: a third party's layer trains in a spec like a built-in; every type keeps the
interface; each built-in's torch module computes its forward pass."""

from __future__ import annotations

import dataclasses
import inspect
import sys

import numpy as np
import pytest
from conftest import REPO

from hebbcore.errors import SpecError
from hebbcore.layers import ForwardContext, Layer, WeightLayer
from hebbcore.plugin_manager import default_registry
from hebbcore.runner import run
from hebbcore.spec import loads_spec, parse_spec

sys.path.insert(0, str(REPO / "tests" / "example_plugin"))
import unit_norm

SPEC = """
name = "layer_plugin"
seed = 3
[data]
source = "synthetic"
[data.options]
n_train = 240
n_val = 40
n_test = 40
size = 10
n_classes = 4
[hebbian]
epochs = 1
batch_size = 40
[sgd]
epochs = 2
lr = 0.05
[[layers]]
name = "conv1"
type = "conv"
out_channels = 6
kernel_size = 3
[layers.hebbian]
rule = "wta"
[[layers]]
name = "norm"
type = "unit_norm"
eps = 1e-4
[[layers]]
name = "conv2"
type = "conv"
out_channels = 5
kernel_size = 3
[layers.hebbian]
rule = "wta"
[[layers]]
name = "flat"
type = "flatten"
[[layers]]
name = "fc"
type = "linear"
out_features = 4
"""


@pytest.fixture(scope="module")
def plugin_registry():
    return default_registry(plugins=[unit_norm])


def reference_unit_norm(x, eps):
    return x / np.sqrt((x.astype(np.float64) ** 2).sum(axis=1, keepdims=True) + eps)


def test_a_plugin_layer_trains_in_a_spec(tmp_path, plugin_registry):
    """Registered through the hook: the spec loads, the Hebbian layer above it learns from its output, SGD
    trains the classifier through its torch module, and the run's weights reproduce its forward pass."""
    pytest.importorskip("torch", reason="the SGD phase needs torch")
    from hebbcore.network import Network

    spec = loads_spec(SPEC, plugin_registry)
    assert spec.layers[1].options == unit_norm.UnitNormOptions(eps=1e-4)
    result = run(spec, plugin_registry, out_dir=tmp_path, progress=False)
    phases = [e["phase"] for e in result.metrics["epochs"]]
    assert phases == ["hebbian", "sgd", "sgd"]
    net = Network(spec, (3, 10, 10), 4, plugin_registry.get("backend", "numpy")(), plugin_registry)
    before = net.state_dict()
    net.load_state_dict(dict(np.load(tmp_path / "weights.npz")), strict=True)
    assert not np.allclose(before["conv2.weight"], net.state_dict()["conv2.weight"])  # conv2 learned on top
    x = np.random.default_rng(0).normal(size=(7, 3, 10, 10)).astype(np.float32)
    h = net.forward(x, upto=1)
    np.testing.assert_allclose(net.forward(x, upto=2), reference_unit_norm(h, 1e-4), rtol=1e-5, atol=1e-6)


def test_a_plugin_layer_torch_module_matches(plugin_registry):
    torch = pytest.importorskip("torch")
    from hebbcore.network import Network
    from hebbcore.torch_model import build_module

    spec = loads_spec(SPEC, plugin_registry)
    net = Network(spec, (3, 10, 10), 4, plugin_registry.get("backend", "numpy")(), plugin_registry)
    x = np.random.default_rng(1).normal(size=(5, 3, 10, 10)).astype(np.float32)
    got = build_module(net).eval()(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, net.forward(x), rtol=1e-4, atol=1e-5)


def test_a_plugin_layer_options_are_checked_like_a_builtins(plugin_registry):
    table = {"layers": [{"name": "n", "type": "unit_norm", "epss": 1.0}, {"name": "c", "type": "conv",
             "out_channels": 2, "kernel_size": 1}]}  # fmt: skip
    with pytest.raises(SpecError, match=r"layers\[0\] \(n\)\.epss: unknown key \(did you mean 'eps'\?\)"):
        parse_spec(table, plugin_registry)
    table["layers"][0] = {"name": "n", "type": "unit_norm", "eps": 0.0}
    with pytest.raises(SpecError, match=r"layers\[0\] \(n\)\.eps: expected > 0, got 0.0"):
        parse_spec(table, plugin_registry)
    with pytest.raises(SpecError, match=r"layers\[0\]\.type: .*got 'unit_norm'"):
        parse_spec(table, default_registry())  # not registered: unknown


def test_every_layer_type_keeps_the_interface(plugin_registry):
    """Each registered type is a Layer with an Options dataclass, a name, and the base signatures."""
    base = {name: inspect.signature(getattr(Layer, name)) for name in ("forward", "init_params", "infer_shape")}
    for name, cls in plugin_registry.tables["layer"].items():
        assert cls.name == name and issubclass(cls, Layer)
        assert dataclasses.is_dataclass(cls.Options)
        assert set(cls.required) <= {f.name for f in dataclasses.fields(cls.Options)}, name
        assert cls.trainable == issubclass(cls, WeightLayer), name
        for method, sig in base.items():
            assert list(inspect.signature(getattr(cls, method)).parameters) == list(sig.parameters), (name, method)


BUILTIN_CASES = [
    ({"type": "conv", "out_channels": 4, "kernel_size": 3, "stride": 2, "train": "sgd"}, (3, 9, 9)),
    ({"type": "conv", "out_channels": 4, "kernel_size": 3, "hebbian": {"rule": "wta"}}, (3, 9, 9)),
    ({"type": "linear", "out_features": 5, "train": "random"}, (12,)),
    ({"type": "pool", "kernel_size": 3, "stride": 2, "mode": "avg"}, (2, 9, 9)),
    ({"type": "pool", "kernel_size": 2}, (2, 9, 9)),
    ({"type": "batchnorm"}, (3, 5, 5)),
    ({"type": "batchnorm", "eps": 0.01}, (6,)),
    ({"type": "relu"}, (2, 4, 4)),
    ({"type": "relu", "power": 4.5}, (6,)),
    ({"type": "triangle", "power": 2.0}, (3, 4, 4)),
    ({"type": "pad", "padding": 2, "mode": "reflect"}, (2, 5, 5)),
    ({"type": "flatten"}, (2, 3, 3)),
    ({"type": "dropout", "p": 0.3}, (7,)),
]


def case_id(value):
    return value["type"] if isinstance(value, dict) else "x".join(map(str, value))


@pytest.mark.parametrize(("table", "shape"), BUILTIN_CASES, ids=case_id)
def test_builtin_torch_modules_compute_the_forward_pass(registry, table, shape):
    """The module ``build_module`` makes of each built-in (its parameters loaded) equals the Ops forward."""
    torch = pytest.importorskip("torch")
    from hebbcore.network import Network
    from hebbcore.torch_model import build_module

    tail = [{"name": "f", "type": "flatten"}, {"name": "c", "type": "linear", "out_features": 2}]
    spec = parse_spec({"seed": 2, "layers": [dict(table, name="l"), *tail]}, registry)
    net = Network(spec, shape, 2, registry.get("backend", "numpy")(), registry)
    rng = np.random.default_rng(4)
    if table["type"] == "batchnorm":  # parameters and statistics that are not the identity's
        for k, v in net.nodes[0].params.items():
            net.nodes[0].params[k] = rng.uniform(0.5, 2.0, size=v.shape).astype(v.dtype)
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    got = build_module(net).eval()[0](torch.from_numpy(x)).detach().numpy()
    want = net.layer_forward(net.nodes[0], x, batch_stats=False)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert want.shape == (4, *net.nodes[0].out_shape)  # the inferred shape is the one the forward pass gives


def test_batch_statistics_match_torch_batchnorm(registry):
    """The Hebbian phase's batch norm: normalised by the batch, running statistics as torch's (unbiased var)."""
    torch = pytest.importorskip("torch")
    bn = {"name": "bn", "type": "batchnorm", "momentum": 0.3}
    spec = parse_spec({"layers": [bn, {"name": "c", "type": "conv", "out_channels": 2, "kernel_size": 1}]}, registry)
    from hebbcore.network import Network

    net = Network(spec, (3, 4, 4), 2, registry.get("backend", "numpy")(), registry)
    x = np.random.default_rng(5).normal(2.0, 3.0, size=(6, 3, 4, 4)).astype(np.float32)
    node = net.nodes[0]
    got = node.layer.forward(net.ops, node.params, x, ForwardContext(batch_stats=True))
    ref = torch.nn.BatchNorm2d(3, momentum=0.3).train()
    want = ref(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(node.params["running_mean"], ref.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(node.params["running_var"], ref.running_var.numpy(), rtol=1e-5, atol=1e-6)


def test_a_plugin_layer_with_odd_options_gets_one_line_errors(registry):
    """A required option that is not a number is checked by type only; an option named like a layer table's
    own key (name, type, train, hebbian) is refused as the plugin's mistake."""
    from dataclasses import dataclass

    from hebbcore import hookimpl

    @dataclass(frozen=True)
    class KindOptions:
        kind: str = ""

    class Kinded(Layer):
        name = "kinded"
        Options = KindOptions
        required = ("kind",)

    @dataclass(frozen=True)
    class ClashOptions:
        name: str = ""

    class Clash(Layer):
        name = "clash"
        Options = ClashOptions

    class Plugin:
        @hookimpl
        def hebbcore_register_layers(self):
            return [Kinded, Clash]

    reg = default_registry(plugins=[Plugin()])
    conv = {"name": "c", "type": "conv", "out_channels": 2, "kernel_size": 1}
    spec = parse_spec({"layers": [{"name": "k", "type": "kinded", "kind": "a"}, conv]}, reg)
    assert spec.layers[0].options == KindOptions("a")
    with pytest.raises(SpecError, match=r"layers\[0\] \(k\)\.kind: missing"):
        parse_spec({"layers": [{"name": "k", "type": "kinded"}, conv]}, reg)
    with pytest.raises(SpecError, match=r"layer type 'clash' declares option\(s\) \['name'\]"):
        parse_spec({"layers": [{"name": "x", "type": "clash"}, conv]}, reg)
