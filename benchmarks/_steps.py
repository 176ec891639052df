"""Timing helpers shared by the stand-alone benchmark scripts of this folder."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_ms(fn: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> float:
    """The fastest of ``repeats`` calls of ``fn`` (after one warm-up call), in ms; ``sync`` (a device
    synchronize) runs before each clock starts and inside each timed call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def alternated_steps(
    backend: str,
    steps: int,
    versions: dict[str, Callable[[], None]],
    restore: Callable[[], None],
    rounds: int = 4,
    device: str | None = "cpu",
) -> dict[str, float]:
    """Seconds of ``steps`` batch-64 Hebbian steps of ``HHHHHH`` per version, and of their floor (``"floor"``).

    ``versions`` maps a name to a function that installs that version; they are alternated ``rounds`` times in
    one process and the fastest round of each is kept; ``restore`` runs at the end, whatever happens.
    """
    from hebbcore.lab.bench import INPUT_SHAPE, N_CLASSES, bench_spec, floor_step, random_data
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry

    reg = default_registry()
    ops = reg.get("backend", backend)(device)
    net = Network(bench_spec("HHHHHH", reg, 64, 0), INPUT_SHAPE, N_CLASSES, ops, reg)
    x, y = random_data(64 * steps, 0)
    xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
    batches = [(xd[i : i + 64], yd[i : i + 64]) for i in range(0, len(x), 64)]
    best = {name: float("inf") for name in [*versions, "floor"]}
    try:
        for _ in range(rounds):
            for name, install in versions.items():
                install()
                net.hebbian_step(*batches[0])  # warm-up
                ops.synchronize()
                t = time.perf_counter()
                for xb, yb in batches:
                    net.hebbian_step(xb, yb)
                ops.synchronize()
                best[name] = min(best[name], time.perf_counter() - t)
            t = time.perf_counter()
            for xb, _ in batches:
                floor_step(net, xb)
            ops.synchronize()
            best["floor"] = min(best["floor"], time.perf_counter() - t)
    finally:
        restore()
    return best


def step_row(backend: str, best: dict[str, float], before: str, now: str) -> str:
    """A Markdown row: both versions' seconds, the floor's, and floor / Hebbian for each."""
    return (
        f"| {backend} | {best[before]:.3f} | {best[now]:.3f} | {best['floor']:.3f} | "
        f"{best['floor'] / best[before]:.3f} | {best['floor'] / best[now]:.3f} |"
    )
