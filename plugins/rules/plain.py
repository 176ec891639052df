"""Plain Hebb and Hebb with weight decay, driven by the layer's own activation.

``y`` is the layer's activation: the cosine similarity of kernel and patch,
clamped at 0.

- ``hebb``:  ``Δw = η·y·x``
- ``decay``: ``Δw = η·y·(x − w)`` (Amato et al., ICIAP 2019, Eq. 3)
"""

from __future__ import annotations

from typing import Literal

from hebbcore.interfaces import LearningRule

#: Δw = η·y·(x − w) or η·y·x (a spec option, checked at load as a Literal).
Update = Literal["decay", "hebb"]


def decay_for(update: str, coefficient_sum):
    """The ``decay_sum`` of a rule with an ``update`` option: ``Σ_p c_p`` for ``"decay"``, none for ``"hebb"``."""
    return coefficient_sum if update == "decay" else None


class Hebb(LearningRule):
    name = "hebb"

    def post_synaptic(self, ctx):
        return ctx.ops.relu(ctx.similarity)

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return None  # Δw_p = η·y_p·x_p: no decay term


class Decay(LearningRule):
    name = "decay"

    def post_synaptic(self, ctx):
        return ctx.ops.relu(ctx.similarity)  # the default update_terms is Hebb with decay
