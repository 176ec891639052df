"""Hybrid networks: Hebbian bottom, SGD top through torch autograd; torch interop modules."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the SGD phase needs torch")

from hebbcore.network import Network  # noqa: E402
from hebbcore.runner import run  # noqa: E402
from hebbcore.spec import parse_spec  # noqa: E402

LAYERS = [
    {"name": "conv1", "type": "conv", "out_channels": 16, "kernel_size": 5, "hebbian": {"rule": "wta"}},
    {"name": "relu1", "type": "relu"},
    {"name": "pool1", "type": "pool", "kernel_size": 2},
    {"name": "bn1", "type": "batchnorm"},
    {"name": "flat", "type": "flatten"},
    {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
]
DATA = {"source": "synthetic", "options": {"n_train": 800, "n_val": 200, "n_test": 200, "size": 12}}


def test_hebbian_then_sgd(registry, tmp_path):
    spec = parse_spec(
        {
            "name": "hyb",
            "data": DATA,
            "layers": LAYERS,
            "hebbian": {"epochs": 1, "batch_size": 32},
            "sgd": {"epochs": 3, "lr": 0.05, "batch_size": 32, "weight_decay": 5e-4},
        },
        registry,
    )
    result = run(spec, registry, backend="numpy", out_dir=tmp_path, progress=False)
    phases = [e["phase"] for e in result.metrics["epochs"]]
    assert phases == ["hebbian", "sgd", "sgd", "sgd"]
    conv_after_hebb = np.load(tmp_path / "weights.npz")["conv1.weight"]
    best = max(e["val_acc"] for e in result.metrics["epochs"] if e["phase"] == "sgd")
    assert result.metrics["final"]["val_acc"] == pytest.approx(best)  # keep_best restored the best epoch
    assert result.metrics["final"]["test_acc"] > 0.5, result.metrics["final"]
    # the Hebbian layer is frozen during the SGD phase
    trained_conv = result.network.state_dict()["conv1.weight"]
    np.testing.assert_array_equal(trained_conv, conv_after_hebb)
    assert json.loads((tmp_path / "metrics.json").read_text())["final"] == result.metrics["final"]


def test_torch_module_matches_network_forward(registry, numpy_ops):
    from hebbcore.torch_model import build_module

    spec = parse_spec({"layers": LAYERS, "seed": 4}, registry)
    net = Network(spec, (3, 12, 12), 10, numpy_ops, registry)
    x = np.random.default_rng(0).standard_normal((5, 3, 12, 12)).astype(np.float32)
    module = build_module(net).eval()
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, net.forward(x), rtol=1e-4, atol=1e-5)
    assert not module.conv1.weight.requires_grad and module.fc.weight.requires_grad


def test_hebbian_module_step_matches_network(registry, numpy_ops):
    """A HebbianConv2d inside a user's torch model learns with the same rule plugins."""
    from hebbcore.torch_model import build_module

    spec = parse_spec({"layers": LAYERS[:1], "seed": 5}, registry)
    net = Network(spec, (3, 9, 9), 10, numpy_ops, registry)
    module = build_module(net)
    x = np.random.default_rng(2).standard_normal((4, 3, 9, 9)).astype(np.float32)
    module.conv1.hebbian_step(torch.from_numpy(x))
    net.hebbian_step(x, None)
    np.testing.assert_allclose(
        module.conv1.weight.detach().numpy(), net.nodes[0].params["weight"], rtol=1e-4, atol=1e-5
    )


def test_hebbian_layers_inside_a_users_model():
    """A user's own torch model: a Hebbian conv trained by a rule plugin, then an SGD head on its features."""
    from torch import nn

    from hebbcore.errors import SpecError
    from hebbcore.plugin_manager import default_registry
    from hebbcore.torch_model import HebbianConv2d, HebbianLinear
    from hebbcore_plugins.data.synthetic import SyntheticOptions, make_gratings

    torch.manual_seed(0)
    reg = default_registry()
    opts = SyntheticOptions(size=12, n_classes=4, noise=0.3)
    train = make_gratings(600, opts, np.random.default_rng(0))
    test = make_gratings(200, opts, np.random.default_rng(1))
    conv = HebbianConv2d(3, 12, 5).use_rule("wta", lr=0.1, registry=reg)
    clf = HebbianLinear(12 * 4 * 4, 4).use_rule("teacher", n_classes=4, registry=reg)
    model = nn.Sequential(conv, nn.MaxPool2d(2), nn.Flatten(), clf)
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    for i in range(0, 600, 30):
        feats = model[1:3](conv.hebbian_step(x[i : i + 30]))
        clf.hebbian_step(feats, y[i : i + 30])
    with torch.no_grad():
        acc = (model(torch.from_numpy(test.x)).argmax(1).numpy() == test.y).mean()
    assert acc > 0.6, acc
    with pytest.raises(SpecError, match="groups_per_clas"):
        HebbianLinear(8, 4).use_rule("teacher", n_classes=4, registry=reg, groups_per_clas=1)


