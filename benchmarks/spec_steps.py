"""Time Hebbian steps of any spec's network on random input of its data's shape (no data is read).

    python benchmarks/spec_steps.py experiments/rules/softhebb_wide.toml --steps 8 --batch 32 --backend torch

Prints the median, minimum and maximum seconds per step over ``--repeats`` rounds of ``--steps`` steps, after
one warm-up round. Run it alternately with ``benchmarks/at_revision.py REV python benchmarks/spec_steps.py ...``
for an A/B of the library at another revision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("spec")
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from hebbcore.allocator import tune_malloc
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry
    from hebbcore.spec import load_spec

    tune_malloc()
    registry = default_registry()
    spec = load_spec(args.spec, registry, against_data=False)
    info = registry.get("dataset", spec.data.source).describe(spec.data.options)
    ops = registry.get("backend", args.backend)()
    net = Network(spec, info.input_shape, info.n_classes, ops, registry)
    rng = np.random.default_rng(0)
    x = ops.asarray(rng.standard_normal((args.batch, *info.input_shape)).astype(np.float32))
    y = ops.asarray(rng.integers(0, info.n_classes, args.batch), dtype="int64")
    times = []
    for r in range(args.repeats + 1):
        ops.synchronize()
        t0 = time.perf_counter()
        for _ in range(args.steps):
            net.hebbian_step(x, y)
        ops.synchronize()
        if r:  # the first round warms up
            times.append((time.perf_counter() - t0) / args.steps)
    print(f"{spec.name} {args.backend} batch {args.batch}: {statistics.median(times):.4f} s/step "
          f"(min {min(times):.4f}, max {max(times):.4f}, {args.repeats} x {args.steps} steps)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
