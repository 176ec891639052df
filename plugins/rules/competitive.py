"""Winner-takes-all competition (Amato et al., ICIAP 2019, Sec. 3).

At each sample and spatial position the kernel most similar to the input patch
(cosine similarity) wins, ``y = 1``; the others get ``y = 0``. The winner then
learns with ``Δw = η·(x − w)`` (``update = "decay"``, default) or ``η·x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hebbcore.interfaces import LearningRule, Winners

from .plain import Update, decay_for


@dataclass(frozen=True)
class WtaOptions:
    """``update``: ``"decay"`` (Δw = η·y·(x − w)) or ``"hebb"``; ``ties``: on an exact tie for the largest
    similarity, the lowest kernel index wins (``"lowest"``, every backend alike) or every tied kernel learns
    (``"all"``, as Lagani's HebbianPCA/neurolab code does)."""

    update: Update = "decay"
    ties: Literal["lowest", "all"] = "lowest"


class WinnerTakesAll(LearningRule):
    name = "wta"
    Options = WtaOptions
    coefficients = "binary"

    def post_synaptic(self, ctx):
        if self.options.ties == "all":  # every kernel at the maximum wins: a dense 0/1 coefficient
            s = ctx.similarity
            return ctx.ops.where(s >= ctx.ops.amax(s, axis=1), s * 0.0 + 1.0, s * 0.0)
        return Winners(ctx.most_similar(), ctx.dot_shape[1])

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return decay_for(self.options.update, coefficient_sum)
