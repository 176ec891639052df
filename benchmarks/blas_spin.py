"""Why splitting numpy's element-wise passes over threads gains nothing inside a step: BLAS's spinning workers.

    python benchmarks/blas_spin.py                            # BLAS with its default threads
    OPENBLAS_NUM_THREADS=1 python benchmarks/blas_spin.py     # BLAS on one thread

Times the cosine of ``Ops.cosine`` on conv1's response at batch 64 (64×96×28×28), computed whole and split in
two halves over two threads, alone and right after a 9216×864 · 864×128 matrix product (conv2's size). After
a product, OpenBLAS's worker threads spin on the other cores for a while, so a second Python thread finds no
free core. Fastest of 15 each, in ms.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def main() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((9216, 864), dtype=np.float32), rng.standard_normal((864, 128), dtype=np.float32)
    dot = rng.standard_normal((64, 96, 28, 28), dtype=np.float32)
    w_norm, x_norm = rng.random((1, 96, 1, 1), dtype=np.float32), rng.random((64, 1, 28, 28), dtype=np.float32)
    pool = ThreadPoolExecutor(1)

    def part(s, e, den):  # the steps of Ops.cosine on samples s:e
        d = den[s:e]
        np.multiply(w_norm, x_norm[s:e], out=d)
        d += 1e-8
        np.divide(dot[s:e], d, out=d)

    def whole():
        part(0, 64, np.empty_like(dot))

    def halves():
        den = np.empty_like(dot)
        f = pool.submit(part, 32, 64, den)
        part(0, 32, den)
        f.result()

    runs = {"one thread": whole, "two threads, halves": halves}
    best = {}
    for after_product in (False, True):  # every "alone" timing before the first product
        for name, fn in runs.items():
            t_best = float("inf")
            for _ in range(15):
                if after_product:
                    a @ b
                t = time.perf_counter()
                fn()
                t_best = min(t_best, time.perf_counter() - t)
            best[name, after_product] = t_best
    print("| cosine of conv1's response | alone ms | right after a matrix product ms |")
    print("|---|---:|---:|")
    for name in runs:
        print(f"| {name} | {best[name, False] * 1e3:.2f} | {best[name, True] * 1e3:.2f} |")


if __name__ == "__main__":
    main()
