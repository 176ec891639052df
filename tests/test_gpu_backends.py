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
