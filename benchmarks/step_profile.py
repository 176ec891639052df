"""Where a Hebbian step's time goes against its floor, on any backend.

    python benchmarks/step_profile.py [--backend torch:cpu] [--steps 20] [--top 15] [--by-method | --by-layer]
        [--spec experiments/presets/lagani_hpca_cifar10.toml]

Runs ``Network.hebbian_step`` of the paper's all-Hebbian net (``HHHHHH``, as ``hebbcore bench`` times it), or
of a spec's network at its batch size on random images of its input shape (``--spec``), and
``bench.floor_step`` on the same batches, after warm-up steps, and prints per step:

- with torch (default), under ``torch.profiler``: wall ms, the number of operators called (those an operator
  calls included, views not) and, on CUDA, of kernels launched and their summed device time; then the
  operators taking the most time (device time on CUDA, CPU time on the CPU). On a GPU a step that launches
  many more small kernels than its floor is launch-bound: that is what to fuse;
- with ``--by-method`` (any backend: numpy, cupy, torch): the time of each top-level ``Ops`` method, the
  device synchronized before and after every call, so each method is charged its own work. The
  synchronizing removes the overlap of host and device, so the per-step total is larger than the wall time;
- with ``--by-layer`` (any backend): the same timing of the Hebbian step, charged to each layer and split
  into its forward pass, its similarity (patch norms and cosine, with the competition's winners where a rule
  asks for them; computed inside the update when it does) and the rest of its update
  (``Network.apply_hebbian``), with the update's three largest methods.
"""

from __future__ import annotations

import argparse
import time


