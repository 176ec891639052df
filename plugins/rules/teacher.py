"""Supervised Hebbian learning with a teacher signal (Amato et al., ICIAP 2019, Sec. 3).

The teacher imposes ``y`` from the label. Kernels are split into one group of
``groups_per_class`` kernels per class (class ``c`` owns kernels
``[c·g, (c+1)·g)``) followed by ``common`` kernels: for a sample of class ``c``
the kernels of group ``c`` and every common kernel get ``y = 1``, all others
``y = 0``. With ``groups_per_class = 1, common = 0`` this is the paper's Hebbian
classifier. ``competition = "wta"`` lets only the most similar kernel of the
label's group win at each position (common kernels still always get 1).
``competition = "masked_wta"`` is the competition of the authors' code: the
teacher only masks a winner-takes-all, so at each position exactly one kernel
wins, the most similar among the label's group and the common kernels. Without
competition every kernel of a group moves to the same class mean and the group
collapses to one feature; the masked competition keeps the kernels distinct.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from hebbcore.interfaces import LearningRule, Winners

from .plain import Update, decay_for


@dataclass(frozen=True)
class TeacherOptions:
    groups_per_class: int = 1
    common: int = 0
    competition: Literal["none", "wta", "masked_wta"] = "none"
    update: Update = "decay"


def group_table(n_classes: int, groups_per_class: int, n_kernels: int) -> np.ndarray:
    """``t[c, k] = 1`` where kernel ``k`` belongs to class ``c``'s group ``[c·g, (c+1)·g)``."""
    table = np.zeros((n_classes, n_kernels), dtype=np.float32)
    for c in range(n_classes):
        table[c, c * groups_per_class : (c + 1) * groups_per_class] = 1.0
    return table


def common_row(n_classes: int, groups_per_class: int, n_kernels: int) -> np.ndarray:
    """1 for the common kernels after the class groups."""
    row = np.zeros((1, n_kernels), dtype=np.float32)
    row[0, n_classes * groups_per_class :] = 1.0
    return row


class Teacher(LearningRule):
    name = "teacher"
    Options = TeacherOptions
    coefficients = "binary"
    needs_labels = True

    @classmethod
    def check(cls, options, layer):
        problems = []
        if options.groups_per_class < 1:
            problems.append(f"options.groups_per_class: expected >= 1, got {options.groups_per_class}")
        if options.common < 0:
            problems.append(f"options.common: expected >= 0, got {options.common}")
        need = layer.n_classes * options.groups_per_class + options.common
        if need != layer.out_features:
            problems.append(
                f"teacher groups need {layer.n_classes} classes x {options.groups_per_class} + "
                f"{options.common} common = {need} kernels, but the layer has {layer.out_features}"
            )
        return problems

    def _on(self, ops):
        """The class-group table ``(n_classes, K)`` and the common-kernel row ``(1, K)`` on ``ops``'s device."""
        n, g, k = self.layer.n_classes, self.options.groups_per_class, self.layer.out_features
        return (
            ops.constant(("teacher.group", n, g, k), lambda: group_table(n, g, k)),
            ops.constant(("teacher.common", n, g, k), lambda: common_row(n, g, k)),
        )

    def post_synaptic(self, ctx):
        if ctx.labels is None:
            raise ValueError("the 'teacher' rule needs labels")
        ops = ctx.ops
        group, common = self._on(ops)
        rows = ops.take_rows(group, ctx.labels)  # (N, K)
        if self.options.competition == "masked_wta":
            return Winners(ctx.most_similar(rows + common > 0), ctx.dot_shape[1])
        allowed = ctx.expand_per_sample(rows)  # (N, K[, 1, 1])
        always = ctx.expand_per_sample(common)
        if self.options.competition == "wta":
            masked = ops.where(allowed > 0, ctx.similarity, -2.0)
            return ops.one_hot_argmax(masked, axis=1) * allowed + always
        return ops.broadcast_to(allowed + always, ctx.dot_shape)

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return decay_for(self.options.update, coefficient_sum)
