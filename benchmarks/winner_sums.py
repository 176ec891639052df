"""Time the winners' patch sums against the dense one-hot correlation on the paper's conv layers.

    python benchmarks/winner_sums.py [--backend numpy,torch:cpu] [--repeats 7] [--threads 1] [--steps 16]

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
winner sums, in ms, for each ``--backend`` (GPU ones synchronized). On CuPy,
whose backend still takes the dense product for winners, a third column times
the candidate :func:`cupy_scatter_winner_sums`; every variant is checked
against the dense sums first, and one that fails is reported as "failed".
With ``--steps N``: N batch-64 Hebbian steps of the paper's all-Hebbian net
(``HHHHHH``, as ``hebbcore bench`` times it) with ``Winners`` expanded to the
dense one-hot (before) and as they are (now), alternated in one process, and the
floor of the same batches (fastest of 4 rounds); on torch-CPU also the winners
with their patches copied by numpy whatever the thread count (a second row).
``HEBBCORE_MALLOC_TUNING=0`` runs it all with glibc's default malloc.
"""

from __future__ import annotations

import argparse

import numpy as np
from _steps import alternated_steps, best_ms, step_row

# (C, H, K, kernel) of the paper's conv layers on a batch of 64 (input channels, input size, kernels, kernel size)
LAYERS = [(3, 32, 96, 5), (96, 14, 128, 3), (128, 12, 192, 3), (192, 5, 256, 3)]


def cupy_scatter_winner_sums(ops, x, index, n_kernels, kernel_size, stride=1):
    """A candidate for ``CupyOps.conv2d_winner_sums``, measured here before it replaces the dense product there.

    Each chunk's patch rows (the default bounded im2col of :class:`hebbcore.ops.Ops`) are added to their
    winner's row by ``cupyx.scatter_add`` (atomic adds on the device): no sort, no host round trip, one kernel
    launch per chunk, and P·D additions instead of the dense correlation's P·D·K multiply-adds.
    """
    import cupyx

    xp = ops.xp
    n, c = x.shape[:2]
    kh, kw = kernel_size
    ho, wo = index.shape[1:]
    xh = ops._channels_last(x)
    out = xp.zeros((n_kernels, kh * kw * c), dtype=x.dtype)
    for s, e, cols in ops._patch_chunks(xh, kh, kw, stride, ho, wo):
        cupyx.scatter_add(out, index[s:e].reshape(-1), cols)
    return xp.ascontiguousarray(out.reshape(n_kernels, kh, kw, c).transpose(0, 3, 1, 2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backend",
        action="append",
        default=None,
        metavar="NAME[:DEVICE]",
        help="backends to time, repeatable or comma-separated, e.g. numpy, torch:cpu, torch:cuda, cupy "
        "(default: numpy and torch on the CPU)",
    )
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=0, help="also time N Hebbian steps of the paper's net")
    args = ap.parse_args()
    from hebbcore.allocator import tune_malloc
    from hebbcore.errors import HebbcoreError
    from hebbcore.lab.bench import parse_targets
    from hebbcore.plugin_manager import default_registry

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    tune_malloc()  # as hebbcore bench and hebbcore run do
    reg = default_registry()
    backends = {}
    for t in parse_targets(args.backend):
        try:
            backends[t.label] = reg.get("backend", t.backend)(t.device)
        except (HebbcoreError, ImportError) as exc:
            print(f"{t.label}: skipped ({' '.join(str(exc).split())})")
    rng = np.random.default_rng(0)
    variants = {
        label: ["dense", "winners"] + (["scatter-add"] if ops.name == "cupy" else []) for label, ops in backends.items()
    }
    cols = [f"{b} {v} ms" for b in backends for v in variants[b]]
    print("| layer (C, H, K, kernel), batch 64 | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for c, h, k, ks in LAYERS:
        x = rng.standard_normal((64, h, h, c)).astype(np.float32).transpose(0, 3, 1, 2)  # channels-last memory
        ho = h - ks + 1
        index = rng.integers(0, k, size=(64, ho, ho))
        row = []
        for label, ops in backends.items():
            xa, ia = ops.asarray(x), ops.asarray(index, dtype="int64")
            hot = ops.one_hot(ia, k)
            fns = {
                "dense": lambda: ops.conv2d_weight_sums(xa, hot, (ks, ks)),
                "winners": lambda: ops.conv2d_winner_sums(xa, ia, k, (ks, ks)),
                "scatter-add": lambda: cupy_scatter_winner_sums(ops, xa, ia, k, (ks, ks)),
            }
            dense = ops.to_numpy(fns["dense"]())
            for v in variants[label]:
                try:
                    np.testing.assert_allclose(ops.to_numpy(fns[v]()), dense, rtol=1e-4, atol=1e-3)
                    row.append(f"{best_ms(fns[v], args.repeats, ops.synchronize):.2f}")
                except Exception as exc:  # a candidate that fails or differs is reported, the table goes on
                    print(
                        f"{label} {v} on ({c}, {h}, {k}, {ks}): {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:300]}"
                    )
                    row.append("failed")
        print(f"| ({c}, {h}, {k}, {ks}) | " + " | ".join(row) + " |")
    if args.steps:
        print()
        print(
            "| backend | Hebbian steps, dense y s | Hebbian steps, winners s | floor s | floor / Hebbian dense | "
            "floor / Hebbian winners |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        for label, ops in backends.items():
            step_ab(label, ops.name, ops.device, args.steps)


def step_ab(label: str, backend: str, device: str, steps: int) -> None:
    """Hebbian steps of ``HHHHHH``, winners expanded to a dense ``y`` and as they are (alternated), and the floor."""
    from hebbcore.interfaces import HebbianContext

    now_corr, now_coef = HebbianContext.input_correlation, HebbianContext.coefficient_sum

    def install(corr, coef):
        def put():
            HebbianContext.input_correlation, HebbianContext.coefficient_sum = corr, coef

        return put

    dense = install(lambda self, c: now_corr(self, self.dense(c)), lambda self, c: now_coef(self, self.dense(c)))
    winners = install(now_corr, now_coef)
    versions = {"dense": dense, "winners": winners}
    if backend == "torch" and device == "cpu":  # also the winners with their patches copied by numpy
        from hebbcore_backends.torch_backend import TorchOps

        default = TorchOps.host_copy_max_threads

        def copy_by(limit, then):
            def put():
                TorchOps.host_copy_max_threads = limit
                then()

            return put

        versions = {
            "dense": copy_by(default, dense),
            "winners": copy_by(default, winners),
            "winners, numpy copy": copy_by(1 << 30, winners),
        }
        restore = copy_by(default, winners)
    else:
        restore = winners
    best = alternated_steps(backend, steps, versions, restore=restore, device=device)
    print(step_row(label, best, "dense", "winners"))
    if "winners, numpy copy" in best:
        print(step_row(f"{label}, numpy copy", best, "dense", "winners, numpy copy"))


if __name__ == "__main__":
    main()
