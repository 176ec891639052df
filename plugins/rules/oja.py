"""Oja's rule: a normalised Hebbian neuron that finds the first principal component.

E. Oja, "A simplified neuron model as a principal component analyzer",
J. Math. Biology 15:267–273, 1982.

``y_k = f(w_k·x)`` (``activation``, default ``"linear"``: ``y = w·x`` as in the paper) and

    Δw_k = η · Σ_p y_pk · (x_p − y_pk · w_k)

so ``c_p = y_pk`` and ``d_p = x_p − y_pk·w_k``. Every kernel learns on its own (no
competition): with a linear response each converges to the unit-norm leading
eigenvector of the (uncentred) patch correlation. From sums:
``Σ_p y_pk x_p − (Σ_p y_pk²)·w_k``, one conv weight-gradient.

``y`` is signed, so use ``aggregation = "mean"`` (or ``"sum"``), not ``"weighted_mean"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hebbcore.interfaces import LearningRule

from .activation import Activation, activation, squared_sum


@dataclass(frozen=True)
class OjaOptions:
    """``activation``: ``"linear"`` (y = w·x), ``"relu"`` or ``"cosine"`` (see ``activation.py``)."""

    activation: Activation = "linear"


class Oja(LearningRule):
    name = "oja"
    Options = OjaOptions
    coefficients = "signed"
    separable = False  # d_p = x_p − y_p·w
    aggregation = "mean"

    def post_synaptic(self, ctx):
        return activation(ctx, self.options.activation)

    def decay_sum(self, ctx, coefficient, coefficient_sum):
        return squared_sum(ctx, coefficient, coefficient)  # Σ_p y_p²: d_p = x_p − y_p·w
