"""The bench's dense-coefficient rules: a Hebbian epoch of each rule's published network against its floor.

A rule whose coefficients are dense (every kernel has one at every position: SoftHebb's softmax, Krotov's
ranking, Hebbian PCA's reconstruction) needs, per Hebbian layer, at least the forward pass and one weight
correlation with a K-wide output-gradient: the floor (:func:`hebbcore.lab.bench.floor_step`). Its Hebbian epoch
is timed against that floor and the forward pass alone, on the same random images of the preset's input shape at
the preset's batch size, interleaved, in one process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hebbcore.network import Network
from hebbcore.ops import Ops
from hebbcore.plugin_manager import Registry
from hebbcore.spec import load_spec

_PRESETS = Path(__file__).resolve().parents[2] / "experiments" / "presets"
#: The networks timed, one per dense-coefficient rule: the authors' own (see experiments/presets/README.md).
DENSE_PRESETS = {
    "softhebb": _PRESETS / "softhebb_cifar10.toml",
    "krotov": _PRESETS / "krotov_mnist.toml",
    "hpca": _PRESETS / "lagani_hpca_cifar10.toml",
}
#: Target: the Hebbian epoch at least this fraction of its floor's throughput.
TARGET_VS_FLOOR = 0.9


def dense_rules_comparison(
    ops: Ops, registry: Registry, n_images: int, repeats: int, warmup: int, seed: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """For each preset of :data:`DENSE_PRESETS`: images per second of its Hebbian, forward-only and floor epochs
    over ``n_images`` random images, the ratios and whether the floor target is met."""
    out: dict[str, Any] = {"n_images": n_images, "target_vs_floor": TARGET_VS_FLOOR, "nets": {}}
    for rule, path in DENSE_PRESETS.items():
        out["nets"][rule] = _time_net(ops, registry, rule, path, n_images, repeats, warmup, seed, log)
    return out


def _time_net(
    ops: Ops,
    registry: Registry,
    rule: str,
    path: Path,
    n_images: int,
    repeats: int,
    warmup: int,
    seed: int,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The Hebbian, forward-only and floor epochs of one preset's network, interleaved ``repeats`` times."""
    from .bench import floor_step, forward_step

    spec = load_spec(path, registry, against_data=False)
    info = registry.get("dataset", spec.data.source).describe(spec.data.options)
    net = Network(spec, info.input_shape, info.n_classes, ops, registry)
    bs = spec.hebbian.batch_size
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n_images, *info.input_shape)).astype(np.float32)
    y = rng.integers(0, info.n_classes, size=n_images)
    batches = [(ops.asarray(x[i : i + bs]), ops.asarray(y[i : i + bs], dtype="int64")) for i in range(0, n_images, bs)]
    steps: dict[str, Callable[[Any, Any], None]] = {
        "hebbian": net.hebbian_step,
        "forward": lambda xb, _: forward_step(net, xb),
        "floor": lambda xb, _: floor_step(net, xb),
    }
    for step in steps.values():
        for _ in range(warmup):
            step(*batches[0])
    seconds: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(repeats):
        for kind, step in steps.items():
            ops.synchronize()
            t0 = time.perf_counter()
            for xb, yb in batches:
                step(xb, yb)
            ops.synchronize()
            seconds[kind].append(time.perf_counter() - t0)
            log(f"{rule} net {kind} epoch {r + 1}/{repeats}: {n_images / seconds[kind][-1]:.1f} images/s")
    rec: dict[str, Any] = {"preset": path.name, "batch_size": bs, "input_shape": list(info.input_shape)}
    for kind, s in seconds.items():
        rec[kind] = {"seconds": min(s), "images_per_s": n_images / min(s), "all_seconds": s}
    rec["hebbian_vs_forward"] = rec["hebbian"]["images_per_s"] / rec["forward"]["images_per_s"]
    rec["hebbian_vs_floor"] = rec["hebbian"]["images_per_s"] / rec["floor"]["images_per_s"]
    rec["target_met"] = rec["hebbian_vs_floor"] >= TARGET_VS_FLOOR
    return rec
