"""Time the winners' patch sums against the dense one-hot correlation on the paper's conv layers.

    python benchmarks/winner_sums.py [--repeats 7] [--threads 1] [--steps 16]

A winner-takes-all ``y`` (WTA on conv1, the teacher's masked competition on
conv2-conv4) has one 1 per sample and position. Its Hebbian sums
``Σ_p y[p, k]·x_p`` are the conv weight-gradient of a one-hot, which costs
P·D·K multiply-adds as a matrix product (D = C·kh·kw patch length, K kernels),
but are only P·D additions: each position's patch added to its winner's row.
``Ops.conv2d_winner_sums`` does that (numpy: bounded patch chunks sorted by
winner, one sum per winner's block; torch: ``index_add_``), and rules return
``hebbcore.interfaces.Winners`` (the winners' indices) instead of a dense ``y``.

Prints the fastest of ``--repeats`` calls per layer: the dense correlation
(``conv2d_weight_sums`` of the one-hot, what the rules computed before) and the
winner sums, in ms. With ``--steps N``: N batch-64 Hebbian steps of the paper's
all-Hebbian net (``HHHHHH``, as ``hebbcore bench`` times it) with ``Winners``
expanded to the dense one-hot (before) and as they are (now), alternated in one
process, and the floor of the same batches (fastest of 4 rounds).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

# (C, H, K, kernel) of the paper's conv layers on a batch of 64 (input channels, input size, kernels, kernel size)
LAYERS = [(3, 32, 96, 5), (96, 14, 128, 3), (128, 12, 192, 3), (192, 5, 256, 3)]


def best_ms(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=0, help="also time N Hebbian steps of the paper's net")
    args = ap.parse_args()
    from hebbcore_backends.numpy_backend import NumpyOps

    backends = {"numpy": NumpyOps()}
    try:
        import torch

        from hebbcore_backends.torch_backend import TorchOps

        if args.threads:
            torch.set_num_threads(args.threads)
        backends["torch"] = TorchOps("cpu")
    except ImportError:
        pass
    rng = np.random.default_rng(0)
    cols = [f"{b} {v} ms" for b in backends for v in ("dense", "winners")]
    print("| layer (C, H, K, kernel), batch 64 | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for c, h, k, ks in LAYERS:
        x = rng.standard_normal((64, h, h, c)).astype(np.float32).transpose(0, 3, 1, 2)  # channels-last memory
        ho = h - ks + 1
        index = rng.integers(0, k, size=(64, ho, ho))
        row = []
        for ops in backends.values():
            xa, ia = ops.asarray(x), ops.asarray(index, dtype="int64")
            hot = ops.one_hot(ia, k)
            dense = ops.to_numpy(ops.conv2d_weight_sums(xa, hot, (ks, ks)))
            np.testing.assert_allclose(ops.to_numpy(ops.conv2d_winner_sums(xa, ia, k, (ks, ks))), dense,
                                       rtol=1e-4, atol=1e-3)
            row += [best_ms(lambda: ops.conv2d_weight_sums(xa, hot, (ks, ks)), args.repeats),
                    best_ms(lambda: ops.conv2d_winner_sums(xa, ia, k, (ks, ks)), args.repeats)]
        print(f"| ({c}, {h}, {k}, {ks}) | " + " | ".join(f"{v:.2f}" for v in row) + " |")
    if args.steps:
        print()
        print("| backend | Hebbian steps, dense y s | Hebbian steps, winners s | floor s | floor / Hebbian dense | "
              "floor / Hebbian winners |")
        print("|---|---:|---:|---:|---:|---:|")
        for name in backends:
            step_ab(name, args.steps)


def step_ab(backend: str, steps: int, rounds: int = 4) -> None:
    """Hebbian steps of ``HHHHHH`` with winners expanded to a dense ``y`` and as they are (alternated), and the floor."""
    from hebbcore.bench import INPUT_SHAPE, N_CLASSES, bench_spec, floor_step, random_data
    from hebbcore.interfaces import HebbianContext
    from hebbcore.network import Network
    from hebbcore.plugin_manager import default_registry

    reg = default_registry()
    ops = reg.get("backend", backend)("cpu")
    net = Network(bench_spec("HHHHHH", reg, 64, 0), INPUT_SHAPE, N_CLASSES, ops, reg)
    x, y = random_data(64 * steps, 0)
    xd, yd = ops.asarray(x), ops.asarray(y, dtype="int64")
    batches = [(xd[i:i + 64], yd[i:i + 64]) for i in range(0, len(x), 64)]
    now_corr, now_coef = HebbianContext.input_correlation, HebbianContext.coefficient_sum
    versions = {"dense": (lambda self, c: now_corr(self, self.dense(c)),
                          lambda self, c: now_coef(self, self.dense(c))),
                "winners": (now_corr, now_coef)}
    best = {"dense": float("inf"), "winners": float("inf"), "floor": float("inf")}
    try:
        for _ in range(rounds):
            for version, (corr, coef) in versions.items():
                HebbianContext.input_correlation, HebbianContext.coefficient_sum = corr, coef
                net.hebbian_step(*batches[0])  # warm-up
                t = time.perf_counter()
                for xb, yb in batches:
                    net.hebbian_step(xb, yb)
                best[version] = min(best[version], time.perf_counter() - t)
            t = time.perf_counter()
            for xb, _ in batches:
                floor_step(net, xb)
            best["floor"] = min(best["floor"], time.perf_counter() - t)
    finally:
        HebbianContext.input_correlation, HebbianContext.coefficient_sum = now_corr, now_coef
    print(f"| {backend} | {best['dense']:.3f} | {best['winners']:.3f} | {best['floor']:.3f} | "
          f"{best['floor'] / best['dense']:.3f} | {best['floor'] / best['winners']:.3f} |")


if __name__ == "__main__":
    main()
