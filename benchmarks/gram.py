"""Which Gram matrix torch's CPU ``Ops.lower_gram_product`` should compute: the lower triangle's blocks by
matmul (MKL) or the whole ``G`` as oneDNN's 1x1 weight-gradient.

    python benchmarks/gram.py                       # torch's threads as the environment sets them
    OMP_NUM_THREADS=1 python benchmarks/gram.py

Times ``lower_gram_product(y, w)`` (Sanger's and Hebbian PCA's decay ``Σ_{j≤k} G_kj w_j``) both ways, alternated
in one process, on channels-last responses of the shapes the Hebbian PCA net has at batch 64 and of wider
layers at batch 10, and prints the fastest of ``--repeats`` per way with their ratio. The backend takes oneDNN's
from :attr:`TorchOps.gram_conv_min_batch` samples up; the ratio column is what that choice rests on.
"""

from __future__ import annotations

import argparse
import time

#: (batch, kernels K, output side, kernel size D = C·kh·kw): the HPCA net's conv1-conv4 at its batch of 64,
#: then wider layers (SoftHebb's widths) at batch 10.
SHAPES = [(64, 96, 28, 75), (64, 128, 12, 864), (64, 192, 10, 1152), (64, 256, 3, 1728)]
SHAPES += [(10, 96, 32, 75), (10, 384, 16, 864), (10, 1536, 8, 3456)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="the first shape only (the tests' setting)")
    args = ap.parse_args()
    import numpy as np
    import torch

    from hebbcore.plugin_manager import default_registry

    ops = default_registry().get("backend", "torch")("cpu")
    cls = type(ops)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)\n")
    print("| y (N, K, H, W) | blocks by matmul ms | oneDNN weight-gradient ms | blocks / oneDNN |")
    print("|---|---:|---:|---:|")
    rng = np.random.default_rng(0)
    default = cls.gram_conv_min_batch
    try:
        for n, k, side, d in SHAPES[:1] if args.quick else SHAPES:
            y = torch.relu(torch.from_numpy(rng.standard_normal((n, k, side, side), dtype=np.float32)))
            y = y.contiguous(memory_format=torch.channels_last)
            w = torch.from_numpy(rng.standard_normal((k, d), dtype=np.float32))
            best = {}
            ways = {"blocks": n + 1, "onednn": 0}  # the smallest batch oneDNN's way takes
            for _ in range(args.repeats):
                for way, min_batch in ways.items():
                    cls.gram_conv_min_batch = min_batch
                    ops.lower_gram_product(y, w)  # warm
                    t = time.perf_counter()
                    ops.lower_gram_product(y, w)
                    best[way] = min(best.get(way, float("inf")), time.perf_counter() - t)
            b, o = best["blocks"] * 1e3, best["onednn"] * 1e3
            print(f"| ({n}, {k}, {side}, {side}) | {b:.2f} | {o:.2f} | {b / o:.2f} |")
    finally:
        cls.gram_conv_min_batch = default


if __name__ == "__main__":
    main()
