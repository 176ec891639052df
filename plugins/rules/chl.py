"""Contrastive Hebbian Learning (CHL), in the form one layer without feedback allows.

J. R. Movellan, "Contrastive Hebbian learning in the continuous Hopfield model",
Connectionist Models: Proc. 1990 Summer School, 10–17; X. Xie and H. S. Seung,
"Equivalence of backpropagation and contrastive Hebbian learning in a layered
network", Neural Computation 15(2):441–454, 2003.

CHL runs the network twice, a *free* phase (the network settles on its own) and
a *clamped* phase (the outputs are held at the target), and learns

    Δw = η · (y⁺ x⁺ᵀ − y⁻ x⁻ᵀ)      (+: clamped, −: free)

Here every layer learns on its own from the input the layers below hand it, with
no feedback from above, so the layer's input is the same in both phases
(``x⁺ = x⁻ = x``) and:

- free phase: ``y⁻`` is the layer's own response (``free = "cosine"``: its clamped
  cosine similarity, what hebbcore passes on; ``"dot"``: ``w·x``);
- clamped phase: ``y⁺ = t``, the teacher's target: ``t_k = 1`` for the kernels of
  the label's group (class ``c`` owns kernels ``[c·g, (c+1)·g)``, ``g`` =
  ``groups_per_class``), else 0, at every position.

Per position ``c_p = t_p − y⁻_p`` and ``d_p = x_p``, i.e.

    Δw_k = η · Σ_p (t_pk − y⁻_pk) · x_p

which, honestly stated, is the delta (LMS / Widrow–Hoff) rule: CHL reduces to it
in a single layer without feedback. It needs labels, so it is a rule for the
classifier (or a label-driven layer), not for hidden feature layers. Sums: one
conv weight-gradient. ``c`` is signed: use ``aggregation = "mean"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hebbcore.interfaces import LearningRule

from .teacher import group_table


@dataclass(frozen=True)
class ChlOptions:
    """``groups_per_class``: kernels per class (layer size = classes × groups); ``free``: ``"cosine"`` or ``"dot"``."""

    groups_per_class: int = 1
    free: Literal["cosine", "dot"] = "cosine"


class ContrastiveHebbian(LearningRule):
    name = "chl"
    Options = ChlOptions
    coefficients = "signed"
    aggregation = "mean"
    needs_labels = True

    @classmethod
    def check(cls, options, layer):
        problems = []
        if options.groups_per_class < 1:
            problems.append(f"options.groups_per_class: expected >= 1, got {options.groups_per_class}")
        elif layer.n_classes * options.groups_per_class != layer.out_features:
            problems.append(
                f"chl needs {layer.n_classes} classes x {options.groups_per_class} = "
                f"{layer.n_classes * options.groups_per_class} kernels, "
                f"but the layer has {layer.out_features}"
            )
        return problems

    def targets(self, ctx):
        """The clamped phase ``t``, shaped like ``ctx.dot``."""
        n, g, k = self.layer.n_classes, self.options.groups_per_class, self.layer.out_features
        table = ctx.ops.constant(("teacher.group", n, g, k), lambda: group_table(n, g, k))
        t = ctx.expand_per_sample(ctx.ops.take_rows(table, ctx.labels))
        return ctx.ops.broadcast_to(t, ctx.dot_shape)

    def post_synaptic(self, ctx):
        if ctx.labels is None:
            raise ValueError("the 'chl' rule needs labels (its clamped phase is the target)")
        free = ctx.ops.relu(ctx.similarity) if self.options.free == "cosine" else ctx.dot
        return self.targets(ctx) - free

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return None  # d_p = x_p