def profile(fn, steps: int, cuda: bool):
    """Run ``fn(i)`` for ``steps`` steps under the profiler; returns (wall seconds, key averages, kernel count)."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

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


def by_method(ops, fn, steps: int, key=lambda name: name) -> tuple[float, dict]:
    """Run ``fn(i)`` for ``steps`` steps with every public ``Ops`` method timed (outermost calls only, device
    synchronized around each); returns (wall seconds, {key(method): [calls, seconds]})."""
    from hebbcore.ops import Ops

    cls = type(ops)
    names = [
        n
        for n in dir(Ops)
        if not n.startswith("_") and callable(getattr(Ops, n)) and n not in ("asarray", "to_numpy", "synchronize")
    ]
    stats: dict[str, list[float]] = {}
    depth = [0]
    saved = {n: cls.__dict__[n] for n in names if n in cls.__dict__}

    def timed(name, method):
        def call(self, *a, **k):
            if depth[0]:
                return method(self, *a, **k)
            depth[0] += 1
            try:
                self.synchronize()
                t = time.perf_counter()
                out = method(self, *a, **k)
                self.synchronize()
                entry = stats.setdefault(key(name), [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - t
                return out
            finally:
                depth[0] -= 1

        return call

    try:
        for n in names:
            setattr(cls, n, timed(n, getattr(cls, n)))
        ops.synchronize()
        t = time.perf_counter()
        for i in range(steps):
            fn(i)
        ops.synchronize()
        wall = time.perf_counter() - t
    finally:
        for n in names:
            if n in saved:
                setattr(cls, n, saved[n])
            else:
                delattr(cls, n)
    return wall, stats


def by_layer(net, fn, steps: int) -> tuple[float, dict]:
    """:func:`by_method` with each call charged to ``(layer, part, method)``: ``part`` is ``"similarity"``
    inside a weight layer's ``similarity`` or ``similarity_argmax`` (the patch norms and the cosine, with the
    competition's winners when a rule asks for them: :meth:`HebbianContext.most_similar`), ``"update"``
    elsewhere inside ``Network.apply_hebbian`` (the rule, the sums, the weight update) and ``"forward"``
    elsewhere."""
    where = {"layer": "", "part": "forward"}
    originals = {n: getattr(net, n) for n in ("layer_forward", "dot_of", "cosine_of", "apply_hebbian")}
    layers = [node.layer for node in net.hebbian_nodes]

    def forward_dot(name, method):  # the step computes w·x on first use, maybe inside the update: still forward
        def call(*a, **k):
            before = dict(where)
            where.update(layer=name, part="forward")
            try:
                return method(*a, **k)
            finally:
                where.update(before)

        return call

    def similarity(method):
        def call(*a, **k):
            before = where["part"]
            where["part"] = "similarity"
            try:
                return method(*a, **k)
            finally:
                where["part"] = before

        return call

    def entered(name, method):
        def call(node, *a, **k):
            # the layer stays current after the call: the ReLU of its response is computed after it returns
            before = where["part"]
            where["layer"] = node.name
            where["part"] = "update" if name == "apply_hebbian" else before
            try:
                return method(node, *a, **k)
            finally:
                where["part"] = before

        return call

    try:
        for n, m in originals.items():
            setattr(net, n, entered(n, m))
        for node in net.hebbian_nodes:  # the instance's attribute shadows the class's method until deleted
            for n in ("similarity", "similarity_argmax"):
                setattr(node.layer, n, similarity(getattr(node.layer, n)))
            node.layer.dot = forward_dot(node.name, node.layer.dot)
        return by_method(net.ops, fn, steps, key=lambda name: (where["layer"], where["part"], name))
    finally:
        for n in originals:
            delattr(net, n)  # back to the class's methods
        for layer in layers:
            for n in ("similarity", "similarity_argmax", "dot"):
                delattr(layer, n)


def print_by_layer(stats: dict, steps: int, wall: float) -> None:
    layers = list(dict.fromkeys(layer for layer, _, _ in stats))
    parts_head = "the update's largest parts (ms / step)"
    print(f"| layer | forward ms / step | similarity ms / step | update ms / step | {parts_head} |")
    print("|---|---:|---:|---:|---|")
    totals = {"forward": 0.0, "similarity": 0.0, "update": 0.0}
    for layer in layers:
        part = {p: sum(sec for (la, pa, _), (_, sec) in stats.items() if la == layer and pa == p) for p in totals}
        for p in totals:
            totals[p] += part[p]
        top = sorted((sec, m) for (la, pa, m), (_, sec) in stats.items() if la == layer and pa == "update")[::-1]
        parts = ", ".join(f"{m} {sec * 1e3 / steps:.2f}" for sec, m in top[:3])
        ms = " | ".join(f"{part[p] * 1e3 / steps:.2f}" for p in totals)
        print(f"| {layer} | {ms} | {parts} |")
    ms = " | ".join(f"{totals[p] * 1e3 / steps:.2f}" for p in totals)
    print(f"| all | {ms} | whole step, wall {wall * 1e3 / steps:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backend",
        default="torch:cpu",
        metavar="NAME[:DEVICE]",
        help="backend and device, e.g. torch:cpu, torch:cuda, cupy, numpy (default torch:cpu)",
    )
    ap.add_argument(
        "--by-method", action="store_true", help="time each Ops method (any backend) instead of the torch profiler"
    )
    ap.add_argument(
        "--by-layer",
        action="store_true",
        help="time each Ops method per layer, split into its forward pass and its update (any backend)",
    )
    ap.add_argument("--spec", help="profile this spec's network instead of the paper's (e.g. a preset)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=15, help="operators (or methods) listed per profile")
    args = ap.parse_args()
    if args.steps < 1:
        ap.error("--steps must be at least 1")
    from hebbcore.allocator import tune_malloc
    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec, floor_step, parse_targets, random_data
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry

    tune_malloc()  # as hebbcore bench and hebbcore run do
    reg = default_registry()
    target = parse_targets([args.backend])[0]
    if target.backend != "torch" and not (args.by_method or args.by_layer):
        ap.error(f"{target.backend}: the torch profiler needs the torch backend; add --by-method")
    ops = reg.get("backend", target.backend)(target.device)
    cuda = ops.device.startswith("cuda")
    if args.spec:
        from hebbcore.spec import load_spec

        spec = load_spec(args.spec, reg, against_data=False)
        info = reg.get("dataset", spec.data.source).describe(spec.data.options)
        shape, n_classes, bs, name = info.input_shape, info.n_classes, spec.hebbian.batch_size, spec.name
    else:
        spec, shape, n_classes, bs, name = bench_spec("HHHHHH", reg, 64, 0), INPUT_SHAPE, N_CLASSES, 64, "HHHHHH"
    net = Network(spec, shape, n_classes, ops, reg)
    x, y = random_data(bs * args.steps, 0, shape, n_classes)
    xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
    batches = [(xd[i : i + bs], yd[i : i + bs]) for i in range(0, len(x), bs)]
    runs = {"Hebbian step": lambda i: net.hebbian_step(*batches[i]), "floor": lambda i: floor_step(net, batches[i][0])}
    for fn in runs.values():  # warm-up: allocator, cuDNN/oneDNN plans
        for i in range(min(3, args.steps)):
            fn(i)
    print(f"{ops.name} {ops.device}, {args.steps} batch-{bs} steps of {name} each\n")
    if args.by_layer:
        wall, stats = by_layer(net, runs["Hebbian step"], args.steps)
        print_by_layer(stats, args.steps, wall)
        return
    if args.by_method:
        results = {name: by_method(ops, fn, args.steps) for name, fn in runs.items()}
        print("| Ops method | " + " | ".join(f"{name} calls / step | {name} ms / step" for name in runs) + " |")
        print("|---|" + "---:|---:|" * len(runs))
        methods = sorted(
            {m for _, st in results.values() for m in st},
            key=lambda m: -max(st.get(m, [0, 0.0])[1] for _, st in results.values()),
        )
        for m in methods[: args.top]:
            cells = []
            for _, st in results.values():
                calls, sec = st.get(m, [0, 0.0])
                cells += [f"{calls / args.steps:.0f}", f"{sec * 1e3 / args.steps:.2f}"]
            print(f"| {m} | " + " | ".join(cells) + " |")
        print(
            "| whole step, wall | "
            + " | ".join(f"- | {wall * 1e3 / args.steps:.2f}" for wall, _ in results.values())
            + " |"
        )
        return
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    print("| | wall ms / step | operators / step (nested ones too) | CUDA kernels / step | CUDA kernel ms / step |")
    print("|---|---:|---:|---:|---:|")
    tables = {}
    for name, fn in runs.items():
        wall, avg, kernels = profile(fn, args.steps, cuda)
        n_ops = sum(
            a.count
            for a in avg
            if not a.key.startswith(
                ("aten::view", "aten::as_strided", "aten::detach", "aten::alias", "aten::lift_fresh")
            )
        )
        device_ms = sum(a.self_device_time_total for a in avg) / 1e3 if cuda else 0.0
        print(
            f"| {name} | {wall * 1e3 / args.steps:.2f} | {n_ops / args.steps:.0f} | "
            f"{(f'{kernels / args.steps:.0f}' if cuda else '-')} | "
            f"{(f'{device_ms / args.steps:.2f}' if cuda else '-')} |"
        )
        tables[name] = avg.table(sort_by=sort, row_limit=args.top)
    for name, table in tables.items():
        print(f"\n{name}, operators by {sort}:\n{table}")


if __name__ == "__main__":
    main()
