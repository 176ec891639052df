"""Aggregations of the per-position updates of a shared kernel.

With ``Δw_p = η·c_p·d_p`` the update at one (sample, position) pair ``p``:

- ``weighted_mean`` (Amato et al. 2019, the paper's contribution, and the authors' code):
  the weighted average of the per-position updates with the coefficients as weights,
  ``Δw = Σ_p c_p·Δw_p / Σ_p |c_p| = η · Σ_p c_p²·d_p / Σ_p |c_p|``; a kernel with
  ``Σ_p |c_p| = 0`` is left unchanged. For 0/1 coefficients (WTA, teacher) this is the
  mean step over the positions the kernel won. It needs non-negative coefficients and
  directions ``d_p`` that do not depend on them (plain Hebb, decay, WTA, k-WTA, teacher).
- ``direction_mean``: the ``c``-weighted average of the directions,
  ``η · Σ_p c_p·d_p / Σ_p c_p`` (hebbcore's ``weighted_mean`` before 2026-12; equal to the
  paper's for 0/1 coefficients); non-negative coefficients only.
- ``mean``: ``η · Σ_p c_p·d_p / P`` over all ``P`` positions and samples.
- ``sum``: ``η · Σ_p c_p·d_p``.
"""

from hebbcore import hookimpl
from hebbcore.interfaces import Aggregation, Winners


def _inverse_where_positive(ctx, weight_sum):
    active = weight_sum > 0
    return active / ctx.ops.where(active, weight_sum, 1.0)  # 1/Σ where Σ > 0, else 0 (a kernel left unchanged)


def _needs_nonnegative(name, rule_cls):
    if rule_cls.coefficients == "signed":
        return [
            f"{name!r} divides by the sum of the coefficients, but rule {rule_cls.name!r} has signed "
            f"coefficients; write aggregation = {rule_cls.aggregation!r} (its authors' update)"
        ]
    return []


class WeightedMean(Aggregation):
    name = "weighted_mean"

    @classmethod
    def check(cls, rule_cls):
        problems = _needs_nonnegative(cls.name, rule_cls)
        if not problems and not rule_cls.separable:
            problems.append(
                f"'weighted_mean' weighs each position's update by its coefficient, but rule "
                f"{rule_cls.name!r}'s update direction depends on the coefficient itself; write "
                f"aggregation = {rule_cls.aggregation!r} (its authors' update)"
            )
        return problems

    def weighting(self, ctx, coefficient):
        if isinstance(coefficient, Winners):  # 0/1: c² = |c| = c
            return coefficient, coefficient
        return coefficient * coefficient, abs(coefficient)  # Σ c²·d (d does not depend on c) over Σ |c|

    def kernel_scale(self, ctx, coefficient_sum):
        return _inverse_where_positive(ctx, coefficient_sum)


class DirectionMean(Aggregation):
    name = "direction_mean"

    @classmethod
    def check(cls, rule_cls):
        return _needs_nonnegative(cls.name, rule_cls)

    def kernel_scale(self, ctx, coefficient_sum):
        return _inverse_where_positive(ctx, coefficient_sum)


class Mean(Aggregation):
    name = "mean"
    reads_coefficient_sum = False

    def kernel_scale(self, ctx, coefficient_sum):
        return 1.0 / ctx.n_positions


class Sum(Aggregation):
    name = "sum"
    reads_coefficient_sum = False

    def kernel_scale(self, ctx, coefficient_sum):
        return 1.0


@hookimpl
def hebbcore_register_aggregations():
    return [WeightedMean, DirectionMean, Mean, Sum]
