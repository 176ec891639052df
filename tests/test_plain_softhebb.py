"""The bench's plain PyTorch SoftHebb step and hebbcore's step of the SoftHebb preset make the same update."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, assert_close

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_plain_step_and_hebbcores_make_the_same_update(registry, backend):
    from hebbcore.lab.plain_softhebb import PlainSoftHebb
    from hebbcore.network import Network
    from hebbcore.spec import load_spec

    spec = load_spec(REPO / "experiments/presets/softhebb_cifar10.toml", registry, against_data=False)
    ops = registry.get("backend", backend)()
    net = Network(spec, (3, 32, 32), 10, ops, registry)
    names = ("conv1", "conv2", "conv3")
    before = {n: ops.to_numpy(next(m for m in net.nodes if m.name == n).params["weight"]) for n in names}
    plain = PlainSoftHebb([torch.from_numpy(before[n]) for n in names])
    x = np.random.default_rng(0).uniform(0, 1, size=(6, 3, 32, 32)).astype(np.float32)
    for _ in range(2):  # two steps: the second starts from updated weights and running statistics
        net.hebbian_step(ops.asarray(x), None)
        plain.step(torch.from_numpy(x))
    for n, w in zip(names, plain.weights, strict=True):
        after = ops.to_numpy(next(m for m in net.nodes if m.name == n).params["weight"])
        assert np.abs(after - before[n]).max() > 1e-4, n  # the step moved the weights
        assert_close(after, w.numpy(), rtol=1e-3, atol=1e-4, what=n)
