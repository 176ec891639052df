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

import numpy as np

from _steps import alternated_steps, best_ms, step_row

# (C, H, K, kernel) of the paper's conv layers on a batch of 64 (input channels, input size, kernels, kernel size)
LAYERS = [(3, 32, 96, 5), (96, 14, 128, 3), (128, 12, 192, 3), (192, 5, 256, 3)]


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


def step_ab(backend: str, steps: int) -> None:
    """Hebbian steps of ``HHHHHH`` with winners expanded to a dense ``y`` and as they are (alternated), and the floor."""
    from hebbcore.interfaces import HebbianContext

    now_corr, now_coef = HebbianContext.input_correlation, HebbianContext.coefficient_sum

    def install(corr, coef):
        def put():
            HebbianContext.input_correlation, HebbianContext.coefficient_sum = corr, coef
        return put

    dense = install(lambda self, c: now_corr(self, self.dense(c)), lambda self, c: now_coef(self, self.dense(c)))
    winners = install(now_corr, now_coef)
    best = alternated_steps(backend, steps, {"dense": dense, "winners": winners}, restore=winners)
    print(step_row(backend, best, "dense", "winners"))


if __name__ == "__main__":
    main()
