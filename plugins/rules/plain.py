"""Plain Hebb and Hebb with weight decay, driven by the layer's own activation.

``y`` is the layer's activation: the cosine similarity of kernel and patch,
clamped at 0.

- ``hebb``:  ``Δw = η·y·x``
- ``decay``: ``Δw = η·y·(x − w)`` (Amato et al., ICIAP 2019, Eq. 3)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hebbcore.interfaces import HebbianContext, LearningRule

#: Δw = η·y·(x − w) or η·y·x (a spec option, checked at load as a Literal).
Update = Literal["decay", "hebb"]


def hebb_sums(ctx: HebbianContext, y):
    """``(Σ_p y_p·x_p, Σ_p y_p)``: the sums of plain Hebb, ``d_p = x_p``."""
    return ctx.input_correlation(y), ctx.coefficient_sum(y)


def decay_sums(ctx: HebbianContext, y):
    """``(Σ_p y_p·(x_p − w), Σ_p y_p)``: the sums of Hebb with decay, ``d_p = x_p − w``."""
    coef = ctx.coefficient_sum(y)
    return ctx.input_correlation(y) - ctx.per_kernel(coef) * ctx.w, coef


def update_sums_for(update: str):
    return decay_sums if update == "decay" else hebb_sums


class Hebb(LearningRule):
    name = "hebb"

    def post_synaptic(self, ctx):
        return ctx.ops.relu(ctx.similarity)

    def update_sums(self, ctx, y):
        return hebb_sums(ctx, y)


class Decay(LearningRule):
    name = "decay"

    def post_synaptic(self, ctx):
        return ctx.ops.relu(ctx.similarity)

    def update_sums(self, ctx, y):
        return decay_sums(ctx, y)


@dataclass(frozen=True)
class UpdateOptions:
    """``update``: ``"decay"`` (Δw = η·y·(x − w)) or ``"hebb"`` (Δw = η·y·x)."""

    update: Update = "decay"
