"""CuPy backend: the NumPy-API defaults of :class:`hebbcore.ops.Ops` on a CUDA device.

Convolutions and their weight sums are the default channels-last implicit
GEMM (one cuBLAS product per bounded chunk of patches, a larger chunk than on
the CPU so a batch is usually one product).
"""

from __future__ import annotations

import numpy as np

from hebbcore.errors import BackendUnavailable
from hebbcore.ops import Ops


def cupy_unavailable_reason() -> str | None:
    """None when cupy can run here, else why not (for skips and errors)."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken CUDA install
        return f"cupy is not installed ({exc.__class__.__name__}: {exc})"
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"cupy finds no CUDA device ({str(exc).splitlines()[0]})"
    if n < 1:
        return "cupy finds no CUDA device"
    return None


class CupyOps(Ops):
    name = "cupy"
    im2col_max_bytes = 256 << 20  # a batch of 64 CIFAR images is one chunk in every layer of the paper's net

    def __init__(self, device: str | None = None):
        reason = cupy_unavailable_reason()
        if reason:
            raise BackendUnavailable(f"backend 'cupy' is unavailable: {reason}")
        import cupy

        self.xp = cupy
        index = 0
        if device not in (None, "cuda"):
            if not str(device).startswith("cuda:"):
                raise BackendUnavailable(f"backend 'cupy' runs on CUDA devices ('cuda' or 'cuda:N'), not {device!r}")
            index = int(str(device).split(":", 1)[1])
        self._device = cupy.cuda.Device(index)
        self._device.use()
        super().__init__(f"cuda:{index}")

    def asarray(self, a, dtype: str = "float32"):
        return self.xp.asarray(np.asarray(a), dtype=dtype)

    def to_numpy(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def winner_counts(self, index, n):
        # cupy.bincount reads the device twice (its check for negative values, and its maximum to size the
        # output): two syncs per layer and step. A scatter-add of ones into n bins reads nothing back.
        import cupyx

        flat = index.reshape(-1)
        out = self.xp.zeros(n, dtype=self.xp.float32)
        cupyx.scatter_add(out, flat, self.xp.ones(flat.shape[0], dtype=self.xp.float32))
        return out

    def _channel_sq_sums(self, x):
        # The elementwise product and reduction it always was on the GPU, until einsum is timed there.
        return (x * x).sum(axis=1)

    def adds_winner_rows(self, x, kind):
        return False  # both winner sums are the one-hot product here (below)

    def conv2d_winner_sums(self, x, index, n_kernels, kernel_size, stride=1):
        # The default (sorted blocks, one sum per winning kernel) launches K small kernels per chunk and reads
        # the block bounds back to the host; until a scatter-add version is measured on a GPU, the winners
        # go through the one cuBLAS product of the dense correlation, as before.
        return self.conv2d_weight_sums(x, self.one_hot(index, n_kernels, 1, str(x.dtype)), kernel_size, stride)
