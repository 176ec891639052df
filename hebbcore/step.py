"""The Hebbian step of one layer, shared by :class:`hebbcore.network.Network` and the torch modules."""

from __future__ import annotations

from typing import Any

from .errors import PluginError
from .interfaces import Aggregation, HebbianContext, LearningRule, Winners
from .ops import Array


def hebbian_direction(
    ctx: HebbianContext, rule: LearningRule, aggregation: Aggregation, state: dict[str, Any]
) -> tuple[Array, dict[str, Any]]:
    """``(Δw / η, next state)`` of one layer for the batch in ``ctx``: the update before the learning rate, which
    the caller adds to the weights in one pass (:meth:`hebbcore.ops.Ops.add_scaled`).

    The rule advances its state and gives its coefficients and sums; with ``ctx.reducer``
    (data-parallel training) the sums are summed over the processes, so every process
    applies the update one process would compute on the whole batch.
    """
    ctx.reads_coefficient_sum = aggregation.reads_coefficient_sum
    state = rule.next_state(ctx, state)
    ctx.state = state
    coefficient = rule.post_synaptic(ctx)
    if not isinstance(coefficient, Winners):
        _expect(coefficient, ctx.dot_shape, ctx.dot_dtype, f"rule {rule.name!r}: post_synaptic returned", "ctx.dot")
    direction_sum, coefficient_sum = aggregation.sums(ctx, rule, coefficient)
    _expect(
        direction_sum,
        ctx.w.shape,
        ctx.w.dtype,
        f"rule {rule.name!r} with aggregation {aggregation.name!r}: the summed update",
        "w",
    )
    if coefficient_sum is None and aggregation.reads_coefficient_sum:
        raise PluginError(
            f"rule {rule.name!r} returned no coefficient sums (None), but aggregation {aggregation.name!r} reads "
            f"them; return ctx.aggregated_sum(c), or set reads_coefficient_sum = False on an aggregation that does not"
        )
    if ctx.reducer is not None:
        direction_sum = ctx.reducer(direction_sum)
        coefficient_sum = None if coefficient_sum is None else ctx.reducer(coefficient_sum)
    combined = aggregation.combine(ctx, direction_sum, coefficient_sum)
    _expect(combined, ctx.w.shape, ctx.w.dtype, f"aggregation {aggregation.name!r}: combine returned", "w")
    return combined, state  # the caller scales by η with a Python float, which keeps the weights' dtype


def _expect(a: Any, shape: Any, dtype: Any, what: str, name: str) -> None:
    """A plugin's array must have the ``shape`` and ``dtype`` of ``name``: numpy would broadcast a wrong shape
    and promote a float64 silently, and the run would train on garbage or in double precision."""
    if tuple(getattr(a, "shape", ())) != tuple(shape) or getattr(a, "dtype", None) != dtype:
        got = f"{type(a).__name__} {tuple(getattr(a, 'shape', ()))} {getattr(a, 'dtype', '')}".rstrip()
        raise PluginError(f"{what} {got}; expected the shape and dtype of {name}, {tuple(shape)} {dtype}")
