"""GPU backends: clean errors where there is no GPU; real runs where there is one."""

import pytest
from conftest import OTHER_BACKENDS, REPO

from hebbcore.errors import BackendUnavailable

REASONS = {(n, d): r for n, d, r in OTHER_BACKENDS}


def test_cupy_without_gpu_is_a_clear_error(registry):
    if REASONS[("cupy", "cuda")] is None:
        pytest.skip("a CUDA device is present: cupy constructs")
    with pytest.raises(BackendUnavailable, match="backend 'cupy' is unavailable: cupy"):
        registry.get("backend", "cupy")()


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "torch"])
def test_example_runs_on_gpu(backend, registry, tmp_path):
    reason = REASONS[(backend, "cuda")]
    if reason:
        pytest.skip(f"{backend}/cuda: {reason}")
    from hebbcore.runner import run
    from hebbcore.spec import load_spec

    spec = load_spec(REPO / "examples" / "tiny.toml", registry)
    result = run(spec, registry, backend=backend, device="cuda", out_dir=tmp_path, progress=False)
    assert result.metrics["device"].startswith("cuda")
    assert result.metrics["final"]["test_acc"] > 0.5


@pytest.mark.gpu
def test_torch_cuda_hebbian_step_never_waits_for_the_device(registry):
    """A Hebbian step of the paper's net on torch-CUDA queues its work without reading anything back to the
    host (no ``.item()``, no ``bincount`` sizing, no ``nonzero``): ``set_sync_debug_mode("error")`` raises
    on any operation that synchronizes."""
    reason = REASONS[("torch", "cuda")]
    if reason:
        pytest.skip(f"torch/cuda: {reason}")
    import torch

    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec, random_data
    from hebbcore.network import Network

    ops = registry.get("backend", "torch")("cuda")
    net = Network(bench_spec("HHHHHH", registry, 16, 0), INPUT_SHAPE, N_CLASSES, ops, registry)
    x, y = random_data(16, 0)
    xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
    net.hebbian_step(xd, yd)  # warm-up: library initialisation may synchronize once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        net.hebbian_step(xd, yd)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


@pytest.mark.gpu
def test_cupy_hebbian_step_never_waits_for_the_device(registry):
    """The same on CuPy: ``cupyx.allow_synchronize(False)`` raises on any synchronizing call."""
    reason = REASONS[("cupy", "cuda")]
    if reason:
        pytest.skip(f"cupy/cuda: {reason}")
    import cupy
    import cupyx

    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec, random_data
    from hebbcore.network import Network

    ops = registry.get("backend", "cupy")()
    net = Network(bench_spec("HHHHHH", registry, 16, 0), INPUT_SHAPE, N_CLASSES, ops, registry)
    x, y = random_data(16, 0)
    xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
    net.hebbian_step(xd, yd)  # warm-up: kernel compilation and the memory pool
    cupy.cuda.Device().synchronize()
    with cupyx.allow_synchronize(False):
        net.hebbian_step(xd, yd)
    cupy.cuda.Device().synchronize()
