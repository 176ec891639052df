"""A third-party layer plugin: ``unit_norm``, divisive normalisation across channels.

Each position's vector of channels is divided by its Euclidean norm, ``x / sqrt(Σ_c x_c² + eps)``: a simple
form of lateral inhibition, so that the layer above sees the direction of each response, not its size.
"""

from dataclasses import dataclass

from hebbcore import hookimpl
from hebbcore.layers import Layer, LayerShapeError


@dataclass(frozen=True)
class UnitNormOptions:
    eps: float = 1e-6


class UnitNorm(Layer):
    name = "unit_norm"
    Options = UnitNormOptions
    fixed = True  # no parameters, nothing random: a frozen stack through it can be cached

    @classmethod
    def check(cls, options):
        return [] if options.eps > 0 else [f"eps: expected > 0, got {options.eps}"]

    def infer_shape(self, in_shape):
        if len(in_shape) not in (1, 3):
            raise LayerShapeError(f"a unit_norm layer needs (C, H, W) or (D,) input, got shape {in_shape}")
        return in_shape

    def forward(self, ops, params, x, ctx):
        sq = ops.sum(x * x, axis=1).reshape((x.shape[0], 1) + tuple(x.shape[2:]))
        return x / ops.sqrt(sq + self.options.eps)

    def torch_module(self):
        import torch

        eps = self.options.eps

        class UnitNormModule(torch.nn.Module):
            def forward(self, x):
                return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + eps)

        return UnitNormModule()


@hookimpl
def hebbcore_register_layers():
    return [UnitNorm]
