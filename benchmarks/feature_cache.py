"""Time a linear probe of fixed features with and without the feature cache, side by side in one process.

    HEBBCORE_CIFAR10=... python benchmarks/feature_cache.py [--spec SPEC] [--images 2000] [--epochs 3]
        [--backend torch] [--repeats 1] [--set KEY=VALUE ...] [--perturb EPS]

By default the probe is SoftHebb's (``experiments/presets/softhebb_cifar10_probe.toml``: three wide Hebbian
conv layers with no Hebbian phase, so fixed features, under dropout and a linear readout), here on the
layers' random initial weights, on the first ``--images`` CIFAR-10 training images and 1,000 validation and
test images. Each repeat runs it through every layer on every batch, then on cached features
(``run(..., features=FeatureCache())`` with a fresh cache, so computing the features is inside the timed
run); it prints wall and CPU seconds, the ratios, the largest difference between the cached features and the
same layers' output in the torch modules an uncached SGD phase runs, and between the two runs' weights; with
``--perturb EPS`` it trains once more on the cached features times ``1 + EPS * noise``, to show how far
differences of rounding size carry through the training.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from hebbcore.features import FeatureCache, frozen_prefix, frozen_prefix_cut
from hebbcore.plugin_manager import default_registry
from hebbcore.runner import load_dataset, make_backend, run
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
    ap.add_argument("--perturb", type=float, default=0.0, metavar="EPS",
                    help="also train on the cached features times 1 + EPS * normal noise: how far rounding-sized "
                         "differences carry through the training")  # fmt: skip
    args = ap.parse_args()
    if args.repeats < 1:
        ap.error("--repeats: expected >= 1")
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
        if args.perturb:
            rng = np.random.default_rng(0)
            for entry in cache.entries.values():  # the last cached run's features, changed in place
                for split in (entry.train, entry.val, entry.test, entry.train_mirrored):
                    if split is not None:
                        noise = rng.standard_normal(split.x.shape, dtype=np.float32)
                        np.multiply(split.x, 1 + args.perturb * noise, out=split.x)
            result = run(spec, registry, backend=args.backend, out_dir=Path(tmp) / "perturbed", progress=False,
                         features=cache, overwrite=True)  # fmt: skip
            weights["perturbed"] = result.network.state_dict()
            accuracy["perturbed"] = result.metrics["final"]["test_acc"]
    best = {how: (min(w for w, _ in t), min(c for _, c in t)) for how, t in times.items()}
    print(f"{spec.name}: {args.images} training images, {args.epochs} epochs, backend {args.backend}, "
          f"fastest of {args.repeats}")  # fmt: skip
    for how, (wall, cpu) in best.items():
        print(f"  {how:12s} wall {wall:8.2f} s   cpu {cpu:8.2f} s   test accuracy {100 * accuracy[how]:.2f} %")
    plain, cached = best["every batch"], best["cached"]
    print(f"  cached: {plain[0] / cached[0]:.2f}x faster by wall time, {plain[1] / cached[1]:.2f}x by CPU time")
    relative = feature_difference(spec, registry, args)
    print(f"  largest feature difference, relative to the largest feature: {relative:.2e}")
    print(f"  largest weight difference between the two runs: {largest(weights['cached'], weights['every batch']):.2e}"
          " (the frozen layers run by torch's modules or by the backend's ops round differently)")  # fmt: skip
    if args.perturb:
        moved = largest(weights["cached"], weights["perturbed"])
        print(f"  on features times 1 + {args.perturb:g} * noise: test accuracy {100 * accuracy['perturbed']:.2f} %, "
              f"largest weight difference to the cached run {moved:.2e}")  # fmt: skip


def largest(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def feature_difference(spec, registry, args, n: int = 500) -> float:
    """The cached features of the first ``n`` training images against the frozen layers' output in torch's
    modules (what the uncached SGD phase computes), as max |difference| / max |feature|."""
    import torch

    from hebbcore.torch_model import build_module

    data = load_dataset(spec, registry)
    prefix, why = frozen_prefix(spec, registry, make_backend(registry, args.backend), data, FeatureCache())
    assert prefix is not None, why
    module = build_module(prefix.whole).eval()
    with torch.no_grad():
        ours = module[: frozen_prefix_cut(spec)](torch.from_numpy(data.train.x[:n])).numpy()
    cached = prefix.data.train.x[:n]
    return float(np.abs(cached - ours.reshape(cached.shape)).max() / np.abs(cached).max())


if __name__ == "__main__":
    main()
