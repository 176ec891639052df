"""Shared fixtures: the registry and the backends available on this machine."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from hebbcore.plugin_manager import default_registry

settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=25, print_blob=True
)  # a CI failure prints the @reproduce_failure line
settings.register_profile("thorough", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def registry():
    return default_registry()


def _torch_cuda_reason():
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    return None if torch.cuda.is_available() else "torch sees no CUDA device"


def _cupy_reason():
    from hebbcore_backends.cupy_backend import cupy_unavailable_reason

    return cupy_unavailable_reason()


def _torch_reason():
    try:
        import torch  # noqa: F401
    except ImportError:
        return "torch is not installed"
    return None


# (backend, device, reason it cannot run here or None)
OTHER_BACKENDS = [
    ("torch", "cpu", _torch_reason()),
    ("torch", "cuda", _torch_cuda_reason()),
    ("cupy", "cuda", _cupy_reason()),
]


def backend_params():
    """pytest params for every non-reference backend; unavailable ones skip with their reason."""
    out = []
    for name, device, reason in OTHER_BACKENDS:
        marks = [pytest.mark.skip(reason=f"{name}/{device}: {reason}")] if reason else []
        if device == "cuda":
            marks.append(pytest.mark.gpu)
        out.append(pytest.param((name, device), id=f"{name}-{device}", marks=marks))
    return out


@pytest.fixture(scope="session")
def numpy_ops(registry):
    return registry.get("backend", "numpy")()


_OPS_CACHE = {}


def make_ops(registry, name, device):
    key = (name, device)
    if key not in _OPS_CACHE:
        _OPS_CACHE[key] = registry.get("backend", name)(device)
    return _OPS_CACHE[key]


def assert_close(actual, expected, rtol=1e-4, atol=1e-5, what=""):
    actual, expected = np.asarray(actual, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)


def rank_envs(world: int = 2) -> list[dict[str, str]]:
    """The environments torchrun would give ``world`` processes on this machine (a free port, one thread each)."""
    import os
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return [
        {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "RANK": str(r),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(r),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        for r in range(world)
    ]


def tiny_layers(modes: dict) -> list[dict]:
    """conv1 (8 kernels 3x3), relu, pool, batch-norm, flatten, a 10-way linear classifier, trained as ``modes``
    says (``{"conv1": ..., "clf": ...}``; a Hebbian conv1 learns by WTA, a Hebbian classifier by the teacher)."""
    conv = {"name": "conv1", "type": "conv", "out_channels": 8, "kernel_size": 3, "train": modes["conv1"]}
    if modes["conv1"] == "hebbian":
        conv["hebbian"] = {"rule": "wta"}
    clf = {"name": "clf", "type": "linear", "out_features": 10, "train": modes["clf"]}
    if modes["clf"] == "hebbian":
        clf["hebbian"] = {"rule": "teacher"}
    return [
        conv,
        {"name": "relu1", "type": "relu"},
        {"name": "pool1", "type": "pool", "kernel_size": 2},
        {"name": "bn1", "type": "batchnorm"},
        {"name": "flat", "type": "flatten"},
        clf,
    ]
