"""Where a Hebbian step's time goes against its floor: the torch profiler over N batch-64 steps of each.

    python benchmarks/step_profile.py [--device cpu|cuda] [--steps 20] [--top 15]

Runs ``Network.hebbian_step`` of the paper's all-Hebbian net (``HHHHHH``, as ``hebbcore bench`` times it) and
``bench.floor_step`` on the same batches with the torch backend, each under ``torch.profiler`` after warm-up
steps, and prints per step: wall ms, the number of operators called (those an operator calls included, views
not) and, on CUDA, of kernels launched and their summed device time; then the operators taking the most time (device time on CUDA, CPU time on the CPU).
On a GPU a step that launches many more small kernels than its floor is launch-bound: that is what to fuse.
"""
from __future__ import annotations

import argparse
import time


def profile(fn, steps: int, cuda: bool):
    """Run ``fn(i)`` for ``steps`` steps under the profiler; returns (wall seconds, key averages, kernel count)."""
    import torch
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    with torch_profile(activities=activities) as prof:
        t = time.perf_counter()
        for i in range(steps):
            fn(i)
        sync()
        wall = time.perf_counter() - t
    events = prof.events()
    kernels = sum(1 for e in events if cuda and getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA)
    return wall, prof.key_averages(), kernels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="torch device: cpu or cuda (default cpu)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=15, help="operators listed per profile")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    from hebbcore.allocator import tune_malloc
    from hebbcore.bench import INPUT_SHAPE, N_CLASSES, bench_spec, floor_step, random_data
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry

    tune_malloc()  # as hebbcore bench and hebbcore run do
    reg = default_registry()
    ops = reg.get("backend", "torch")(args.device)
    cuda = ops.device.startswith("cuda")
    net = Network(bench_spec("HHHHHH", reg, 64, 0), INPUT_SHAPE, N_CLASSES, ops, reg)
    x, y = random_data(64 * args.steps, 0)
    xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
    batches = [(xd[i:i + 64], yd[i:i + 64]) for i in range(0, len(x), 64)]
    runs = {"Hebbian step": lambda i: net.hebbian_step(*batches[i]), "floor": lambda i: floor_step(net, batches[i][0])}
    for fn in runs.values():  # warm-up: allocator, cuDNN/oneDNN plans
        for i in range(min(3, args.steps)):
            fn(i)
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    print(f"torch {ops.device}, {args.steps} batch-64 steps of HHHHHH each\n")
    print("| | wall ms / step | operators / step (nested ones too) | CUDA kernels / step | CUDA kernel ms / step |")
    print("|---|---:|---:|---:|---:|")
    tables = {}
    for name, fn in runs.items():
        wall, avg, kernels = profile(fn, args.steps, cuda)
        n_ops = sum(a.count for a in avg if not a.key.startswith(("aten::view", "aten::as_strided", "aten::detach",
                                                                   "aten::alias", "aten::lift_fresh")))
        device_ms = sum(a.self_device_time_total for a in avg) / 1e3 if cuda else 0.0
        print(f"| {name} | {wall * 1e3 / args.steps:.2f} | {n_ops / args.steps:.0f} | "
              f"{(f'{kernels / args.steps:.0f}' if cuda else '-')} | "
              f"{(f'{device_ms / args.steps:.2f}' if cuda else '-')} |")
        tables[name] = avg.table(sort_by=sort, row_limit=args.top)
    for name, table in tables.items():
        print(f"\n{name}, operators by {sort}:\n{table}")


if __name__ == "__main__":
    main()
