"""``hebbcore bench``: how fast a Hebbian epoch runs, against its floor and against SGD.

On the paper's 6-layer network (:func:`hebbcore.models.paper_net`) and random
CIFAR-sized input (3×32×32, 10 classes), for each backend and device it times,
side by side and with the same batches:

- ``hebbian``: one Hebbian training epoch of all six layers (modes
  ``HHHHHH``: WTA on conv1, the teacher signal with the masked competition
  on conv2–fc5, the teacher classifier fc6) with
  :meth:`Network.hebbian_step`, as a run does it (NaN check every
  ``check_every`` batches);
- ``forward``: the forward pass of the same Hebbian layers (and those between them) per batch, batch-norm
  with batch statistics: what a local rule must compute at least, since it sees every response once;
- ``floor``: the least work such an epoch can do on the same backend: per
  batch, one forward pass of the same network (cosine responses, batch-norm
  with batch statistics) plus one weight-correlation per trainable layer
  (``conv2d_weight_sums`` / ``linear_weight_sums`` with the layer's response as
  the output-gradient), with no rule, aggregation or weight update;
- ``sgd``: one SGD epoch of the same network with every layer trained by
  backpropagation (modes ``GGGGGG``), torch autograd on the matching torch
  device (the CPU for numpy, the backend's CUDA device for cupy and torch-cuda),
  Nesterov SGD as in the SGD phase;
- with ``--softhebb N``, ``--dense N`` and ``--run N`` (opt-in): SoftHebb's network against a plain PyTorch
  step (:mod:`.bench_softhebb`), the dense-coefficient rules' networks against their floors
  (:mod:`.bench_dense`), a whole conv1 + probe run against its epochs and data loading (:mod:`.bench_run`);
- ``peak_step_bytes``: the peak memory one batch-64 Hebbian step allocates
  above what was allocated before it (numpy: ``tracemalloc``; torch CPU: the
  profiler's allocation events; CUDA: ``torch.cuda.max_memory_allocated`` /
  a CuPy memory-pool hook).

The whole data set is uploaded to the device once; batches are gathered on the
device from a device-side permutation, so an epoch has no host round trip
except the periodic NaN check. Every measurement is preceded by warm-up steps
and ends with :meth:`Ops.synchronize`. With ``repeats > 1`` the three epochs
are interleaved and each one's fastest repeat is reported.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from hebbcore.errors import HebbcoreError
from hebbcore.models import paper_net
from hebbcore.network import Network
from hebbcore.ops import Ops
from hebbcore.plugin_manager import Registry, default_registry
from hebbcore.spec import RunSpec, parse_spec

from .machine import blas_line, machine_info, versions
from .memory import peak_step_memory

INPUT_SHAPE = (3, 32, 32)
N_CLASSES = 10
DEFAULT_CPU_IMAGES = 2048
DEFAULT_GPU_IMAGES = 50_000
GIB = 1 << 30

# The targets, as checked in the table and the JSON.
TARGET_HEBBIAN_VS_FLOOR = 0.9
TARGET_PEAK_BYTES = GIB
TARGET_NUMPY_VS_TORCH_CPU = 3.0
TARGET_GPU_EPOCH_S = 5.0


@dataclass(frozen=True)
class Target:
    backend: str
    device: str | None

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.device or 'default'}"


def parse_targets(backends: list[str] | None, device: str | None = None) -> list[Target]:
    """``["numpy", "torch:cuda", "cupy"]`` (comma lists allowed) -> targets; ``device`` fills in missing devices."""
    items = [b.strip() for entry in (backends or ["numpy", "torch"]) for b in entry.split(",") if b.strip()]
    out = []
    for item in items:
        name, _, dev = item.partition(":")
        dev = dev or device
        if dev is None and name in ("numpy", "torch"):
            dev = "cpu"
        elif dev is None and name == "cupy":
            dev = "cuda"
        out.append(Target(name, dev))
    return out


def bench_spec(modes: str, registry: Registry, batch_size: int, seed: int) -> RunSpec:
    return parse_spec(
        {
            "name": f"bench-{modes}",
            "seed": seed,
            "layers": paper_net(modes),
            "hebbian": {"batch_size": batch_size},
            "sgd": {"batch_size": batch_size},
        },
        registry,
        source=f"paper_net({modes!r})",
    )


def random_data(
    n: int, seed: int, shape: tuple[int, ...] = INPUT_SHAPE, n_classes: int = N_CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` standard-normal images of ``shape`` and their labels in ``[0, n_classes)``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape), dtype=np.float32)
    y = rng.integers(0, n_classes, size=n).astype(np.int64)
    return x, y


# ---------------------------------------------------------------------------- one step of each kind
def floor_step(net: Network, x) -> None:
    """One forward pass plus one weight-correlation per Hebbian layer (no rule, no update)."""
    ops = net.ops
    for node in net.nodes[: net._hebbian_top + 1]:
        out = net.layer_forward(node, x, batch_stats=True)
        if node.rule is not None:
            if node.layer.kind == "conv":
                ops.conv2d_weight_sums(x, out, tuple(node.params["weight"].shape[2:]), node.stride)
            else:
                ops.linear_weight_sums(x, out)
        x = out


def forward_step(net: Network, x) -> None:
    """The forward pass of the Hebbian layers and those between them (batch-norm with batch statistics): the
    least a local rule can do, since it must see every response once."""
    for node in net.nodes[: net._hebbian_top + 1]:
        x = net.layer_forward(node, x, batch_stats=True)


class _DeviceEpoch:
    """A data set on one backend's device and the batches of one epoch, gathered on the device."""

    def __init__(self, ops: Ops, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
        self.ops, self.n, self.batch_size = ops, len(x), batch_size
        self.x = ops.asarray(x)
        self.y = ops.asarray(y, dtype="int64")
        perm = np.random.default_rng(seed + 1).permutation(self.n)
        self.perm = ops.asarray(perm, dtype="int64")

    def batches(self):
        for i in range(0, self.n, self.batch_size):
            idx = self.perm[i : i + self.batch_size]
            yield self.ops.take_rows(self.x, idx), self.ops.take_rows(self.y, idx)

    def warm_batches(self, steps: int):
        """``steps`` full batches, then one of the epoch's last (partial) size if it differs."""
        bs = min(self.batch_size, self.n)
        out = [(self.x[:bs], self.y[:bs])] * steps
        tail = self.n % self.batch_size
        if tail and self.n > self.batch_size:
            out.append((self.x[:tail], self.y[:tail]))
        return out


def _timed(ops: Ops, fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds) of ``fn``: the CPU time leaves out the time other processes
    took the cores, which on a shared machine moves the wall time by more than the changes measured."""
    ops.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    ops.synchronize()
    return time.perf_counter() - t0, time.process_time() - c0


def hebbian_epoch_fn(net: Network, data: _DeviceEpoch, check_every: int) -> Callable[[], None]:
    def epoch():
        for b, (xb, yb) in enumerate(data.batches(), 1):
            net.hebbian_step(xb, yb)
            if check_every and b % check_every == 0:
                net.check_finite(f"bench batch {b}")
        net.check_finite("the end of the bench epoch")

    return epoch


def forward_epoch_fn(net: Network, data: _DeviceEpoch) -> Callable[[], None]:
    def epoch():
        for xb, _ in data.batches():
            forward_step(net, xb)

    return epoch


def floor_epoch_fn(net: Network, data: _DeviceEpoch) -> Callable[[], None]:
    def epoch():
        for xb, _ in data.batches():
            floor_step(net, xb)

    return epoch


# ---------------------------------------------------------------------------- SGD (torch autograd)
class _TorchSync:
    """The ``synchronize`` of a torch device, shaped like an Ops for :func:`_timed`."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)


def torch_device_of(target_ops: Ops):
    """The torch device the SGD epoch of a backend runs on, or a reason string when none can."""
    try:
        import torch
    except ImportError as exc:
        return None, f"torch is not installed ({exc})"
    dev = str(target_ops.device)
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            return None, "torch sees no CUDA device"
        return torch.device(dev if ":" in dev else "cuda"), None
    return torch.device("cpu"), None


def sgd_epoch_fn(registry: Registry, device, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """(warm-up fn, epoch fn, sync) of one SGD epoch of the GGGGGG net on ``device``, data on the device."""
    import torch
    import torch.nn.functional as F

    from hebbcore.sgd import make_optimizer
    from hebbcore.torch_model import build_module

    spec = bench_spec("GGGGGG", registry, batch_size, seed)
    host = Network(spec, INPUT_SHAPE, N_CLASSES, registry.get("backend", "numpy")(), registry)
    torch.manual_seed(seed)
    module = build_module(host).to(device)
    module.train()
    cfg = spec.sgd
    opt = make_optimizer(cfg, [p for p in module.parameters() if p.requires_grad])
    xd, yd = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    perm = torch.from_numpy(np.random.default_rng(seed + 1).permutation(len(x))).to(device)

    def step(xb, yb):
        loss = F.cross_entropy(module(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def warm(steps: int):
        bs = min(batch_size, len(x))
        for _ in range(steps):
            step(xd[:bs], yd[:bs])
        tail = len(x) % batch_size
        if tail and len(x) > batch_size:
            step(xd[:tail], yd[:tail])

    def epoch():
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            step(xd[idx], yd[idx])

    return warm, epoch, _TorchSync(torch, device)


# ---------------------------------------------------------------------------- one target
def interleaved_rates(
    runs: dict[str, tuple[Callable[[], None], Any]], n: int, repeats: int, log: Callable[[str], None]
) -> dict[str, dict]:
    """Each epoch of ``runs`` (kind -> (epoch, what to synchronize)) on ``n`` images, the kinds interleaved
    ``repeats`` times: kind -> its fastest rate (:func:`_rate`)."""
    seconds: dict[str, list[float]] = {k: [] for k in runs}
    cpu_seconds: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(repeats):
        for kind, (fn, sync) in runs.items():
            wall, cpu = _timed(sync, fn)
            seconds[kind].append(wall)
            cpu_seconds[kind].append(cpu)
            log(f"{kind} epoch {r + 1}/{repeats}: {wall:.2f} s ({n / wall:.0f} images/s)")
    return {kind: _rate(n, s, cpu_seconds[kind]) for kind, s in seconds.items()}


def _rate(n: int, seconds: list[float], cpu_seconds: list[float]) -> dict:
    best = min(seconds)
    return {"seconds": best, "images_per_s": n / best, "all_seconds": seconds, "cpu_seconds": min(cpu_seconds)}


def bench_target(
    target: Target,
    registry: Registry,
    n_images: int,
    batch_size: int = 64,
    warmup: int = 3,
    repeats: int = 1,
    seed: int = 0,
    skip: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
    softhebb_images: int = 0,
    run_images: int = 0,
    dense_images: int = 0,
) -> dict:
    """Measure one backend/device; every failure to run is reported in the record, not raised.

    ``softhebb_images``: also time SoftHebb's network, hebbcore's step against a plain PyTorch one, on that
    many images (0: not). ``run_images``: also time a whole conv1 + probe run on that many images against
    its epochs and data loading (0: not). ``dense_images``: also time the networks of the dense-coefficient
    rules (SoftHebb, Krotov, Hebbian PCA) against their floors on that many images (0: not)."""
    rec: dict[str, Any] = {
        "backend": target.backend,
        "device": target.device,
        "n_images": n_images,
        "batch_size": batch_size,
    }
    try:
        ops = registry.get("backend", target.backend)(target.device)
    except HebbcoreError as exc:
        rec["error"] = str(exc)
        return rec
    rec["device"] = str(ops.device)
    x, y = random_data(n_images, seed)
    spec = bench_spec("HHHHHH", registry, batch_size, seed)
    net = Network(spec, INPUT_SHAPE, N_CLASSES, ops, registry)
    data = _DeviceEpoch(ops, x, y, batch_size, seed)
    runs: dict[str, tuple[Callable[[], None], Any]] = {}

    log(f"[{target.label}] warm-up")
    for xb, yb in data.warm_batches(warmup):
        net.hebbian_step(xb, yb)
    runs["hebbian"] = (hebbian_epoch_fn(net, data, spec.hebbian.check_every), ops)
    if "forward" not in skip:
        for xb, _ in data.warm_batches(warmup):
            forward_step(net, xb)
        runs["forward"] = (forward_epoch_fn(net, data), ops)
    if "floor" not in skip:
        for xb, _ in data.warm_batches(warmup):
            floor_step(net, xb)
        runs["floor"] = (floor_epoch_fn(net, data), ops)
    if "sgd" not in skip:
        dev, reason = torch_device_of(ops)
        if dev is None:
            rec["sgd"] = {"skipped": reason}
        else:
            warm, epoch, sync = sgd_epoch_fn(registry, dev, x, y, batch_size, seed)
            warm(warmup)
            runs["sgd"] = (epoch, sync)
            rec["sgd_device"] = str(dev)
    ops.synchronize()

    rec.update(interleaved_rates(runs, n_images, repeats, lambda s: log(f"[{target.label}] {s}")))

    if softhebb_images:
        from .bench_softhebb import softhebb_comparison

        rec["softhebb"] = softhebb_comparison(ops, registry, softhebb_images, repeats, warmup, seed, log)

    if dense_images:
        from .bench_dense import dense_rules_comparison

        rec["dense"] = dense_rules_comparison(ops, registry, dense_images, repeats, warmup, seed, log)

    if run_images:
        from .bench_run import run_overhead

        rec["run"] = run_overhead(target.backend, target.device, registry, run_images, seed)
        log(f"[{target.label}] whole run: {rec['run']['ratio']:.2f}x its epochs and data loading")

    if "memory" not in skip:
        xb, yb = data.x[:64], data.y[:64]
        peak, method = peak_step_memory(ops, lambda: net.hebbian_step(xb, yb))
        rec["peak_step_bytes"], rec["peak_step_method"], rec["peak_step_batch"] = peak, method, int(xb.shape[0])

    ratios: dict[str, float] = {}
    if "forward" in runs:
        ratios["hebbian_vs_forward"] = rec["hebbian"]["images_per_s"] / rec["forward"]["images_per_s"]
        if str(ops.device).startswith("cpu"):  # the same ratio by CPU time (on a GPU the host time means little)
            ratios["hebbian_vs_forward_cpu_time"] = rec["forward"]["cpu_seconds"] / rec["hebbian"]["cpu_seconds"]
    if "floor" in runs:
        ratios["hebbian_vs_floor"] = rec["hebbian"]["images_per_s"] / rec["floor"]["images_per_s"]
    if "sgd" in runs:
        ratios["hebbian_vs_sgd"] = rec["hebbian"]["images_per_s"] / rec["sgd"]["images_per_s"]
    rec["ratios"] = ratios
    checks: dict[str, bool] = {}
    if "hebbian_vs_forward" in ratios:
        checks["hebbian_ge_0.9x_forward"] = ratios["hebbian_vs_forward"] >= TARGET_HEBBIAN_VS_FLOOR
    if "hebbian_vs_floor" in ratios:
        checks["hebbian_ge_0.9x_floor"] = ratios["hebbian_vs_floor"] >= TARGET_HEBBIAN_VS_FLOOR
    if "hebbian_vs_sgd" in ratios:
        checks["hebbian_faster_than_sgd"] = ratios["hebbian_vs_sgd"] > 1.0
    if rec.get("peak_step_bytes") is not None:
        checks["peak_step_under_1GiB"] = rec["peak_step_bytes"] < TARGET_PEAK_BYTES
    if str(ops.device).startswith("cuda"):
        epoch_50k = DEFAULT_GPU_IMAGES / rec["hebbian"]["images_per_s"]
        rec["hebbian_cifar10_epoch_s"] = epoch_50k
        checks["cifar10_epoch_under_5s"] = epoch_50k < TARGET_GPU_EPOCH_S
    if "run" in rec:
        checks[f"run_within_{rec['run']['target']:g}x_epochs_and_loading"] = rec["run"]["target_met"]
    if "target_met" in rec.get("softhebb", {}):
        checks[f"softhebb_ge_{rec['softhebb']['target']:g}x_plain_pytorch"] = rec["softhebb"]["target_met"]
    for rule, d in rec.get("dense", {}).get("nets", {}).items():
        checks[f"{rule}_net_ge_{rec['dense']['target_vs_floor']:g}x_floor"] = d.get("target_met", False)
    rec["targets_met"] = checks
    return rec


# ---------------------------------------------------------------------------- the whole run
def run_bench(
    targets: list[Target],
    registry: Registry | None = None,
    n_images: int | None = None,
    batch_size: int = 64,
    warmup: int = 3,
    repeats: int = 1,
    seed: int = 0,
    skip: tuple[str, ...] = (),
    command: str | None = None,
    log: Callable[[str], None] = print,
    softhebb_images: int = 0,
    run_images: int = 0,
    dense_images: int = 0,
) -> dict:
    """Benchmark every target; returns the JSON-ready result (see the module docstring)."""
    registry = registry or default_registry()
    result: dict[str, Any] = {
        "command": command or "hebbcore.lab.bench.run_bench",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(targets),
        "versions": versions(),
        "settings": {
            "net": "paper_net (Amato et al. 2019), Hebbian HHHHHH / SGD GGGGGG",
            "teacher_competition": next(l for l in paper_net("HHHHHH") if l["name"] == "conv2")["hebbian"]["options"][
                "competition"
            ],
            "input_shape": list(INPUT_SHAPE),
            "n_classes": N_CLASSES,
            "batch_size": batch_size,
            "warmup_steps": warmup,
            "repeats": repeats,
            "seed": seed,
            "skip": list(skip),
            "n_images": n_images,
            "softhebb_images": softhebb_images,
            "run_images": run_images,
            "dense_images": dense_images,
        },
        "results": [],
    }
    for t in targets:
        n = n_images or (DEFAULT_GPU_IMAGES if str(t.device or "").startswith("cuda") else DEFAULT_CPU_IMAGES)
        result["results"].append(
            bench_target(
                t, registry, n, batch_size, warmup, repeats, seed, skip, log, softhebb_images, run_images, dense_images
            )
        )
    result["comparisons"] = compare(result["results"])
    with contextlib.suppress(OSError):
        result["machine"]["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def compare(records: list[dict]) -> dict:
    """Cross-backend ratios: numpy's Hebbian epoch against torch-CPU's (target: within 3x)."""
    by = {(r["backend"], str(r.get("device"))): r for r in records if "hebbian" in r}
    out: dict[str, Any] = {}
    np_rec, tc_rec = by.get(("numpy", "cpu")), by.get(("torch", "cpu"))
    if np_rec and tc_rec:
        slow = tc_rec["hebbian"]["images_per_s"] / np_rec["hebbian"]["images_per_s"]
        out["torch_cpu_over_numpy_hebbian"] = slow
        out["numpy_within_3x_of_torch_cpu"] = slow <= TARGET_NUMPY_VS_TORCH_CPU
    return out


def format_table(result: dict) -> str:
    head = (
        "backend",
        "device",
        "images",
        "hebbian img/s",
        "forward img/s",
        "floor img/s",
        "sgd img/s",
        "hebb/fwd",
        "(cpu time)",
        "hebb/floor",
        "hebb/sgd",
        "peak step MiB",
    )
    rows = [head]

    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in result["results"]:
        if "error" in r:
            rows.append((r["backend"], str(r["device"]), "-", "error (below)", "", "", "", "", "", "", "", ""))
            continue
        peak = r.get("peak_step_bytes")
        rows.append(
            (
                r["backend"],
                r["device"],
                str(r["n_images"]),
                num(r.get("hebbian", {}).get("images_per_s"), ".0f"),
                num(r.get("forward", {}).get("images_per_s"), ".0f"),
                num(r.get("floor", {}).get("images_per_s"), ".0f"),
                num(r.get("sgd", {}).get("images_per_s"), ".0f"),
                num(r["ratios"].get("hebbian_vs_forward"), ".2f"),
                num(r["ratios"].get("hebbian_vs_forward_cpu_time"), ".2f"),
                num(r["ratios"].get("hebbian_vs_floor"), ".2f"),
                num(r["ratios"].get("hebbian_vs_sgd"), ".2f"),
                num(None if peak is None else peak / (1 << 20), ".0f"),
            )
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in result["results"]:
        if "error" in r:
            lines.append(f"{r['backend']}:{r['device']} error: {r['error']}")
        if r.get("targets_met"):
            met = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["targets_met"].items())
            lines.append(f"{r['backend']}:{r['device']} targets: {met}")
        if r.get("run"):
            rr = r["run"]
            lines.append(
                f"{r['backend']}:{r['device']} whole conv1 + probe run ({rr['n_images']} images): "
                f"{rr['wall_s']:.1f} s, epochs {rr['epochs_s']:.1f} s + loading {rr['loading_s']:.1f} s: "
                f"{rr['ratio']:.2f}x (the process's one-off imports before it: {rr['startup_s']:.1f} s)"
            )
        if r.get("softhebb"):
            sh = r["softhebb"]
            lines.append(
                f"{r['backend']}:{r['device']} SoftHebb net (batch {sh['batch_size']}, {sh['n_images']} images): "
                f"hebbcore {sh['hebbcore']['images_per_s']:.1f} img/s, plain PyTorch ({sh['plain_device']}) "
                f"{sh['plain']['images_per_s']:.1f} img/s: {sh['ratio']:.2f}x"
            )
        for rule, d in r.get("dense", {}).get("nets", {}).items():
            if "error" in d:
                lines.append(f"{r['backend']}:{r['device']} {rule} net ({d['preset']}): error: {d['error']}")
                continue
            lines.append(
                f"{r['backend']}:{r['device']} {rule} net ({d['preset']}, batch {d['batch_size']}, "
                f"{d['n_images']} images): Hebbian {d['hebbian']['images_per_s']:.1f} img/s, forward-only "
                f"{d['forward']['images_per_s']:.1f}, floor {d['floor']['images_per_s']:.1f}: Hebbian / forward "
                f"{d['hebbian_vs_forward']:.2f}, Hebbian / floor {d['hebbian_vs_floor']:.2f}"
            )
        if r.get("hebbian_cifar10_epoch_s") is not None:
            lines.append(
                f"{r['backend']}:{r['device']} full CIFAR-10 Hebbian epoch (50,000 images): "
                f"{r['hebbian_cifar10_epoch_s']:.2f} s"
            )
    if any(r["backend"] == "numpy" for r in result["results"]):
        line = blas_line(result.get("machine", {}).get("numpy_blas", {}))
        if line:
            lines.append(line)
    if any(r["device"] == "cpu" for r in result["results"]) and "cpu_kernels" in result.get("machine", {}):
        lines.append(f"compiled CPU kernels (numpy, torch-cpu): {result['machine']['cpu_kernels']}")
    c = result.get("comparisons", {})
    if "torch_cpu_over_numpy_hebbian" in c:
        lines.append(
            f"Hebbian epoch, torch-cpu / numpy throughput: {c['torch_cpu_over_numpy_hebbian']:.2f} "
            f"(numpy within {TARGET_NUMPY_VS_TORCH_CPU:g}x of torch-cpu: "
            f"{'yes' if c['numpy_within_3x_of_torch_cpu'] else 'NO'})"
        )
    return "\n".join(lines)


def markdown_table(result: dict) -> str:
    """The table of :func:`format_table` as Markdown, for docs/benchmarks.md."""
    lines = [
        "| backend | device | images | Hebbian epoch img/s | forward-only img/s | floor img/s "
        "| SGD epoch img/s (torch device) | Hebbian / forward | the same by CPU time | Hebbian / floor "
        "| Hebbian / SGD | peak batch-64 step MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def num(v, fmt):
        return "–" if v is None else format(v, fmt)

    for r in result["results"]:
        if "error" in r:
            lines.append(f"| {r['backend']} | {r['device']} | – | error: {r['error']} | | | | | | | | |")
            continue
        peak = r.get("peak_step_bytes")
        sgd = r.get("sgd", {})
        sgd_s = num(sgd.get("images_per_s"), ".0f") + (f" ({r['sgd_device']})" if "sgd_device" in r else "")
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['n_images']} "
            f"| {num(r.get('hebbian', {}).get('images_per_s'), '.0f')} "
            f"| {num(r.get('forward', {}).get('images_per_s'), '.0f')} "
            f"| {num(r.get('floor', {}).get('images_per_s'), '.0f')} | {sgd_s} "
            f"| {num(r['ratios'].get('hebbian_vs_forward'), '.2f')} "
            f"| {num(r['ratios'].get('hebbian_vs_forward_cpu_time'), '.2f')} "
            f"| {num(r['ratios'].get('hebbian_vs_floor'), '.2f')} "
            f"| {num(r['ratios'].get('hebbian_vs_sgd'), '.2f')} "
            f"| {num(None if peak is None else peak / (1 << 20), '.0f')} |"
        )
    dense = [
        (r, rule, d)
        for r in result["results"]
        for rule, d in r.get("dense", {}).get("nets", {}).items()
        if "error" not in d
    ]
    if dense:
        lines += [
            "",
            "| backend | rule | preset | batch | Hebbian epoch img/s | forward-only img/s | floor img/s "
            "| Hebbian / forward | Hebbian / floor (target) |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r, rule, d in dense:
            target = f"≥ {r['dense']['target_vs_floor']:g}: {'met' if d['target_met'] else '**not met**'}"
            lines.append(
                f"| {r['backend']} | {rule} | {d['preset']} | {d['batch_size']} "
                f"| {d['hebbian']['images_per_s']:.0f} | {d['forward']['images_per_s']:.0f} "
                f"| {d['floor']['images_per_s']:.0f} | {d['hebbian_vs_forward']:.2f} "
                f"| {d['hebbian_vs_floor']:.2f} ({target}) |"
            )
    return "\n".join(lines)


def write_json(result: dict, path: str) -> None:
    from hebbcore.io import atomic_write_json

    d = os.path.dirname(path)
    if d:
        os.makedirs(d, exist_ok=True)
    atomic_write_json(path, result)


def dumps(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=False)


# ---------------------------------------------------------------------------- command line
def add_arguments(b) -> None:
    """The ``hebbcore bench`` options: time, on the paper's 6-layer net and random CIFAR-sized input, a
    Hebbian epoch, its floor (forward + one weight-correlation per layer), an SGD epoch (torch autograd) and
    the peak memory of a batch-64 Hebbian step; print a table and write JSON."""
    b.add_argument(
        "--backend",
        action="append",
        default=None,
        metavar="NAME[:DEVICE]",
        help="backend to time, repeatable or comma-separated, e.g. numpy, torch:cpu, torch:cuda, cupy "
        "(default: numpy and torch on the CPU)",
    )
    b.add_argument(
        "--device",
        default=None,
        help="device for every --backend given without one (default: cpu for numpy/torch, cuda for cupy)",
    )
    b.add_argument(
        "--images",
        type=int,
        default=None,
        help=f"images per epoch (default {DEFAULT_CPU_IMAGES} on the CPU, {DEFAULT_GPU_IMAGES} on CUDA)",
    )
    b.add_argument("--batch-size", type=int, default=64, help="batch size of every epoch (default 64)")
    b.add_argument("--warmup", type=int, default=3, help="warm-up steps before timing (default 3)")
    b.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="interleaved repeats of the three epochs; the fastest of each is reported (default 1)",
    )
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--skip", default="", help="comma list of measurements to skip: forward, floor, sgd, memory")
    b.add_argument(
        "--softhebb",
        type=int,
        default=0,
        metavar="N",
        help="also time SoftHebb's CIFAR-10 network on N images: hebbcore's step against a plain PyTorch one",
    )
    b.add_argument(
        "--run",
        type=int,
        default=0,
        metavar="N",
        help="also time a whole conv1 + probe run on N images against its epochs and data loading (target 1.3x)",
    )
    b.add_argument(
        "--dense",
        type=int,
        default=0,
        metavar="N",
        help="also time the networks of the dense-coefficient rules (SoftHebb, Krotov, Hebbian PCA) on N images "
        "(more for a net whose Hebbian epoch would take under 0.5 s) against their floors (target 0.9x)",
    )
    b.add_argument("--json", default="runs/bench.json", help="where to write the JSON (default runs/bench.json)")
    b.add_argument("--markdown", action="store_true", help="also print the table as Markdown")


def _command_of(args) -> str:
    """The command line that reproduces ``args`` (every option spelled out)."""
    parts = ["hebbcore", "bench"]
    for b in args.backend or []:
        parts += ["--backend", b]
    if args.device:
        parts += ["--device", args.device]
    if args.images is not None:
        parts += ["--images", str(args.images)]
    parts += [
        "--batch-size",
        str(args.batch_size),
        "--warmup",
        str(args.warmup),
        "--repeats",
        str(args.repeats),
        "--seed",
        str(args.seed),
    ]
    if args.skip:
        parts += ["--skip", args.skip]
    if args.softhebb:
        parts += ["--softhebb", str(args.softhebb)]
    if args.run:
        parts += ["--run", str(args.run)]
    if args.dense:
        parts += ["--dense", str(args.dense)]
    parts += ["--json", args.json] + (["--markdown"] if args.markdown else [])
    return " ".join(parts)


def cli_main(args, registry: Registry, argv: list[str] | None = None) -> int:
    skip = tuple(s.strip() for s in args.skip.split(",") if s.strip())
    bad = [s for s in skip if s not in ("forward", "floor", "sgd", "memory")]
    if (
        bad
        or args.batch_size < 1
        or (args.images is not None and args.images < 1)
        or args.repeats < 1
        or args.warmup < 0
        or args.softhebb < 0
        or args.run < 0
        or args.dense < 0
    ):
        from hebbcore.errors import SpecError

        raise SpecError([f"bench: bad arguments (skip {bad}, batch size, images, repeats >= 1, warmup >= 0)"])
    targets = parse_targets(args.backend, args.device)
    command = "hebbcore bench " + " ".join(argv) if argv is not None else _command_of(args)
    result = run_bench(
        targets,
        registry,
        args.images,
        args.batch_size,
        args.warmup,
        args.repeats,
        args.seed,
        skip,
        command=command,
        log=lambda s: print(s, file=sys.stderr, flush=True),
        softhebb_images=args.softhebb,
        run_images=args.run,
        dense_images=args.dense,
    )
    print(format_table(result))
    if args.markdown:
        print()
        print(markdown_table(result))
    write_json(result, args.json)
    print(f"-> {args.json}")
    return 1 if any("error" in r for r in result["results"]) else 0
