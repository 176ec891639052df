"""The post-synaptic activity ``y = f(w·x)`` that the extra rules are written against.

- ``"linear"``: ``y = w_k·x_p`` (the dot product, as in Oja's and Sanger's papers);
- ``"relu"``:   ``y = max(0, w_k·x_p)`` (the nonlinear form of Hebbian PCA and BCM);
- ``"cosine"``: ``y = max(0, cos(w_k, x_p))``, the response a Hebbian layer of
  hebbcore passes to the next layer.
"""

from __future__ import annotations

from typing import Literal

from hebbcore.interfaces import HebbianContext

#: The response a rule reads (a spec option, checked at load as a Literal).
Activation = Literal["linear", "relu", "cosine"]


def activation(ctx: HebbianContext, kind: str):
    """``f(w·x)`` for every kernel, sample and position (shaped like ``ctx.dot``)."""
    if kind == "linear":
        return ctx.dot
    if kind == "relu":
        return ctx.ops.relu(ctx.dot)
    return ctx.ops.relu(ctx.similarity)


def positive(value: float, key: str) -> list[str]:
    return [] if value > 0 else [f"options.{key}: expected > 0, got {value}"]


def squared_sum(ctx: HebbianContext, a, b):
    """``Σ_p a_p·b_p`` per kernel: shape ``(K,)``."""
    return ctx.coefficient_sum(a * b)
