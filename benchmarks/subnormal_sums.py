"""Time one SoftHebb-sized conv weight-gradient with and without subnormal floats in its output-gradient.

    python benchmarks/subnormal_sums.py [--backend numpy|torch] [--repeats 5]

A softmax over many kernels with a sharp winner leaves ~20 % of its outputs
below the smallest normal float32 (1.2e-38). x86 cores take a microcode path for
those, and every product over them slows down. ``Ops.softmax`` flushes such
outputs to 0 on every backend; this script shows the cost that avoids: the same
sums over the raw softmax (subnormals kept) and over the flushed one.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hebbcore.plugin_manager import default_registry


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    # layer 2 of the SoftHebb-style net at batch 10: 96 -> 384 channels, 3x3 kernels, 16x16 outputs
    ops = default_registry().get("backend", args.backend)("cpu" if args.backend == "torch" else None)
    x = ops.asarray(rng.standard_normal((10, 96, 18, 18)).astype(np.float32))
    logits = rng.standard_normal((10, 384, 16, 16)).astype(np.float32) * 30
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    raw = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    tiny = np.finfo(np.float32).tiny
    for name, g in (("raw softmax", raw), ("flushed", np.where(raw < tiny, np.float32(0), raw))):
        share = float(((g > 0) & (g < tiny)).mean())
        gd = ops.asarray(g)
        ops.conv2d_weight_sums(x, gd, (3, 3))
        t = time.perf_counter()
        for _ in range(args.repeats):
            ops.conv2d_weight_sums(x, gd, (3, 3))
        ms = (time.perf_counter() - t) / args.repeats * 1e3
        print(f"{args.backend:6s} {name:12s} subnormal share {share:6.1%}  weight sums {ms:8.1f} ms")


if __name__ == "__main__":
    main()
