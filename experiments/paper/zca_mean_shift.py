"""How much the authors' whitening differs from ours: ``W·x`` (theirs) against ``W·(x − μ)`` (``zca`` here).

The authors' torchvision of 2019 applied ``LinearTransformation(W)`` without a mean vector, so their whitened
images carry the constant ``W·μ`` (μ: the per-pixel mean of the standardised 40,000 training images). This
prints the size of that shift on 5×5 patches (conv1's view) next to the size of the whitened patches themselves;
the zca option ``center = false`` reproduces their version exactly.

    HEBBCORE_CIFAR10=/work/shared/data/cifar-10-batches-py python experiments/paper/zca_mean_shift.py
"""

from __future__ import annotations

import sys

import numpy as np

from hebbcore.errors import HebbcoreError
from hebbcore_plugins.data.cifar10 import Cifar10, Cifar10Options
from hebbcore_plugins.data.transforms import Normalize, NormalizeOptions, Zca, ZcaOptions


def patch_norms(a: np.ndarray, k: int = 5, step: int = 3) -> np.ndarray:
    """L2 norms of k×k patches (every ``step`` pixels) of images ``a`` (N, C, H, W)."""
    h, w = a.shape[-2:]
    return np.stack(
        [
            np.sqrt((a[..., i : i + k, j : j + k] ** 2).sum(axis=(-3, -2, -1)))
            for i in range(0, h - k + 1, step)
            for j in range(0, w - k + 1, step)
        ]
    )


def main() -> None:
    # the specs' pipeline: the 40,000 training images, per-channel standardised, the cached ZCA fit (eps 0.1)
    data = Normalize().apply(Cifar10().load(Cifar10Options(n_val=-1, n_test=-1), seed=0), NormalizeOptions())
    x = data.train.x
    mu, w = Zca().fitted(x, ZcaOptions(eps=0.1))
    flat = x.reshape(len(x), -1)
    shift = (mu @ w).reshape(1, 3, 32, 32)
    whitened = ((flat[:2000] - mu) @ w).reshape(-1, 3, 32, 32)
    print(
        f"per-pixel mean of the standardised images: max |μ| {np.abs(mu).max():.3f}, rms {np.sqrt((mu**2).mean()):.3f}"
    )
    print(f"5x5 patch norm of the whitened images (2000 images): median {np.median(patch_norms(whitened)):.3f}")
    sn = patch_norms(shift)
    print(f"5x5 patch norm of the shift W·μ: median {np.median(sn):.3f}, max {sn.max():.3f}")


if __name__ == "__main__":
    try:
        main()
    except HebbcoreError as exc:  # e.g. CIFAR-10 not found: one line, no traceback
        sys.exit(f"error: {exc}")
