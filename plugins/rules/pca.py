"""Sanger's Generalized Hebbian Algorithm (GHA) and Hebbian PCA (HPCA).

- ``sanger``: T. D. Sanger, "Optimal unsupervised learning in a single-layer
  linear feedforward neural network", Neural Networks 2(6):459–473, 1989.
  ``y_k = w_k·x`` (``activation = "linear"``).
- ``hpca``: the nonlinear Hebbian PCA of G. Lagani, F. Falchi, C. Gennaro and
  G. Amato, "Hebbian semi-supervised learning in a sample efficiency setting",
  Neural Networks 143:719–731, 2021 (also Lagani et al., "Comparing the
  performance of Hebbian against backpropagation learning using convolutional
  neural networks", Neural Comput. Appl. 34, 2022): the same update with a
  nonlinear response ``y_k = f(w_k·x)`` (``activation``, default ``"relu"``), derived
  by minimising the reconstruction error ``E‖x − Σ_{j≤k} y_j w_j‖²`` of the first
  ``k`` neurons.

Both rules:

    Δw_k = η · Σ_p y_pk · (x_p − Σ_{j≤k} y_pj · w_j)

With a linear response the kernels converge, in order, to the leading
eigenvectors of the (uncentred) patch correlation matrix. Computed from sums:
``Σ_p y_pk x_p − Σ_{j≤k} G_kj w_j`` with the Gram matrix ``G = Σ_p y_p y_pᵀ``
(``Ops.lower_gram_product``: the lower triangle of ``G`` by blocks, times ``W``), and one conv
weight-gradient.

``y`` is signed (linear response), so use ``aggregation = "mean"`` or ``"sum"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from hebbcore.interfaces import HebbianContext, LearningRule

from .activation import Activation, activation


def sanger_sums(ctx: HebbianContext, y):
    """``(Σ_p y_pk (x_p − Σ_{j≤k} y_pj w_j), Σ_p y_pk)``."""
    return ctx.input_correlation(y) - ctx.ops.lower_gram_product(y, ctx.w), ctx.aggregated_sum(y)


@dataclass(frozen=True)
class SangerOptions:
    """``activation``: ``"linear"`` (y = w·x), ``"relu"`` or ``"cosine"``."""

    activation: Activation = "linear"


@dataclass(frozen=True)
class HpcaOptions:
    """``activation``: ``"relu"`` (y = max(0, w·x)), ``"linear"`` (= Sanger) or ``"cosine"``."""

    activation: Activation = "relu"


class Sanger(LearningRule):
    name = "sanger"
    Options = SangerOptions
    coefficients = "signed"
    separable = False  # d_p = x_p − Σ_j y_pj·w_j
    aggregation = "mean"

    def post_synaptic(self, ctx):
        return activation(ctx, self.options.activation)

    def update_sums(self, ctx, y):
        return sanger_sums(ctx, y)


class HebbianPCA(Sanger):
    name = "hpca"
    Options = HpcaOptions
