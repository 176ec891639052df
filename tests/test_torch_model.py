"""The torch modules of a network (hebbcore.torch_model): the Hebbian modules against a loop reference, and the
layer hook that lets a plugin weight layer bring its own."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the torch modules need torch")

from hebbcore.errors import SpecError  # noqa: E402
from hebbcore.layers import COS_EPS  # noqa: E402
from hebbcore.network import Network  # noqa: E402
from hebbcore.spec import parse_spec  # noqa: E402
from hebbcore.torch_model import HebbianConv2d, build_module  # noqa: E402


def test_hebbian_conv_with_a_rectangular_kernel_answers_the_clamped_cosine():
    m = HebbianConv2d(2, 3, (3, 2), stride=2)
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 2, 7, 6)).astype(np.float32))
    out = m(x).detach().numpy()
    w, xs = m.weight.detach().numpy(), x.numpy()
    assert out.shape == (2, 3, 3, 3)
    for n in range(2):
        for i in range(3):
            for j in range(3):
                patch = xs[n, :, 2 * i : 2 * i + 3, 2 * j : 2 * j + 2].ravel()
                for k in range(3):
                    wk = w[k].ravel()
                    cos = wk @ patch / (np.linalg.norm(wk) * np.linalg.norm(patch) + COS_EPS)
                    assert out[n, k, i, j] == pytest.approx(max(cos, 0.0), abs=1e-5)


def test_a_weight_layer_can_bring_its_own_cosine_module(registry):
    """``WeightLayer.cosine_torch_module``: None builds the default Hebbian module; a layer's own is used as is."""
    table = {"layers": [{"name": "c", "type": "conv", "out_channels": 4, "kernel_size": 3, "hebbian": {"rule": "wta"}},
                        {"name": "f", "type": "flatten"},
                        {"name": "clf", "type": "linear", "out_features": 3, "train": "sgd"}]}  # fmt: skip
    spec = parse_spec(table, registry)
    net = Network(spec, (2, 6, 6), 3, registry.get("backend", "numpy")(), registry)
    default = build_module(net)
    assert isinstance(default.c, HebbianConv2d) and tuple(default.c.weight.shape) == (4, 2, 3, 3)

    class Own(HebbianConv2d):
        pass

    layer = net.nodes[0].layer
    layer.cosine_torch_module = lambda: Own(2, 4, 3)  # type: ignore[method-assign]
    module = build_module(net)
    assert type(module.c) is Own and module.c.rule is not None  # the rule is attached to the layer's own module
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 2, 6, 6)).astype(np.float32))
    torch.testing.assert_close(module.c(x), default.c(x))  # the same weights, loaded by name


def test_a_cosine_module_that_cannot_hold_the_layers_weights_is_refused(registry):
    table = {"layers": [{"name": "c", "type": "conv", "out_channels": 4, "kernel_size": 3, "hebbian": {"rule": "wta"}},
                        {"name": "f", "type": "flatten"},
                        {"name": "clf", "type": "linear", "out_features": 3, "train": "sgd"}]}  # fmt: skip
    net = Network(parse_spec(table, registry), (2, 6, 6), 3, registry.get("backend", "numpy")(), registry)
    net.nodes[0].layer.cosine_torch_module = lambda: torch.nn.Conv2d(2, 4, 3)  # type: ignore[method-assign]
    with pytest.raises(SpecError, match=r"layers \(c\): cosine_torch_module\(\) gave a Conv2d with parameters"):
        build_module(net)


@pytest.mark.parametrize(
    "lr, needle",
    [
        (-1, "lr: expected > 0, got -1.0"),
        (0, "lr: expected > 0, got 0.0"),
        ("0.1", "lr: expected number, got string '0.1'"),
    ],
)
def test_use_rule_checks_the_learning_rate_as_a_spec_does(lr, needle):
    with pytest.raises(SpecError, match=needle):
        HebbianConv2d(3, 4, 3).use_rule("wta", lr=lr)


def test_a_step_without_a_rule_says_to_attach_one():
    from hebbcore.errors import HebbcoreError

    with pytest.raises(HebbcoreError, match=r"no rule attached; call use_rule\('wta'\) first"):
        HebbianConv2d(3, 4, 3).hebbian_step(torch.zeros(2, 3, 8, 8))


def test_load_run_needs_the_weights_not_the_data(tmp_path, registry):
    """A run moved to a machine without its data set still loads: the data source is asked for shapes only."""
    from hebbcore.io import atomic_save_npz
    from hebbcore.ops import Ops
    from hebbcore.spec import dumps_toml, spec_to_table
    from hebbcore.torch_model import load_run

    table = {
        "data": {"source": "cifar10", "options": {"root": str(tmp_path / "moved-away")}},
        "layers": [
            {"name": "conv1", "type": "conv", "out_channels": 4, "kernel_size": 5},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
        ],
    }
    spec = parse_spec(table, registry)
    net = Network(spec, (3, 32, 32), 10, Ops(), registry)
    atomic_save_npz(tmp_path / "weights.npz", net.state_dict())
    (tmp_path / "spec.toml").write_text(dumps_toml(spec_to_table(spec)))
    module = load_run(str(tmp_path), registry)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    np.testing.assert_allclose(module(torch.from_numpy(x)).detach().numpy(), net.forward(x), rtol=1e-4, atol=1e-5)


def test_a_rule_needing_a_linear_response_says_the_modules_answer_the_cosine():
    from hebbcore.torch_model import HebbianLinear

    with pytest.raises(SpecError, match="the torch modules answer cosine responses: a rule that needs a linear one"):
        HebbianLinear(20, 10).use_rule("ridge", n_classes=10, lr=1)
