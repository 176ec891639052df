"""Where numpy's convolutions spend their time: the patch copies and the BLAS products, per layer of the paper's net.

    python benchmarks/conv_gemm.py [--repeats 9] [--net softhebb]
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/conv_gemm.py   # OpenBLAS's own kernels

For each conv layer of the paper's net (batch 64), the fastest of ``--repeats`` calls of: the patch copies of
``Ops.conv2d`` (its bounded chunks, no product), one ``matmul`` of the whole batch's patches with the kernels
(and its GFLOP/s), the whole ``NumpyOps.conv2d``, and torch's ``conv2d`` on the same input for comparison.
The first line names numpy's BLAS kernels and the ``OPENBLAS_*`` variables that chose them
(``hebbcore.lab.machine.numpy_blas``): OpenBLAS reads ``OPENBLAS_CORETYPE`` when numpy is first imported, so
compare kernels by running the script under each setting. ``--net softhebb`` times SoftHebb's CIFAR-10 network at
its batch of 10 instead, and adds the update's product (``Ops.conv2d_weight_sums``) and torch's weight gradient.
"""

from __future__ import annotations

import argparse

import numpy as np
from _steps import best_ms

#: (C, H, K, kernel) of conv1..conv4 of the paper's net on CIFAR input, batch 64
LAYERS = [(3, 32, 96, 5), (96, 14, 128, 3), (128, 12, 192, 3), (192, 5, 256, 3)]
#: the same for SoftHebb's CIFAR-10 network (experiments/presets/softhebb_cifar10.toml: padded inputs), batch 10
SOFTHEBB_LAYERS = [(3, 36, 96, 5), (96, 18, 384, 3), (384, 10, 1536, 3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--net", choices=("paper", "softhebb"), default="paper")
    args = ap.parse_args()
    from hebbcore.allocator import tune_malloc
    from hebbcore.lab.machine import blas_line, numpy_blas
    from hebbcore_backends.numpy_backend import NumpyOps

    tune_malloc()  # as hebbcore bench and run do
    ops = NumpyOps()
    try:
        import torch
    except ImportError:
        torch = None
    print(blas_line(numpy_blas()) or "numpy BLAS: not an OpenBLAS that names its kernels", "\n")
    if args.net == "softhebb":
        return softhebb(ops, torch, args.repeats)
    print(
        "| layer (C, H, K, kernel), batch 64 | patch copies ms | matmul ms | matmul GFLOP/s | numpy conv2d ms "
        "| torch conv2d ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    total = np.zeros(5)
    for c, h, k, ks in LAYERS:
        x = rng.standard_normal((64, h, h, c), dtype=np.float32).transpose(0, 3, 1, 2)  # channels-last, as in a step
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        ho = h - ks + 1
        xh = ops._channels_last(x)
        copies = best_ms(lambda: [None for _ in ops._patch_chunks(xh, ks, ks, 1, ho, ho)], args.repeats)
        cols = rng.standard_normal((64 * ho * ho, ks * ks * c), dtype=np.float32)
        wm = np.ascontiguousarray(w.transpose(2, 3, 1, 0)).reshape(-1, k)
        out = np.empty((cols.shape[0], k), np.float32)
        product = best_ms(lambda: np.matmul(cols, wm, out=out), args.repeats)
        conv = best_ms(lambda: ops.conv2d(x, w), args.repeats)
        tconv = float("nan")
        if torch is not None:
            tx, tw = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(w)
            with torch.no_grad():
                tconv = best_ms(lambda: torch.nn.functional.conv2d(tx, tw), args.repeats)
        gflop = 2 * cols.shape[0] * cols.shape[1] * k / 1e9
        total += [copies, product, 0, conv, tconv]
        print(
            f"| ({c}, {h}, {k}, {ks}) | {copies:.2f} | {product:.2f} | {gflop / product * 1e3:.0f} | {conv:.2f} "
            f"| {tconv:.2f} |"
        )
    print(f"| all four | {total[0]:.2f} | {total[1]:.2f} | | {total[3]:.2f} | {total[4]:.2f} |")


def softhebb(ops, torch, repeats: int) -> None:
    """Per layer of SoftHebb's network at batch 10: numpy's forward conv and weight sums against torch's."""
    print("| layer (C, H, K, kernel), batch 10 | numpy conv2d ms | numpy weight sums ms | torch conv2d ms "
          "| torch weight gradient ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|")
    rng = np.random.default_rng(0)
    total = np.zeros(4)
    for c, h, k, ks in SOFTHEBB_LAYERS:
        x = rng.standard_normal((10, h, h, c), dtype=np.float32).transpose(0, 3, 1, 2)
        w = rng.standard_normal((k, c, ks, ks), dtype=np.float32)
        ho = h - ks + 1
        g = rng.standard_normal((10, ho, ho, k), dtype=np.float32).transpose(0, 3, 1, 2)
        times = [
            best_ms(lambda: ops.conv2d(x, w), repeats),
            best_ms(lambda: ops.conv2d_weight_sums(x, g, (ks, ks)), repeats),
        ]
        if torch is not None:
            tx, tw, tg = (torch.from_numpy(np.ascontiguousarray(a)) for a in (x, w, g))
            with torch.no_grad():
                times.append(best_ms(lambda: torch.nn.functional.conv2d(tx, tw), repeats))
                times.append(best_ms(lambda: torch.nn.grad.conv2d_weight(tx, tw.shape, tg), repeats))
        else:
            times += [float("nan")] * 2
        total += times
        print(f"| ({c}, {h}, {k}, {ks}) | " + " | ".join(f"{t:.2f}" for t in times) + " |")
    print("| all three | " + " | ".join(f"{t:.2f}" for t in total) + " |")


if __name__ == "__main__":
    main()
