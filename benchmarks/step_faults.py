"""Minor page faults, kernel time and wall time per batch-64 step: a Hebbian step against its floor.

    python benchmarks/step_faults.py [--backend numpy,torch] [--steps 16]
    HEBBCORE_MALLOC_TUNING=0 python benchmarks/step_faults.py     # with glibc's default malloc

Runs the paper's all-Hebbian net (``HHHHHH``, as ``hebbcore bench`` times it) after one warm-up pass, and reads
``getrusage`` around ``--steps`` steps of ``Network.hebbian_step`` and of ``bench.floor_step`` on the same
batches. ``hebbcore.allocator.tune_malloc`` is applied first, as the commands do, unless the variable above
turns it off; the first line says which.
"""

from __future__ import annotations

import argparse
import resource
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="numpy,torch", help="comma list of CPU backends (default numpy,torch)")
    ap.add_argument("--steps", type=int, default=16)
    args = ap.parse_args()
    from hebbcore.allocator import tune_malloc
    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec, floor_step, random_data
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry

    print("malloc tuning:", tune_malloc())
    reg = default_registry()
    print("| backend | step | wall s | minor faults / step | kernel (sys) ms / step |")
    print("|---|---|---:|---:|---:|")
    for name in [b.strip() for b in args.backend.split(",") if b.strip()]:
        ops = reg.get("backend", name)("cpu")
        net = Network(bench_spec("HHHHHH", reg, 64, 0), INPUT_SHAPE, N_CLASSES, ops, reg)
        x, y = random_data(64 * args.steps, 0)
        xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
        batches = [(xd[i : i + 64], yd[i : i + 64]) for i in range(0, len(x), 64)]
        steps = {
            "Hebbian": lambda: [net.hebbian_step(xb, yb) for xb, yb in batches],
            "floor": lambda: [floor_step(net, xb) for xb, _ in batches],
        }
        for fn in steps.values():  # warm-up
            fn()
        for step, fn in steps.items():
            r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            fn()
            t, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
            print(
                f"| {name} | {step} | {t:.3f} | {(r1.ru_minflt - r0.ru_minflt) / args.steps:.0f} | "
                f"{(r1.ru_stime - r0.ru_stime) * 1e3 / args.steps:.1f} |"
            )


if __name__ == "__main__":
    main()
