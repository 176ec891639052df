"""The bench's whole-run measurement: a conv1 + linear-probe run's wall time against the sum of its training
epochs and its data loading, so the time spent evaluating, checkpointing and writing stays visible."""

from __future__ import annotations

import contextlib
import tempfile
import time
from typing import Any

from hebbcore.plugin_manager import Registry
from hebbcore.spec import parse_spec

#: Target: a run's wall time at most this many times its training epochs plus data loading.
TARGET_RUN_OVERHEAD = 1.3


def run_spec_table(n_images: int, seed: int) -> dict[str, Any]:
    """The paper's conv1 (WTA, one Hebbian epoch) and an SGD linear probe (one epoch) on synthetic 3x32x32 data,
    with the project's probe settings (train accuracy on 5,000 images, as every committed experiment measures it)."""
    n_eval = max(n_images // 10, 1)
    return {
        "name": "bench-run",
        "seed": seed,
        "data": {
            "source": "synthetic",
            "options": {"n_train": n_images, "n_val": n_eval, "n_test": n_eval, "size": 32, "n_classes": 10},
        },  # fmt: skip
        "hebbian": {"epochs": 1, "batch_size": 64, "train_acc_images": 5000},
        "sgd": {"epochs": 1, "batch_size": 64, "lr": 1e-3, "train_acc_images": 5000},
        "layers": [
            {"name": "conv1", "type": "conv", "out_channels": 96, "kernel_size": 5, "hebbian": {"rule": "wta"}},
            {"name": "pool1", "type": "pool", "kernel_size": 2},
            {"name": "bn1", "type": "batchnorm", "train": "sgd"},
            {"name": "flatten", "type": "flatten"},
            {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
        ],
    }


def startup(backend: str, device: str | None, registry: Registry) -> float:
    """Seconds of a process's one-off imports that a run triggers (the backend's framework, the lazy compiler
    import of torch's first optimizer, matplotlib for the plots): paid once per process, not per image."""
    t0 = time.perf_counter()
    registry.get("backend", backend)(device)
    import torch

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with contextlib.suppress(ImportError):  # a run without matplotlib writes no plots
        import matplotlib.pyplot  # noqa: F401  (only to time its import)
    return time.perf_counter() - t0


def run_overhead(backend: str, device: str | None, registry: Registry, n_images: int, seed: int) -> dict[str, Any]:
    """Wall seconds of ``hebbcore.runner.run`` on the conv1 + probe spec, its epochs' seconds, the data's loading
    seconds, and ``ratio = wall / (epochs + loading)``; the process's one-off imports are timed first, apart
    (``startup_s``)."""
    from hebbcore.runner import load_dataset, run

    first = startup(backend, device, registry)
    spec = parse_spec(run_spec_table(n_images, seed), registry)
    t0 = time.perf_counter()
    load_dataset(spec, registry)
    loading = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="hebbcore-bench-run-") as out:
        t0 = time.perf_counter()
        result = run(spec, registry, backend=backend, device=device, out_dir=out, progress=False)
        wall = time.perf_counter() - t0
    epochs = sum(e["seconds"] for e in result.metrics["epochs"])
    ratio = wall / (epochs + loading)
    return {"n_images": n_images, "startup_s": first, "wall_s": wall, "epochs_s": epochs, "loading_s": loading,
            "ratio": ratio, "target": TARGET_RUN_OVERHEAD, "target_met": ratio <= TARGET_RUN_OVERHEAD}  # fmt: skip
