"""k-winners-take-all: the ``k`` kernels most similar to a patch learn, the rest do not.

The k-WTA generalisation of competitive learning (D. E. Rumelhart and D. Zipser,
"Feature discovery by competitive learning", Cognitive Science 9:75–112, 1985;
R. C. O'Reilly, "Six principles for biologically based computational models of
cortical cognition", Trends Cogn. Sci. 2(11):455–462, 1998, for k-WTA inhibition).
At every sample and position the ``k`` kernels with the largest cosine similarity
get ``y = 1`` (lower kernel index first on exact ties), the others ``y = 0``; with
``k = 1`` this is the ``wta`` rule. The winners learn with

    Δw_k = η · y_pk · (x_p − w_k)      (update = "decay", default)
    Δw_k = η · y_pk · x_p              (update = "hebb")

Sums: ``Σ_p y_pk x_p`` (one conv weight-gradient) and ``Σ_p y_pk``; with
``aggregation = "weighted_mean"`` each winner moves to the mean of the patches it won.
"""

from __future__ import annotations

from dataclasses import dataclass

from hebbcore.interfaces import LearningRule

from .plain import Update, decay_for


@dataclass(frozen=True)
class KwtaOptions:
    """``k``: winners per position (1 ≤ k ≤ kernels); ``update``: ``"decay"`` or ``"hebb"``."""

    k: int = 2
    update: Update = "decay"


class KWinnersTakeAll(LearningRule):
    name = "kwta"
    Options = KwtaOptions
    coefficients = "binary"

    @classmethod
    def check(cls, options, layer):
        problems = []
        if not 1 <= options.k <= layer.out_features:
            problems.append(
                f"options.k: expected 1 <= k <= {layer.out_features} (the layer's kernels), got {options.k}"
            )
        return problems

    def post_synaptic(self, ctx):
        return ctx.ops.top_k_mask(ctx.similarity, self.options.k, axis=1)

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return decay_for(self.options.update, coefficient_sum)
