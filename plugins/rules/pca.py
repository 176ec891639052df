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
(``Ops.kernel_gram``), one conv weight-gradient and a ``K×K`` matrix product.

``y`` is signed (linear response), so use ``aggregation = "mean"`` or ``"sum"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hebbcore.interfaces import HebbianContext, LearningRule

from .activation import Activation, activation


def sanger_sums(ctx: HebbianContext, y, lower):
    """``(Σ_p y_pk (x_p − Σ_{j≤k} y_pj w_j), Σ_p y_pk)`` with ``lower`` the ``K×K`` lower-triangular ones."""
    k = ctx.w.shape[0]
    gram = ctx.ops.kernel_gram(y) * lower  # G_kj for j <= k
    recon = (gram @ ctx.w.reshape(k, -1)).reshape(tuple(ctx.w.shape))
    return ctx.input_correlation(y) - recon, ctx.aggregated_sum(y)


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

    def _lower_on(self, ops):
        """The ``K×K`` lower-triangular ones on ``ops``'s device."""
        k = self.layer.out_features
        return ops.constant(("tril", k), lambda: np.tril(np.ones((k, k), dtype=np.float32)))

    def post_synaptic(self, ctx):
        return activation(ctx, self.options.activation)

    def update_sums(self, ctx, y):
        return sanger_sums(ctx, y, self._lower_on(ctx.ops))


class HebbianPCA(Sanger):
    name = "hpca"
    Options = HpcaOptions
