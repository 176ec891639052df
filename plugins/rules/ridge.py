"""Ridge regression onto the labels: a closed-form classifier, exact and local.

The least-squares readout of the features a layer sees, learned without backpropagation: each synapse needs
only its own input and the teacher signal. The rule's state holds the sufficient statistics of every sample
seen so far (summed over the processes of a data-parallel run),

    G = Σ_n x_n x_nᵀ  (D × D),   H = Σ_n x_n t_nᵀ  (D × K),   n,

with ``t_n`` the one-hot target of sample ``n``; each step moves the weights towards the ridge solution of
the statistics seen so far,

    W* = argmin_W Σ_n ‖Wx_n − t_n‖² + λ‖W‖²  with  λ = l2 · tr(G)/D  (scale-free),
    Δw = η · (W* − w),

so with ``lr = 1`` the weights after an epoch are the exact ridge solution over the epoch's images (a
second epoch sees the same images again and leaves it unchanged). ``aggregation = "sum"``. For a dense
classifier layer (``out_features`` = the number of classes) with ``response = "linear"``; each step solves a
``D × D`` system, so keep ``D`` to a few thousand (pool the features below).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hebbcore.interfaces import LearningRule

#: Largest input size: the statistics hold D² + D·K floats and each step solves a D × D system.
MAX_FEATURES = 8192


@dataclass(frozen=True)
class RidgeOptions:
    """``l2``: the ridge penalty relative to the mean feature energy, ``λ = l2 · tr(G)/D``."""

    l2: float = 1e-3


class Ridge(LearningRule):
    name = "ridge"
    Options = RidgeOptions
    coefficients = "signed"
    aggregation = "sum"
    aggregation_only = True  # the step is W* − w itself: any other aggregation would rescale it
    needs_labels = True

    @classmethod
    def check(cls, options, layer):
        problems = [] if options.l2 > 0 else [f"options.l2: expected > 0, got {options.l2}"]
        if layer.kind != "linear":
            problems.append(f"rule: 'ridge' is a dense classifier's rule, got a {layer.kind} layer")
        elif layer.response == "cosine":
            problems.append("rule: 'ridge' fits a linear readout w·x; give the layer response = 'linear'")
        elif layer.out_features != layer.n_classes:
            problems.append(
                f"rule: 'ridge' needs one output per class ({layer.n_classes}), the layer has {layer.out_features}"
            )
        if layer.in_features > MAX_FEATURES:
            problems.append(
                f"rule: 'ridge' solves a D x D system every step; D = {layer.in_features} is over {MAX_FEATURES} "
                f"(pool the features below)"
            )
        return problems

    def init_state(self, ops):
        d, k = self.layer.in_features, self.layer.out_features
        return {
            "gram": ops.asarray(np.zeros((d, d))),
            "cross": ops.asarray(np.zeros((d, k))),
            "count": ops.asarray(np.zeros(1)),
        }

    def post_synaptic(self, ctx):
        return self._targets(ctx)

    def _targets(self, ctx):
        """The teacher signal t, one-hot, made once per step (the state and the sums both read it)."""
        if "ridge.t" not in ctx.cache:
            ctx.cache["ridge.t"] = ctx.ops.one_hot(ctx.labels, self.layer.out_features)
        return ctx.cache["ridge.t"]

    def next_state(self, ctx, state):
        ops, x = ctx.ops, ctx.x
        t = self._targets(ctx)
        n = ops.asarray([x.shape[0]])
        return {
            "gram": state["gram"] + ctx.reduce(ops.linear(x.T, x.T)),
            "cross": state["cross"] + ctx.reduce(ops.linear(x.T, t.T)),
            "count": state["count"] + ctx.reduce(n),
        }

    def update_sums(self, ctx, y):
        ops, st = ctx.ops, ctx.state
        d = self.layer.in_features
        eye = ops.constant(("ridge.eye", d), lambda: np.eye(d))
        inv_n = 1.0 / st["count"].reshape(())
        gram = st["gram"] * inv_n
        penalty = ops.sum(gram * eye) * (self.options.l2 / d)
        solution = ops.solve(gram + eye * penalty, st["cross"] * inv_n)  # (D, K)
        return solution.T - ctx.w, ctx.aggregated_sum(y)
