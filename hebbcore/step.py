"""The Hebbian step of one layer, shared by :class:`hebbcore.network.Network` and the torch modules."""

from __future__ import annotations

from typing import Any

from .interfaces import Aggregation, HebbianContext, LearningRule
from .ops import Array


def hebbian_delta(
    ctx: HebbianContext, rule: LearningRule, aggregation: Aggregation, lr: float, state: dict[str, Any]
) -> tuple[Array, dict[str, Any]]:
    """``(Δw, next state)`` of one layer for the batch in ``ctx``.

    The rule advances its state and gives its coefficients and sums; with ``ctx.reducer``
    (data-parallel training) the sums are summed over the processes, so every process
    applies the update one process would compute on the whole batch.
    """
    state = rule.next_state(ctx, state)
    ctx.state = state
    coefficient = rule.post_synaptic(ctx)
    direction_sum, coefficient_sum = aggregation.sums(ctx, rule, coefficient)
    if ctx.reducer is not None:
        direction_sum, coefficient_sum = ctx.reducer(direction_sum), ctx.reducer(coefficient_sum)
    return lr * aggregation.combine(ctx, direction_sum, coefficient_sum), state
