"""A training split kept on the device (GPU backends) trains exactly as batches copied from the host."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, backend_params, make_ops

from hebbcore.interfaces import Dataset, Split
from hebbcore.models import paper_net
from hebbcore.network import Network
from hebbcore.runner import device_resident, hebbian_epoch
from hebbcore.spec import parse_spec


def small_data(seed=0, n=150):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 12, 12)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    empty = Split(x[:0], y[:0])
    return Dataset("toy", Split(x, y), empty, empty, 10)


def small_net(registry, ops):
    layers = [
        {
            "name": "conv1",
            "type": "conv",
            "out_channels": 12,
            "kernel_size": 3,
            "train": "hebbian",
            "hebbian": {"rule": "wta", "aggregation": "weighted_mean", "lr": 0.1},
        },
        {"name": "relu1", "type": "relu"},
        {"name": "bn1", "type": "batchnorm"},
        {
            "name": "conv2",
            "type": "conv",
            "out_channels": 20,
            "kernel_size": 3,
            "train": "hebbian",
            "hebbian": {
                "rule": "teacher",
                "aggregation": "weighted_mean",
                "lr": 0.1,
                "options": {"groups_per_class": 1, "common": 10, "competition": "masked_wta"},
            },
        },
        {"name": "relu2", "type": "relu"},
        {"name": "flatten", "type": "flatten"},
        {
            "name": "clf",
            "type": "linear",
            "out_features": 10,
            "train": "hebbian",
            "hebbian": {"rule": "teacher", "aggregation": "weighted_mean", "lr": 0.1},
        },
    ]
    return Network(parse_spec({"seed": 1, "layers": layers}, registry), (3, 12, 12), 10, ops, registry)


@pytest.mark.parametrize("backend", [("numpy", None)] + backend_params())
def test_resident_split_trains_like_host_batches(registry, backend):
    ops = make_ops(registry, *backend)
    data = small_data()
    nets = [small_net(registry, ops) for _ in range(2)]
    resident = (ops.asarray(data.train.x), ops.asarray(data.train.y, dtype="int64"))  # forced, also on the CPU
    for net, res in zip(nets, (None, resident), strict=True):
        hebbian_epoch(net, data, 32, np.random.default_rng(5), 1, 1, progress=False, resident=res)
    for a, b in zip(nets[0].state_dict().items(), nets[1].state_dict().items(), strict=True):
        assert a[0] == b[0]
        assert_close(b[1], a[1], rtol=1e-5, atol=1e-6, what=a[0])
    assert not np.allclose(nets[0].state_dict()["conv1.weight"], small_net(registry, ops).state_dict()["conv1.weight"])


def test_device_resident_only_on_gpus_and_within_the_limit(registry):
    data = small_data()
    cpu = make_ops(registry, "numpy", None)
    assert device_resident(cpu, data.train.x, data.train.y) is None

    class FakeGpu:  # only the decision is under test here: the device string and the size bound
        device = "cuda:0"

        def asarray(self, a, dtype="float32"):
            return np.asarray(a, dtype=dtype)

    assert device_resident(FakeGpu(), data.train.x, data.train.y, limit=data.train.x.nbytes - 1) is None
    x, y = device_resident(FakeGpu(), data.train.x, data.train.y, limit=data.train.x.nbytes)
    assert x.shape == data.train.x.shape and y.dtype == np.int64


def test_paper_net_hidden_teacher_layers_compete():
    layers = {l["name"]: l for l in paper_net("HHHHHH")}
    for name in ("conv2", "conv3", "conv4", "fc5"):
        assert layers[name]["hebbian"]["options"]["competition"] == "masked_wta"
    assert "competition" not in layers["fc6"]["hebbian"]["options"]
