"""Time a linear probe of fixed features with and without the feature cache, side by side in one process.

    python benchmarks/feature_cache.py [--backend torch] [--images 5000] [--epochs 5] [--repeats 2]

The probe is the paper's conv1 (96 kernels 5x5, random and frozen) with its pooling and batch-norm under an SGD
linear readout, on CIFAR-10 when $HEBBCORE_CIFAR10 points at it (else synthetic 32x32 images). Each repeat
runs it through every layer on every batch, then on cached features (``run(..., features=FeatureCache())``, a
fresh cache each time, so the features are computed inside the timed run); it prints wall and CPU seconds, the
ratio, and checks that both runs end with the same weights.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from hebbcore.features import FeatureCache
from hebbcore.plugin_manager import default_registry
from hebbcore.runner import run
from hebbcore.spec import parse_spec


def probe_table(images: int, epochs: int) -> dict:
    if os.environ.get("HEBBCORE_CIFAR10"):
        data = {"source": "cifar10", "options": {"n_train": images, "n_val": 1000, "n_test": 1000}}
    else:
        data = {"source": "synthetic", "options": {"n_train": images, "n_val": 1000, "n_test": 1000, "size": 32}}
    return {
        "name": "probe",
        "phases": ["sgd"],
        "data": data,
        "sgd": {"epochs": epochs, "batch_size": 64, "lr": 0.01, "train_acc_images": 1000},
        "layers": [
            {"name": "conv1", "type": "conv", "out_channels": 96, "kernel_size": 5, "train": "random"},
            {"name": "relu1", "type": "relu"},
            {"name": "pool1", "type": "pool", "kernel_size": 2},
            {"name": "bn1", "type": "batchnorm", "train": "frozen"},
            {"name": "flat", "type": "flatten"},
            {"name": "fc", "type": "linear", "out_features": 10, "train": "sgd"},
        ],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    registry = default_registry()
    spec = parse_spec(probe_table(args.images, args.epochs), registry)
    times: dict[str, list[tuple[float, float]]] = {"every batch": [], "cached": []}
    weights: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for how in times:
                cache = FeatureCache() if how == "cached" else None
                wall, cpu = time.perf_counter(), time.process_time()
                result = run(spec, registry, backend=args.backend, out_dir=Path(tmp) / f"{how}{r}", progress=False,
                             features=cache, overwrite=True)  # fmt: skip
                times[how].append((time.perf_counter() - wall, time.process_time() - cpu))
                weights[how] = result.network.state_dict()
    best = {how: (min(w for w, _ in t), min(c for _, c in t)) for how, t in times.items()}
    print(f"{spec.data.source}, {args.images} images, {args.epochs} epochs, backend {args.backend}, "
          f"best of {args.repeats}")  # fmt: skip
    for how, (wall, cpu) in best.items():
        print(f"  {how:12s} wall {wall:7.2f} s   cpu {cpu:7.2f} s")
    plain, cached = best["every batch"], best["cached"]
    print(f"  speed-up: {plain[0] / cached[0]:.2f}x wall, {plain[1] / cached[1]:.2f}x CPU time")
    diff = max(float(np.abs(weights["cached"][k] - v).max()) for k, v in weights["every batch"].items())
    print(f"  largest weight difference between the two: {diff:.2e}")


if __name__ == "__main__":
    main()
