"""A complete third-party rule plugin: Grossberg's instar rule with an activity threshold.

S. Grossberg, "Adaptive pattern classification and universal recoding: I. Parallel
development and coding of neural feature detectors", Biol. Cybern. 23:121–134, 1976.

    y_pk = max(0, cos(w_k, x_p) − θ)          (θ = options.threshold)
    Δw_k = η · Σ_p y_pk · (x_p − w_k)          (then aggregated as the spec says)

A kernel learns only from the patches it already resembles by more than θ, and
moves towards them.
"""

from dataclasses import dataclass

from hebbcore import hookimpl
from hebbcore.interfaces import LearningRule


@dataclass(frozen=True)
class InstarOptions:
    threshold: float = 0.1  # set in the spec: [layers.hebbian.options] threshold = 0.2


class ThresholdInstar(LearningRule):
    name = "instar"  # what a spec writes: rule = "instar"
    Options = InstarOptions

    @classmethod
    def check(cls, options, layer):
        if not -1.0 <= options.threshold < 1.0:
            return [f"options.threshold: expected -1 <= threshold < 1, got {options.threshold}"]
        return []

    def post_synaptic(self, ctx):
        # one coefficient per kernel, sample and position: shaped like ctx.dot
        return ctx.ops.relu(ctx.similarity - self.options.threshold)

    def update_sums(self, ctx, y):
        coef = ctx.coefficient_sum(y)  # Σ_p y_pk, shape (K,)
        hebb = ctx.input_correlation(y)  # Σ_p y_pk·x_p, shaped like w: one conv weight-gradient
        return hebb - ctx.per_kernel(coef) * ctx.w, coef  # Σ_p y_pk·(x_p − w_k), Σ_p y_pk


@hookimpl
def hebbcore_register_rules():
    return [ThresholdInstar]