def test_adam_with_milestones_trains_and_logs_the_schedule(registry, tmp_path):
    spec = parse_spec(
        {
            "name": "adam",
            "data": DATA,
            "layers": LAYERS,
            "phases": ["sgd"],
            "sgd": {
                "epochs": 4,
                "lr": 0.01,
                "batch_size": 32,
                "optimizer": "adam",
                "lr_milestones": [1, 3],
                "lr_decay": 0.5,
            },
        },
        registry,
    )
    result = run(spec, registry, backend="numpy", out_dir=tmp_path, progress=False)
    epochs = result.metrics["epochs"]
    assert [e["lr"] for e in epochs] == pytest.approx([0.01, 0.005, 0.005, 0.0025])
    assert result.metrics["final"]["test_acc"] > 0.3, result.metrics["final"]


def test_the_optimizer_the_spec_names_is_the_one_that_steps(registry):
    from hebbcore.sgd import SgdPhase

    for name, cls in (("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)):
        spec = parse_spec(
            {"name": name, "data": DATA, "layers": LAYERS, "phases": ["sgd"], "sgd": {"epochs": 1, "optimizer": name}},
            registry,
        )
        net = Network(spec, (3, 12, 12), 10, registry.get("backend", "numpy")(), registry)
        assert type(SgdPhase(net, data=None, seed=0).opt) is cls


def test_batchnorms_above_the_last_hebbian_layer_train_with_the_sgd_phase(registry, tmp_path):
    """conv1 (Hebbian) → bn1 → conv2 (SGD) → bn2 → fc (SGD): bn2 follows conv2 and learns in the SGD phase; bn1,
    which the Hebbian phase never runs (it stops at conv1), feeds conv2 and learns with it too (it would
    otherwise stay the identity). A batch norm between Hebbian layers keeps its Hebbian statistics
    (tests/test_spec.py)."""
    table = {
        "seed": 1,
        "data": {"source": "synthetic", "options": {"n_train": 120, "n_val": 20, "n_test": 20, "size": 10}},
        "hebbian": {"epochs": 1, "batch_size": 20},
        "sgd": {"epochs": 1, "batch_size": 20, "lr": 0.05},
        "layers": [
            {"name": "conv1", "type": "conv", "out_channels": 6, "kernel_size": 3, "hebbian": {"rule": "wta"}},
            {"name": "bn1", "type": "batchnorm"},
            {"name": "conv2", "type": "conv", "out_channels": 5, "kernel_size": 3, "train": "sgd"},
            {"name": "bn2", "type": "batchnorm"},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
        ],
    }
    hebbian_only = run(parse_spec({**table, "phases": ["hebbian"]}, registry), registry, out_dir=tmp_path / "h",
                       progress=False).network.state_dict()  # fmt: skip
    both = run(parse_spec(table, registry), registry, out_dir=tmp_path / "b", progress=False).network.state_dict()
    for k in ("bn1.weight", "bn1.running_mean", "bn1.running_var"):
        np.testing.assert_array_equal(hebbian_only[k], np.ones_like(hebbian_only[k]) if "var" in k or "weight" in k
                                      else np.zeros_like(hebbian_only[k]), err_msg=k)  # fmt: skip
        assert not np.allclose(both[k], hebbian_only[k]), k  # learnt in the SGD phase
    for k in ("bn2.weight", "bn2.running_mean", "bn2.running_var"):
        assert not np.allclose(both[k], hebbian_only[k]), k  # learnt in the SGD phase
