"""Layers that act on each value or channel: ReLU, SoftHebb's triangle, batch normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hebbcore.layers import Layer


@dataclass(frozen=True)
class ReLUOptions:
    power: float = 1.0  # max(0, x) ** power: Krotov and Hopfield's rectified power readout (their n, e.g. 4.5)


class ReLU(Layer):
    """``max(0, x) ** power``; with ``power = 1`` the identity when its input is already non-negative (a cosine
    layer's, a ReLU's)."""

    name = "relu"
    Options = ReLUOptions
    fixed = True

    def __init__(self, options, in_shape, train="", below=None):
        #: The input is already >= 0 and the power 1: nothing to compute.
        self.identity = below is not None and below.nonnegative and options.power == 1.0
        super().__init__(options, in_shape, train, below)

    @classmethod
    def check(cls, options: ReLUOptions) -> list[str]:
        return [] if options.power > 0 else [f"power: expected > 0, got {options.power}"]

    @property
    def nonnegative(self) -> bool:
        return True

    def forward(self, ops, params, x, ctx):
        if self.identity:
            return x
        y = ops.relu(x)
        return ops.power(y, self.options.power)

    def torch_module(self):
        from torch import nn

        if self.options.power == 1.0:
            return nn.ReLU()
        from .torch_modules import PowerReLU

        return PowerReLU(self.options.power)


@dataclass(frozen=True)
class TriangleOptions:
    power: float = 1.0


class Triangle(Layer):
    """``max(0, x − mean over channels) ** power``: the "triangle" of Coates et al. (2011) that SoftHebb uses."""

    name = "triangle"
    Options = TriangleOptions
    fixed = True

    @classmethod
    def check(cls, options: TriangleOptions) -> list[str]:
        return [] if options.power > 0 else [f"power: expected > 0, got {options.power}"]

    @property
    def nonnegative(self) -> bool:
        return True

    def forward(self, ops, params, x, ctx):
        mean = ops.sum(x, axis=1).reshape((x.shape[0], 1) + tuple(x.shape[2:])) * (1.0 / x.shape[1])
        y = ops.relu(x - mean)
        return ops.power(y, self.options.power)

    def torch_module(self):
        from .torch_modules import TriangleModule

        return TriangleModule(self.options.power)


@dataclass(frozen=True)
class BatchNormOptions:
    eps: float = 1e-5
    momentum: float = 0.1


class BatchNorm(Layer):
    """Batch normalisation over the channels (``(C, H, W)`` input) or features (``(D,)``), with ``weight``,
    ``bias`` and running statistics as torch's ``BatchNorm1d/2d``.

    ``train``: ``"sgd"`` or ``"frozen"``; left out, it trains with the SGD phase when the layer with weights
    below it does, and also when that layer is the last Hebbian one and an SGD layer lies above, in a spec with
    both phases (the Hebbian phase never runs it: it would stay the identity); the resolved spec says which.
    The Hebbian phase normalises with the batch's statistics and updates the running ones (synchronised over the
    processes of a data-parallel run), except in a ``frozen`` one, which keeps its statistics in both phases;
    inference uses the running ones.
    """

    name = "batchnorm"
    Options = BatchNormOptions
    train_modes = ("sgd", "frozen")
    running_stats = True

    @classmethod
    def check(cls, options: BatchNormOptions) -> list[str]:
        problems = [] if options.eps > 0 else [f"eps: expected > 0, got {options.eps}"]
        if not 0 <= options.momentum <= 1:
            problems.append(f"momentum: expected 0 <= momentum <= 1, got {options.momentum}")
        return problems

    def parameter_count(self) -> int:
        return 4 * self.in_shape[0]

    def init_params(self, ops, rng):
        c = self.in_shape[0]
        return {
            "weight": ops.asarray(np.ones(c)),
            "bias": ops.asarray(np.zeros(c)),
            "running_mean": ops.asarray(np.zeros(c)),
            "running_var": ops.asarray(np.ones(c)),
        }

    def forward(self, ops, params, x, ctx):
        if not ctx.batch_stats:
            mean, var = params["running_mean"], params["running_var"]
        else:
            mean, var = ops.batch_moments(x)
            n = x.shape[0] * (1 if x.ndim == 2 else x.shape[2] * x.shape[3])
            if ctx.reducer is not None:  # synchronised batch-norm over the processes
                counts = ctx.reducer(ops.asarray([n]))
                total = counts.reshape(())
                mean_all = ctx.reducer(mean * n) / total
                var = ctx.reducer((var + mean * mean) * n) / total - mean_all * mean_all
                mean, n = mean_all, int(ops.to_numpy(counts)[0])
            m = self.options.momentum
            params["running_mean"] = (1 - m) * params["running_mean"] + m * mean
            params["running_var"] = (1 - m) * params["running_var"] + m * var * (n / max(n - 1, 1))  # unbiased
        return ops.batch_norm(x, mean, var, params["weight"], params["bias"], self.options.eps)

    def torch_module(self):
        from torch import nn

        cls = nn.BatchNorm2d if len(self.in_shape) == 3 else nn.BatchNorm1d
        return cls(self.in_shape[0], eps=self.options.eps, momentum=self.options.momentum)
