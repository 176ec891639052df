"""SoftHebb: soft winner-take-all with anti-Hebbian losers and an adaptive per-neuron rate.

A. Journé, H. Garcia Rodriguez, Q. Guo and T. Moraitis, "Hebbian deep learning
without feedback", ICLR 2023 (arXiv:2209.11883), building on T. Moraitis et al.,
"SoftHebb: Bayesian inference in unsupervised Hebbian soft winner-take-all
networks", Neuromorph. Comput. Eng. 2:044017, 2022.

With ``u_k = w_k·x`` (``response = "dot"``) or the cosine similarity (``"cosine"``) at
each sample and position (with ``lebesgue_p = p ≠ 2``, the authors' Lebesgue-norm currents
``u_k = Σ_i sign(w_ki)|w_ki|^{p−1} x_i``, as the ``krotov`` rule's, and ``‖w_k‖`` below the ``p``-norm):

    y_k  = softmax_k(u / τ)                     (τ = ``temperature``)
    y'_k = +y_k for the winner k* = argmax_k u_k,  −y_k for every other kernel
    D_k  = Σ_p y'_pk · (x_p − u_pk · w_k)
    Δw_k = η · ρ_k · D_k / max|D|               (``normalize``; else D_k)
    ρ_k  = |‖w_k‖_p − R|^q                       (``adaptive_lr``; else 1; R = ``radius``, q = ``power_lr``, ½)

as in the authors' code: the update is divided by its largest magnitude, and a
kernel's rate shrinks as its norm reaches ``R``. With ``anti_hebbian = false`` every
kernel learns with ``y'_k = +y_k`` (the authors' "soft" variant, no anti-Hebbian term).
SoftHebb's ``hard`` mode is the ``krotov`` rule with ``delta = 0``; its ``t_invert``
is ``1 / temperature``. So ``c_p = y'_pk``,
``d_p = ρ_k (x_p − u_pk w_k) / max|D|``; the sums are one conv weight-gradient and
``Σ_p y'_pk u_pk``. ``y'`` is signed and the update already normalised: use
``aggregation = "sum"``.

Data-parallel training (``hebbcore.distributed``) sums the rule's sums over the
processes; with ``normalize`` each process divides its own sum by its own
maximum first, so the step differs from a single process's (``normalize = false``
is exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hebbcore.interfaces import LearningRule

from .activation import decayed, lebesgue_currents, lebesgue_norms, pass_sums, positive

NORM_EPS = 1e-10
_SUMS = "softhebb.sums"  # ctx.cache key: the signed coefficients and their sums, from post_synaptic's pass


@dataclass(frozen=True)
class SoftHebbOptions:
    temperature: float = 1.0
    response: Literal["dot", "cosine"] = "dot"
    normalize: bool = True
    adaptive_lr: bool = True
    radius: float = 1.0
    power_lr: float = 0.5  # the adaptive rate's power: ρ_k = |‖w_k‖ − R|^power_lr (the authors' CNN preset: 0.75)
    anti_hebbian: bool = True  # False: the authors' "soft" variant, where the losers learn Hebbian too (y' = y)
    lebesgue_p: float = 2.0  # the norm of the currents and of the adaptive rate's radius (the authors' lebesgue_p)


class SoftHebb(LearningRule):
    name = "softhebb"
    Options = SoftHebbOptions
    coefficients = "signed"
    aggregation = "sum"

    @classmethod
    def check(cls, options, layer):
        problems = positive(options.temperature, "temperature") + positive(options.radius, "radius") + \
            positive(options.power_lr, "power_lr")  # fmt: skip
        if options.lebesgue_p < 2:
            problems.append(f"options.lebesgue_p: expected >= 2, got {options.lebesgue_p}")
        elif options.lebesgue_p != 2 and options.response == "cosine":
            problems.append("options.lebesgue_p: the Lebesgue-norm currents replace w·x; use response = 'dot'")
        return problems

    def _u(self, ctx):
        if self.options.response == "cosine":
            return ctx.similarity
        return lebesgue_currents(ctx, self.options.lebesgue_p)

    def post_synaptic(self, ctx):
        ops, u = ctx.ops, self._u(ctx)
        t = self.options.temperature
        y = ops.softmax(u if t == 1.0 else u * (1.0 / t), axis=1)  # at t = 1 no pass to scale u
        if not self.options.anti_hebbian:
            return y
        # +y for the winner, -y for the losers, in place, with the update's two sums in the same pass
        signed, c_sum, cu_sum = ops.winner_signed_sums(y, u, ctx.reads_coefficient_sum)
        ctx.cache[_SUMS] = (signed, c_sum, cu_sum)
        return signed

    def update_terms(self, ctx, y):
        y_sum, yu_sum = pass_sums(ctx, _SUMS, y, self._u(ctx))
        return decayed(ctx, ctx.input_correlation(y), yu_sum, self.options.normalize, self._rate(ctx)), y_sum

    def _rate(self, ctx):
        """The adaptive rate ``ρ_k = (|‖w_k‖_p − R| + ε)^power_lr`` per kernel, or None without one."""
        o = self.options
        if not o.adaptive_lr:
            return None
        return (abs(lebesgue_norms(ctx, o.lebesgue_p) - o.radius) + NORM_EPS) ** o.power_lr
