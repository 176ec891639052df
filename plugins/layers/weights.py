"""The layers with weights: a convolution and a dense layer, Hebbian or trained by SGD."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hebbcore.layers import LayerShapeError, WeightLayer

Response = Literal["auto", "cosine", "linear"]
Init = Literal["uniform", "normal"]


def _weight_checks(options) -> list[str]:
    return [] if options.init_scale > 0 else [f"init_scale: expected > 0, got {options.init_scale}"]


@dataclass(frozen=True)
class ConvOptions:
    out_channels: int = 0
    kernel_size: int = 0
    stride: int = 0  # 0 means 1
    response: Response = "auto"
    init: Init = "uniform"
    init_scale: float = 1.0


class Conv(WeightLayer):
    """A 2-d convolution without padding (a ``pad`` layer below pads): ``K`` kernels of ``C × k × k``."""

    name = "conv"
    Options = ConvOptions
    required = ("out_channels", "kernel_size")
    kind = "conv"

    @classmethod
    def check(cls, options: ConvOptions) -> list[str]:
        problems = _weight_checks(options)
        if options.stride < 0:
            problems.append(f"stride: expected >= 1 (0, the default, means 1), got {options.stride}")
        return problems

    @property
    def stride(self) -> int:
        return self.options.stride or 1

    def infer_shape(self, in_shape):
        if len(in_shape) != 3:
            raise LayerShapeError(f"a conv layer needs (C, H, W) input, got shape {in_shape}")
        _, h, w = in_shape
        k, s = self.options.kernel_size, self.stride
        if k > h or k > w:
            raise LayerShapeError(f"kernel_size {k} is larger than its input {h}x{w}")
        return (self.options.out_channels, (h - k) // s + 1, (w - k) // s + 1)

    @property
    def weight_shape(self):
        k = self.options.kernel_size
        return (self.options.out_channels, self.in_shape[0], k, k)

    def dot(self, ops, w, x):
        return ops.conv2d(x, w, self.stride)

    def norms(self, ops, w, x):
        xn = ops.sqrt(ops.patch_sq_norms(x, tuple(w.shape[2:]), self.stride))  # a convolution of x², no patches
        wn = ops.kernel_norms(w).reshape(1, -1, 1, 1)
        return wn, xn

    def torch_module(self):
        from torch import nn

        o = self.options
        return nn.Conv2d(self.in_shape[0], o.out_channels, o.kernel_size, stride=self.stride, bias=self.has_bias)


@dataclass(frozen=True)
class LinearOptions:
    out_features: int = 0
    response: Response = "auto"
    init: Init = "uniform"
    init_scale: float = 1.0


class Linear(WeightLayer):
    """A dense layer ``(K, D)`` on flat input."""

    name = "linear"
    Options = LinearOptions
    required = ("out_features",)
    kind = "linear"

    @classmethod
    def check(cls, options: LinearOptions) -> list[str]:
        return _weight_checks(options)

    def infer_shape(self, in_shape):
        if len(in_shape) != 1:
            raise LayerShapeError(
                f"a linear layer needs flat input; add a 'flatten' layer before it (input shape {in_shape})"
            )
        return (self.options.out_features,)

    @property
    def weight_shape(self):
        return (self.options.out_features, self.in_shape[0])

    def dot(self, ops, w, x):
        return ops.linear(x, w)

    def norms(self, ops, w, x):
        return ops.kernel_norms(w).reshape(1, -1), ops.sqrt(ops.sum(x * x, axis=1)).reshape(-1, 1)

    def torch_module(self):
        from torch import nn

        return nn.Linear(self.in_shape[0], self.options.out_features, bias=self.has_bias)
