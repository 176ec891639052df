"""The bench's SoftHebb comparison: hebbcore's step of SoftHebb's CIFAR-10 network against the plain PyTorch
implementation of the same step (:mod:`hebbcore.lab.plain_softhebb`), same images, same process, interleaved."""

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

#: The preset whose network is compared (the authors' demo.py network).
PRESET = Path(__file__).resolve().parents[2] / "experiments" / "presets" / "softhebb_cifar10.toml"
BATCH = 10  # the authors' unsupervised batch size
#: Targets: hebbcore's step at least this many times the plain one's throughput, per backend.
TARGETS = {"torch": 1.3, "numpy": 1.0}


def softhebb_comparison(
    ops: Ops, registry: Registry, n_images: int, repeats: int, warmup: int, seed: int, log: Callable[[str], None]
) -> dict[str, Any]:
    """Images per second of both steps over ``n_images`` random images at batch 10, and their ratio."""
    import torch

    from .plain_softhebb import PlainSoftHebb

    spec = load_spec(PRESET, registry, against_data=False)
    net = Network(spec, (3, 32, 32), 10, ops, registry)
    names = ("conv1", "conv2", "conv3")
    weights = [torch.from_numpy(ops.to_numpy(n.params["weight"]).copy()) for n in net.nodes if n.name in names]
    dev = torch.device(str(ops.device)) if ops.name == "torch" else torch.device("cpu")
    plain = PlainSoftHebb([w.to(dev) for w in weights])
    plain.running = [(m.to(dev), v.to(dev)) for m, v in plain.running]
    x = np.random.default_rng(seed).uniform(0, 1, size=(n_images, 3, 32, 32)).astype(np.float32)
    xs_ops = [ops.asarray(x[i : i + BATCH]) for i in range(0, n_images, BATCH)]
    xs_plain = [torch.from_numpy(x[i : i + BATCH]).to(dev) for i in range(0, n_images, BATCH)]

    def sync():
        ops.synchronize()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def hebbcore_epoch():
        for xb in xs_ops:
            net.hebbian_step(xb, None)

    def plain_epoch():
        for xb in xs_plain:
            plain.step(xb)

    for _ in range(warmup):
        net.hebbian_step(xs_ops[0], None)
        plain.step(xs_plain[0])
    seconds: dict[str, list[float]] = {"hebbcore": [], "plain": []}
    for r in range(repeats):
        for kind, fn in (("hebbcore", hebbcore_epoch), ("plain", plain_epoch)):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            seconds[kind].append(time.perf_counter() - t0)
            log(f"softhebb {kind} epoch {r + 1}/{repeats}: {n_images / seconds[kind][-1]:.1f} images/s")
    out: dict[str, Any] = {"n_images": n_images, "batch_size": BATCH, "plain_device": str(dev)}
    for kind, s in seconds.items():
        out[kind] = {"seconds": min(s), "images_per_s": n_images / min(s), "all_seconds": s}
    out["ratio"] = out["hebbcore"]["images_per_s"] / out["plain"]["images_per_s"]
    target = TARGETS.get(ops.name)
    if target is not None and not str(ops.device).startswith("cuda"):
        out["target"] = target
        out["target_met"] = out["ratio"] >= target
    return out
