"""Winner-takes-all competition (Amato et al., ICIAP 2019, Sec. 3).

At each sample and spatial position the kernel most similar to the input patch
(cosine similarity) wins, ``y = 1``; the others get ``y = 0``. The winner then
learns with ``Δw = η·(x − w)`` (``update = "decay"``, default) or ``η·x``.
"""

from __future__ import annotations

from hebbcore.interfaces import LearningRule, Winners

from .plain import UpdateOptions, decay_for


class WinnerTakesAll(LearningRule):
    name = "wta"
    Options = UpdateOptions
    coefficients = "binary"

    def post_synaptic(self, ctx):
        return Winners(ctx.ops.argmax(ctx.similarity, axis=1), int(ctx.dot.shape[1]))

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return decay_for(self.options.update, coefficient_sum)
