"""Krotov–Hopfield learning: global competition by ranking, anti-Hebbian for the k-th unit.

D. Krotov and J. J. Hopfield, "Unsupervised learning by competing hidden units",
PNAS 116(16):7723–7731, 2019 (Eqs. 2–3, and the authors' reference code).

With the ``p``-norm synaptic product ``⟨w, x⟩_p = Σ_i sign(w_i)|w_i|^{p−1} x_i``, the
current of kernel ``k`` at sample/position ``p`` is ``I_pk = ⟨w_k, x_p⟩_p`` (the plain
dot product for ``p = 2``). The kernels are ranked by their current at each
position; the strongest gets ``g = 1``, the ``k``-th strongest ``g = −Δ`` (``delta``),
all others ``g = 0``, and

    D_k  = Σ_p g_pk · (R^p · x_p − I_pk · w_k)
    Δw_k = η · D_k / max|D|          (``normalize``, as in the authors' code; else D_k)

So ``c_p = g_pk``, ``d_p = (R^p x_p − I_pk w_k) / max|D|``. Sums: ``Σ_p g_pk x_p``, two
inputs (or patches) per position added to their kernels' rows (at most two ``g`` are non-zero:
no K-wide weight-gradient), and ``Σ_p g_pk I_pk``; the currents for ``p ≠ 2`` are one
forward convolution with the kernels ``sign(w)|w|^{p−1}``. The weights converge to
``‖w_k‖_p = R``. ``g`` is signed and the update already normalised: use
``aggregation = "sum"``.

Data-parallel training sums the rule's sums over the processes; with
``normalize`` each process divides by its own maximum first, so the step differs
from a single process's (``normalize = false`` is exact).
"""

from __future__ import annotations

from dataclasses import dataclass

from hebbcore.interfaces import LearningRule

from .activation import decayed, lebesgue_currents, pass_sums, positive

_SUMS = "krotov.sums"  # ctx.cache key: the coefficients and their sums, from post_synaptic's pass


@dataclass(frozen=True)
class KrotovOptions:
    """``p`` ≥ 2: the norm; ``k`` ≥ 2: rank of the anti-Hebbian unit; ``delta`` ≥ 0: its strength."""

    p: float = 2.0
    k: int = 2
    delta: float = 0.4
    radius: float = 1.0
    normalize: bool = True


class KrotovHopfield(LearningRule):
    name = "krotov"
    Options = KrotovOptions
    coefficients = "signed"
    aggregation = "sum"

    @classmethod
    def check(cls, options, layer):
        problems = positive(options.radius, "radius")
        if options.p < 2:
            problems.append(f"options.p: expected >= 2, got {options.p}")
        if not 2 <= options.k <= layer.out_features:
            problems.append(
                f"options.k: expected 2 <= k <= {layer.out_features} (the layer's kernels), got {options.k}"
            )
        if options.delta < 0:
            problems.append(f"options.delta: expected >= 0, got {options.delta}")
        return problems

    def currents(self, ctx):
        """``I_pk = ⟨w_k, x_p⟩_p`` shaped like ``ctx.dot``."""
        return lebesgue_currents(ctx, self.options.p)

    def post_synaptic(self, ctx):
        # 1 at rank 1, -delta at rank k (lower index first on ties), with the update's two sums and the two ranks'
        # indices from the same pass
        o = self.options
        y, y_sum, yu_sum, ranks = ctx.ops.ranked_coefficients(
            self.currents(ctx), o.k, o.delta, ctx.reads_coefficient_sum
        )
        ctx.cache[_SUMS] = (y, y_sum, yu_sum, ranks)
        return y

    def update_terms(self, ctx, y):
        o = self.options
        y_sum, yu_sum = pass_sums(ctx, _SUMS, y, self.currents(ctx))
        scale = o.radius**o.p  # R^p = 1 unless a radius is set
        cached = ctx.cache.get(_SUMS)
        if cached is not None and cached[0] is y:  # two inputs per position, not a K-wide product
            hebb = ctx.winner_correlation(cached[3], (scale, -o.delta * scale), None if scale != 1.0 else y)
        else:
            hebb = ctx.input_correlation(y)
            if scale != 1.0:  # no pass over the weight-sized sums otherwise
                hebb = hebb * scale
        return decayed(ctx, hebb, yu_sum, o.normalize), y_sum
