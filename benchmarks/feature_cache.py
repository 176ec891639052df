"""Time a linear probe of fixed features with and without the feature cache, side by side in one process.

    HEBBCORE_CIFAR10=... python benchmarks/feature_cache.py [--spec SPEC] [--images 2000] [--epochs 3]
        [--backend torch] [--repeats 1] [--set KEY=VALUE ...]

By default the probe is SoftHebb's (``experiments/presets/softhebb_cifar10_probe.toml``: three wide Hebbian
conv layers with no Hebbian phase, so fixed features, under dropout and a linear readout), here on the
layers' random initial weights, on the first ``--images`` CIFAR-10 training images and 1,000 validation and
test images. Each repeat runs it through every layer on every batch, then on cached features
(``run(..., features=FeatureCache())`` with a fresh cache, so computing the features is inside the timed
run); it prints wall and CPU seconds, the ratios, and the largest difference between the two runs' weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hebbcore.features import FeatureCache
from hebbcore.plugin_manager import default_registry
from hebbcore.runner import run
from hebbcore.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(REPO / "experiments/presets/softhebb_cifar10_probe.toml"))
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    registry = default_registry()
    sizes = [f"data.options.n_train={args.images}", "data.options.train_split=49000", "data.options.n_val=1000",
             "data.options.n_test=1000", f"sgd.epochs={args.epochs}", "sgd.train_acc_images=1000"]  # fmt: skip
    spec = load_spec(args.spec, registry, overrides=[*sizes, *args.settings])
    times: dict[str, list[tuple[float, float]]] = {"every batch": [], "cached": []}
    weights: dict[str, dict] = {}
    accuracy: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for how in times:
                cache = FeatureCache() if how == "cached" else None
                wall, cpu = time.perf_counter(), time.process_time()
                result = run(spec, registry, backend=args.backend, out_dir=Path(tmp) / f"{how}{r}", progress=False,
                             features=cache, overwrite=True)  # fmt: skip
                times[how].append((time.perf_counter() - wall, time.process_time() - cpu))
                weights[how] = result.network.state_dict()
                accuracy[how] = result.metrics["final"]["test_acc"]
    best = {how: (min(w for w, _ in t), min(c for _, c in t)) for how, t in times.items()}
    print(f"{spec.name}: {args.images} training images, {args.epochs} epochs, backend {args.backend}, "
          f"fastest of {args.repeats}")  # fmt: skip
    for how, (wall, cpu) in best.items():
        print(f"  {how:12s} wall {wall:8.2f} s   cpu {cpu:8.2f} s   test accuracy {100 * accuracy[how]:.2f} %")
    plain, cached = best["every batch"], best["cached"]
    print(f"  cached: {plain[0] / cached[0]:.2f}x faster by wall time, {plain[1] / cached[1]:.2f}x by CPU time")
    diff = max(float(np.abs(weights["cached"][k] - v).max()) for k, v in weights["every batch"].items())
    print(f"  largest weight difference between the two runs: {diff:.2e} (the frozen layers run by torch's modules "
          f"or by the backend's ops round differently, which training amplifies)")  # fmt: skip


if __name__ == "__main__":
    main()
