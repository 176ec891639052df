"""Layers that move or drop values: pooling, padding, flattening, dropout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hebbcore.layers import Layer, LayerShapeError


class _PassesSign(Layer):
    """A layer whose output is non-negative when its input is."""

    def __init__(self, options, in_shape, train="", below=None):
        self.input_nonnegative = below is not None and below.nonnegative
        super().__init__(options, in_shape, train, below)

    @property
    def nonnegative(self) -> bool:
        return self.input_nonnegative


def _needs_image(name: str, in_shape) -> None:
    if len(in_shape) != 3:
        raise LayerShapeError(f"a {name} layer needs (C, H, W) input, got shape {in_shape}")


@dataclass(frozen=True)
class PoolOptions:
    kernel_size: int = 0
    stride: int = 0  # 0 means kernel_size
    mode: Literal["max", "avg"] = "max"  # avg: the mean over each window


class Pool(_PassesSign):
    """Max or average pooling over ``kernel_size × kernel_size`` windows."""

    name = "pool"
    Options = PoolOptions
    required = ("kernel_size",)
    fixed = True

    @classmethod
    def check(cls, options: PoolOptions) -> list[str]:
        return [f"stride: expected >= 1, got {options.stride}"] if options.stride < 0 else []

    @property
    def stride(self) -> int:
        return self.options.stride or self.options.kernel_size

    def infer_shape(self, in_shape):
        _needs_image(self.name, in_shape)
        c, h, w = in_shape
        k, s = self.options.kernel_size, self.stride
        if k > h or k > w:
            raise LayerShapeError(f"kernel_size {k} is larger than its input {h}x{w}")
        return (c, (h - k) // s + 1, (w - k) // s + 1)

    def forward(self, ops, params, x, ctx):
        pool = ops.avg_pool2d if self.options.mode == "avg" else ops.max_pool2d
        return pool(x, self.options.kernel_size, self.stride)

    def torch_module(self):
        from torch import nn

        cls = nn.AvgPool2d if self.options.mode == "avg" else nn.MaxPool2d
        return cls(self.options.kernel_size, self.stride)


@dataclass(frozen=True)
class PadOptions:
    padding: int = 0  # values added on each side of H and W
    # zeros; reflect: mirror without repeating the edge (as SoftHebb pads); replicate: repeat the edge
    mode: Literal["zeros", "reflect", "replicate"] = "zeros"


class Pad(_PassesSign):
    """Pads H and W by ``padding`` on each side (zeros, mirrored or repeated values keep the input's sign)."""

    name = "pad"
    Options = PadOptions
    required = ("padding",)
    fixed = True

    def infer_shape(self, in_shape):
        _needs_image(self.name, in_shape)
        c, h, w = in_shape
        p = self.options.padding
        if self.options.mode == "reflect" and p >= min(h, w):
            raise LayerShapeError(f"reflect padding {p} needs an input larger than it, got {in_shape}")
        return (c, h + 2 * p, w + 2 * p)

    def forward(self, ops, params, x, ctx):
        return ops.pad2d(x, self.options.padding, self.options.mode)

    def torch_module(self):
        from torch import nn

        pad = {"reflect": nn.ReflectionPad2d, "replicate": nn.ReplicationPad2d}.get(self.options.mode, nn.ZeroPad2d)
        return pad(self.options.padding)


class Flatten(_PassesSign):
    """``(C, H, W)`` to ``(C·H·W,)``."""

    name = "flatten"
    fixed = True

    def infer_shape(self, in_shape):
        return (int(np.prod(in_shape)),)

    def forward(self, ops, params, x, ctx):
        return x.reshape(x.shape[0], -1)

    def torch_module(self):
        from torch import nn

        return nn.Flatten()


@dataclass(frozen=True)
class DropoutOptions:
    p: float = 0.5


class Dropout(_PassesSign):
    """Zeroes each value with probability ``p`` in the SGD phase; the identity elsewhere."""

    name = "dropout"
    Options = DropoutOptions

    @classmethod
    def check(cls, options: DropoutOptions) -> list[str]:
        return [] if 0 <= options.p < 1 else [f"p: expected 0 <= p < 1, got {options.p}"]

    def forward(self, ops, params, x, ctx):
        return x

    def torch_module(self):
        from torch import nn

        return nn.Dropout(self.options.p)
