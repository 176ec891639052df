"""PyTorch backend (CPU or CUDA): every :class:`hebbcore.ops.Ops` method written natively.

Convolutions and their weight-gradients go to ATen (cuDNN / oneDNN), so a
Hebbian update costs what one backward pass of the layer costs.
"""
from __future__ import annotations

import numpy as np

from hebbcore.errors import BackendUnavailable
from hebbcore.ops import Ops


class TorchOps(Ops):
    name = "torch"
    xp = None

    def __init__(self, device: str | None = None):
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailable(f"backend 'torch' is unavailable: torch is not installed ({exc})") from None
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(f"backend 'torch' cannot use device {device!r}: no CUDA device is visible")
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise BackendUnavailable(f"backend 'torch': bad device {device!r} ({exc})") from None
        self.torch = torch
        self.F = torch.nn.functional
        self.dev = dev
        super().__init__(str(dev))

    # transfer
    def asarray(self, a, dtype: str = "float32"):
        if isinstance(a, self.torch.Tensor):
            return a.to(device=self.dev, dtype=getattr(self.torch, dtype))
        return self.torch.as_tensor(np.asarray(a, dtype=dtype), device=self.dev)

    def to_numpy(self, a) -> np.ndarray:
        return a.detach().cpu().numpy()

    def synchronize(self) -> None:
        if self.dev.type == "cuda":
            self.torch.cuda.synchronize(self.dev)

    # reductions
    def sum(self, a, axis=None):
        return a.sum() if axis is None else a.sum(dim=axis)

    def sqrt(self, a):
        return self.torch.sqrt(a)

    def relu(self, a):
        return self.torch.relu(a)

    def where(self, cond, a, b):
        return self.torch.where(cond, a, b)

    def isfinite_all(self, a) -> bool:
        return bool(self.torch.isfinite(a).all())

    def argmax(self, a, axis):
        return a.argmax(dim=axis)

    def one_hot_argmax(self, a, axis=1):
        idx = a.argmax(dim=axis, keepdim=True)
        return self.torch.zeros_like(a).scatter_(axis, idx, 1.0)

    def take_rows(self, table, index):
        return table[index]

    def broadcast_to(self, a, shape):
        return a.expand(shape)

    # layers
    def linear(self, x, w):
        return x @ w.T

    def linear_weight_sums(self, x, g):
        return g.T @ x

    def conv2d(self, x, w, stride=1):
        return self.F.conv2d(x, w, stride=stride)

    def conv2d_weight_sums(self, x, g, kernel_size, stride=1):
        k, c = g.shape[1], x.shape[1]
        return self.torch.nn.grad.conv2d_weight(x, (k, c, *kernel_size), g.contiguous(), stride=stride)

    def patch_sq_norms(self, x, kernel_size, stride=1):
        s = (x * x).sum(dim=1, keepdim=True)
        kh, kw = kernel_size
        return self.F.avg_pool2d(s, (kh, kw), stride=stride) * float(kh * kw)

    def max_pool2d(self, x, kernel_size, stride):
        return self.F.max_pool2d(x, kernel_size, stride)

    def batch_moments(self, x):
        dims = (0,) if x.ndim == 2 else (0, 2, 3)
        var, mean = self.torch.var_mean(x, dim=dims, unbiased=False)
        return mean, var

    def batch_norm(self, x, mean, var, gamma, beta, eps):
        scale = gamma * self.torch.rsqrt(var + eps)
        shift = beta - mean * scale
        return x * self._expand(scale, x.ndim) + self._expand(shift, x.ndim)

    # rule primitives
    def kernel_gram(self, y):
        ym = y if y.ndim == 2 else y.permute(0, 2, 3, 1).reshape(-1, y.shape[1])
        return ym.T @ ym

    def top_k_mask(self, a, k, axis=1):
        if k <= 4:  # k passes of argmax (first index on ties) beat a full sort
            mask, work = self.torch.zeros_like(a), a.clone()
            for _ in range(k):
                idx = work.argmax(dim=axis, keepdim=True)
                mask.scatter_(axis, idx, 1.0)
                work.scatter_(axis, idx, float("-inf"))
            return mask
        order = self.torch.argsort(a, dim=axis, descending=True, stable=True)
        return self.torch.zeros_like(a).scatter_(axis, order.narrow(axis, 0, k), 1.0)

    def softmax(self, a, axis=1):
        return self.torch.softmax(a, dim=axis)
