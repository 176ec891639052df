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

The threshold is the rule's declared state (``theta``, and ``fresh``: 1 before the
first step), advanced once per Hebbian step *before* it is used and checkpointed
with the weights:

    m_k = mean_p y_pk²   (over the batch's samples and positions)
    θ_k ← m_k on the first step, else θ_k ← (1 − τ)·θ_k + τ·m_k   (τ = ``tau``)

``c`` is signed: use ``aggregation = "mean"`` (or ``"sum"``). Under data-parallel
training ``m`` is summed over the processes, so every process holds the threshold one
process would. The rule does not bound ``‖w‖`` by itself: a large ``lr`` with
``activation = "relu"`` diverges, which the NaN check reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hebbcore.interfaces import LearningRule

from .activation import Activation, activation


@dataclass(frozen=True)
class BcmOptions:
    """``activation``: ``"relu"``, ``"linear"`` or ``"cosine"``; ``tau`` in (0, 1]: the threshold's averaging rate."""

    activation: Activation = "relu"
    tau: float = 0.1


class BCM(LearningRule):
    name = "bcm"
    Options = BcmOptions
    coefficients = "signed"
    aggregation = "mean"

    @classmethod
    def check(cls, options, layer):
        problems = []
        if not 0 < options.tau <= 1:
            problems.append(f"options.tau: expected 0 < tau <= 1, got {options.tau}")
        return problems

    def init_state(self, ops):
        return {"theta": ops.asarray(np.zeros(self.layer.out_features)), "fresh": ops.asarray(np.ones(1))}

    def _response(self, ctx):
        if "bcm.y" not in ctx.cache:
            ctx.cache["bcm.y"] = activation(ctx, self.options.activation)
        return ctx.cache["bcm.y"]

    def next_state(self, ctx, state):
        y = self._response(ctx)
        m = ctx.reduce(ctx.coefficient_sum(y * y)) * (1.0 / ctx.n_positions)
        tau = self.options.tau
        theta = ctx.ops.where(state["fresh"] > 0, m, state["theta"] * (1.0 - tau) + m * tau)
        return {"theta": theta, "fresh": state["fresh"] * 0.0}

    def post_synaptic(self, ctx):
        y = self._response(ctx)
        theta = ctx.expand_per_sample(ctx.state["theta"].reshape(1, -1))
        return y * (y - theta)

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return None  # d_p = x_p
