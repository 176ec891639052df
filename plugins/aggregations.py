"""Aggregations of the per-position updates of a shared kernel.

With ``Δw_p = η·c_p·d_p`` the update at one (sample, position) pair ``p``:

- ``weighted_mean`` (Amato et al. 2019, the paper's contribution): the
  ``c``-weighted average of the per-position steps,
  ``Δw = η · Σ_p c_p·d_p / Σ_p c_p``; a kernel with ``Σ_p c_p = 0`` is left
  unchanged. For 0/1 coefficients (WTA, teacher) this is the mean step over
  the positions the kernel won.
- ``mean``: ``η · Σ_p c_p·d_p / P`` over all ``P`` positions and samples.
- ``sum``: ``η · Σ_p c_p·d_p``.
"""
from hebbcore import hookimpl
from hebbcore.interfaces import Aggregation


class WeightedMean(Aggregation):
    name = "weighted_mean"

    def combine(self, ctx, direction_sum, coefficient_sum):
        active = coefficient_sum > 0
        safe = ctx.ops.where(active, coefficient_sum, 1.0)
        scale = active / safe  # 1/Σc where Σc > 0, else 0
        return direction_sum * ctx.per_kernel(scale)


class Mean(Aggregation):
    name = "mean"

    def combine(self, ctx, direction_sum, coefficient_sum):
        return direction_sum * (1.0 / ctx.n_positions)


class Sum(Aggregation):
    name = "sum"

    def combine(self, ctx, direction_sum, coefficient_sum):
        return direction_sum


@hookimpl
def hebbcore_register_aggregations():
    return [WeightedMean, Mean, Sum]
