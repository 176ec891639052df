"""experiments/presets: every preset resolves, and a one-batch step of Krotov and Hopfield's MNIST net equals
their published update (the SoftHebb preset's step is checked in tests/test_plain_softhebb.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REPO, assert_close

from hebbcore.network import Network
from hebbcore.spec import load_spec

PRESETS = sorted(p for p in (REPO / "experiments" / "presets").glob("*.toml") if p.name != "experiments.toml")


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_resolves(registry, path):
    spec = load_spec(path, registry, against_data=False)
    assert spec.name == path.stem or spec.name.startswith(path.stem.split("_s")[0])


def krotov_hopfield_step(w, x, p=3.0, k=7, delta=0.4, lr=0.02, prec=1e-30):
    """Their minibatch update: currents with sign(w)|w|^(p-1), the winner +1, the k-th -delta, divided by the
    largest change (float64)."""
    currents = (np.sign(w) * np.abs(w) ** (p - 1)) @ x.T  # (hidden, N)
    order = np.argsort(currents, axis=0)
    g = np.zeros_like(currents)
    cols = np.arange(x.shape[0])
    g[order[-1], cols] = 1.0
    g[order[-k], cols] = -delta
    ds = g @ x - (g * currents).sum(axis=1)[:, None] * w
    return w + lr * ds / max(np.abs(ds).max(), prec)


def test_one_batch_of_the_krotov_mnist_preset_is_the_authors_update(registry, numpy_ops):
    spec = load_spec(REPO / "experiments/presets/krotov_mnist.toml", registry, against_data=False)
    net = Network(spec, (1, 28, 28), 10, numpy_ops, registry)
    hidden = next(n for n in net.nodes if n.name == "hidden")
    w0 = hidden.params["weight"].astype(np.float64)
    assert w0.shape == (2000, 784) and 0.9 < w0.std() < 1.1  # the authors' N(0, 1) draw
    x = np.random.default_rng(0).uniform(0, 1, size=(100, 1, 28, 28)).astype(np.float32)
    net.hebbian_step(x, None)
    want = krotov_hopfield_step(w0, x.reshape(100, -1).astype(np.float64))
    assert np.abs(want - w0).max() > 1e-3
    assert_close(hidden.params["weight"], want, rtol=1e-3, atol=1e-5, what="hidden")
