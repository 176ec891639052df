"""The post-synaptic activity ``y = f(w·x)`` that the extra rules are written against.

- ``"linear"``: ``y = w_k·x_p`` (the dot product, as in Oja's and Sanger's papers);
- ``"relu"``:   ``y = max(0, w_k·x_p)`` (the nonlinear form of Hebbian PCA and BCM);
- ``"cosine"``: ``y = max(0, cos(w_k, x_p))``, the response a Hebbian layer of
  hebbcore passes to the next layer.

and the helpers several rules share: cached sums, Lebesgue-norm currents and norms, the normalised decay.
"""

from __future__ import annotations

from typing import Literal

from hebbcore.interfaces import HebbianContext, KernelTerms

#: The floor of the largest magnitude an update is divided by (SoftHebb's and Krotov's ``normalize``).
MAX_EPS = 1e-30

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


def pass_sums(ctx: HebbianContext, key: str, y, u):
    """``(Σ_p y, Σ_p y·u)`` per kernel: what ``post_synaptic`` stored as ``ctx.cache[key] = (y, Σ y, Σ y·u, ...)``
    where ``y`` is the array it returned (its backend added them up in the same pass), else computed; the first
    None where the aggregation does not read it (:meth:`HebbianContext.aggregated_sum`)."""
    cached = ctx.cache.get(key)
    if cached is not None and cached[0] is y:
        return (cached[1] if ctx.reads_coefficient_sum else None), cached[2]
    return ctx.aggregated_sum(y), squared_sum(ctx, y, u)


def lebesgue_currents(ctx: HebbianContext, p: float):
    """``I_pk = ⟨w_k, x_p⟩_p = Σ_i sign(w_ki)|w_ki|^{p−1} x_pi`` shaped like ``ctx.dot`` (``ctx.dot`` itself for
    ``p = 2``): Krotov and Hopfield's currents, SoftHebb's ``lebesgue_p``. One forward product per step, cached."""
    if p == 2:
        return ctx.dot
    key = ("lebesgue_currents", p)
    if key not in ctx.cache:
        w = ctx.w
        wp = w * ctx.ops.power(abs(w), p - 2)
        ctx.cache[key] = ctx.ops.linear(ctx.x, wp) if ctx.kind == "linear" else ctx.ops.conv2d(ctx.x, wp, ctx.stride)
    return ctx.cache[key]


def lebesgue_norms(ctx: HebbianContext, p: float):
    """``‖w_k‖_p = (Σ_i |w_ki|^p)^{1/p}`` per kernel: shape ``(K,)``."""
    w = ctx.w
    axes = tuple(range(1, w.ndim))
    if p == 2:
        return ctx.ops.kernel_norms(w)
    return ctx.ops.power(ctx.ops.sum(ctx.ops.power(abs(w), p), axis=axes), 1.0 / p)


def decayed(ctx, hebb, yu_sum, normalize, rate=None):
    """``D = hebb − (Σ y·u)_k·w_k``, then ``D / max(max|D|, 1e-30)`` with ``normalize``, times ``rate_k`` if
    given: SoftHebb's and Krotov's update from its sums, as :class:`KernelTerms` the step adds to the weights in
    one pass; with ``normalize``, ``D`` and its maximum take one more (:meth:`hebbcore.ops.Ops.decay_and_max_abs`,
    which may overwrite ``hebb``)."""
    if not normalize:
        return KernelTerms(hebb, yu_sum, rate)
    ops = ctx.ops
    d, top = ops.decay_and_max_abs(hebb, yu_sum, ctx.w)
    top = ops.relu(top - MAX_EPS) + MAX_EPS  # on the device: no host sync
    return KernelTerms(d, None, 1.0 / top if rate is None else rate / top)
