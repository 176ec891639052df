"""BCM: Hebbian above a sliding threshold, anti-Hebbian below it.

E. L. Bienenstock, L. N. Cooper and P. W. Munro, "Theory for the development of
neuron selectivity: orientation specificity and binocular interaction in visual
cortex", J. Neuroscience 2(1):32–48, 1982; in the form of N. Intrator and
L. N. Cooper, "Objective function formulation of the BCM theory of visual cortical
plasticity", Neural Networks 5(1):3–17, 1992, where the threshold is the running
second moment of the response, ``θ_k = E[y_k²]``.

With ``y_pk = f(w_k·x_p)`` (``activation``, default ``"relu"``):

    Δw_k = η · Σ_p y_pk · (y_pk − θ_k) · x_p

so ``c_p = y_pk (y_pk − θ_k)`` and ``d_p = x_p``: one conv weight-gradient.

The threshold is per-layer state kept in the rule instance and advanced once per
call of ``post_synaptic`` (one Hebbian step), *before* it is used:

    m_k = mean_p y_pk²   (over the batch's samples and positions)
    θ_k ← m_k on the first step, else θ_k ← (1 − τ)·θ_k + τ·m_k   (τ = ``tau``)

``c`` is signed: use ``aggregation = "mean"`` (or ``"sum"``). Under data-parallel
training each process averages ``y²`` over its own shard of the batch. The rule does
not bound ``‖w‖`` by itself: a large ``lr`` with ``activation = "relu"`` diverges,
which the NaN check reports.
"""
from __future__ import annotations

from dataclasses import dataclass

from hebbcore.interfaces import LearningRule

from .activation import activation, check_activation
from .plain import hebb_sums


@dataclass(frozen=True)
class BcmOptions:
    """``activation``: ``"relu"``, ``"linear"`` or ``"cosine"``; ``tau`` in (0, 1]: the threshold's averaging rate."""

    activation: str = "relu"
    tau: float = 0.1


class BCM(LearningRule):
    name = "bcm"
    Options = BcmOptions

    @classmethod
    def check(cls, options, layer):
        problems = check_activation(options.activation)
        if not 0 < options.tau <= 1:
            problems.append(f"options.tau: expected 0 < tau <= 1, got {options.tau}")
        return problems

    def __init__(self, options, layer):
        super().__init__(options, layer)
        self.theta = None  # (K,) on the backend, after the first step

    def post_synaptic(self, ctx):
        y = activation(ctx, self.options.activation)
        m = ctx.coefficient_sum(y * y) * (1.0 / ctx.n_positions)
        tau = self.options.tau
        self.theta = m if self.theta is None else self.theta * (1.0 - tau) + m * tau
        theta = ctx.expand_per_sample(self.theta.reshape(1, -1))
        return y * (y - theta)

    def update_sums(self, ctx, y):
        return hebb_sums(ctx, y)
