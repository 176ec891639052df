"""The Hebbian step of one layer, shared by :class:`hebbcore.network.Network` and the torch modules."""

from __future__ import annotations

from typing import Any

from .errors import PluginError
from .interfaces import REAL, Aggregation, HebbianContext, KernelTerms, LearningRule, Winners


def hebbian_terms(
    ctx: HebbianContext, rule: LearningRule, aggregation: Aggregation, state: dict[str, Any]
) -> tuple[KernelTerms, dict[str, Any]]:
    """``(Δw / η, next state)`` of one layer for the batch in ``ctx``: the update before the learning rate, as
    terms the caller adds to the weights in one pass (:meth:`KernelTerms.applied`).

    The rule advances its state and gives its coefficients and sums; with ``ctx.reducer``
    (data-parallel training) the sums are summed over the processes, so every process
    applies the update one process would compute on the whole batch.
    """
    ctx.reads_coefficient_sum = aggregation.reads_coefficient_sum
    state = rule.next_state(ctx, state)
    ctx.state = state
    coefficient = rule.post_synaptic(ctx)
    if not isinstance(coefficient, Winners):  # Winners: indices from the backend's own competition primitives
        _expect(
            coefficient, ctx.dot_shape, ctx.dot_dtype, f"rule {rule.name!r}: post_synaptic returned", "ctx.dot", ctx.w
        )
    summed, normalizing = _pair(aggregation.weighting(ctx, coefficient), f"aggregation {aggregation.name!r}: weighting")
    if type(rule).update_sums is LearningRule.update_sums:
        terms, coefficient_sum = _pair(rule.update_terms(ctx, summed), f"rule {rule.name!r}: update_terms")
        if not isinstance(terms, KernelTerms):
            raise PluginError(
                f"rule {rule.name!r}: update_terms returned {type(terms).__name__} as its first value; expected "
                f"hebbcore.interfaces.KernelTerms (or override update_sums to return an array)"
            )
    else:  # a rule that writes its update as one array
        direction_sum, coefficient_sum = _pair(rule.update_sums(ctx, summed), f"rule {rule.name!r}: update_sums")
        terms = KernelTerms(direction_sum)
    if normalizing is not summed and aggregation.reads_coefficient_sum:
        coefficient_sum = ctx.coefficient_sum(normalizing)
    _expect(
        terms.hebb,
        ctx.w.shape,
        ctx.w.dtype,
        f"rule {rule.name!r} with aggregation {aggregation.name!r}: the summed update",
        "w",
        ctx.w,
    )
    _expect_factor(terms.decay, ctx.w, f"rule {rule.name!r}: KernelTerms.decay", numbers_too=False)
    _expect_factor(terms.scale, ctx.w, f"rule {rule.name!r}: KernelTerms.scale")
    if coefficient_sum is None and aggregation.reads_coefficient_sum:
        raise PluginError(
            f"rule {rule.name!r} returned no coefficient sums (None), but aggregation {aggregation.name!r} reads "
            f"them; return ctx.aggregated_sum(c), or set reads_coefficient_sum = False on an aggregation that does not"
        )
    if ctx.reducer is not None:  # one array summed over the processes (a rule's own scale is its process's)
        terms = KernelTerms(ctx.reducer(terms.direction(ctx.ops, ctx.w)))
        coefficient_sum = None if coefficient_sum is None else ctx.reducer(coefficient_sum)
    if aggregation.scales_per_kernel():
        scale = aggregation.kernel_scale(ctx, coefficient_sum)
        if scale is not None:
            _expect_factor(scale, ctx.w, f"aggregation {aggregation.name!r}: kernel_scale returned")
            return terms.times(scale), state
    combined = aggregation.combine(ctx, terms.direction(ctx.ops, ctx.w), coefficient_sum)
    _expect(combined, ctx.w.shape, ctx.w.dtype, f"aggregation {aggregation.name!r}: combine returned", "w", ctx.w)
    return KernelTerms(combined), state


def _pair(result: Any, what: str) -> tuple[Any, Any]:
    """A plugin method's two results, or a PluginError saying what came back instead."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise PluginError(f"{what} returned {type(result).__name__}; expected a pair (a tuple of two)")
    return result


def _expect_factor(v: Any, w: Any, what: str, numbers_too: bool = True) -> None:
    """A per-kernel factor is None, a real number (``numbers_too``), or an array of shape ``(K,)`` or ``()`` in
    the dtype and on the device of the weights ``w`` (a decay: ``(K,)`` only)."""
    if v is None or (numbers_too and isinstance(v, REAL)):
        return
    k, dtype = int(w.shape[0]), w.dtype
    shape = tuple(getattr(v, "shape", (None,)))
    shapes = ((), (k,)) if numbers_too else ((k,),)
    if isinstance(v, REAL) or shape not in shapes or getattr(v, "dtype", None) != dtype or _off_device(v, w):
        expected = (
            "None, a real number, or an array of shape ({k},) or ()"
            if numbers_too
            else "None or an array of shape ({k},)"
        )
        raise PluginError(
            f"{what} {_described(v)}; expected {expected.format(k=k)} in the weights' dtype {dtype} on {_device(w)}"
        )


def _expect(a: Any, shape: Any, dtype: Any, what: str, name: str, w: Any) -> None:
    """A plugin's array must have the ``shape`` and ``dtype`` of ``name`` and be on the device of the weights
    ``w``: numpy would broadcast a wrong shape and promote a float64 silently, and the run would train on garbage
    or in double precision; an array on another device fails later, inside the update, without naming the plugin."""
    if tuple(getattr(a, "shape", ())) != tuple(shape) or getattr(a, "dtype", None) != dtype or _off_device(a, w):
        raise PluginError(
            f"{what} {_described(a)}; expected the shape and dtype of {name}, {tuple(shape)} {dtype}, on {_device(w)}"
        )


def _device(a: Any) -> str:
    """Where an array lives, as text (numpy's ``"cpu"``, torch's ``"cuda:0"``, CuPy's ``"<CUDA Device 0>"``)."""
    return str(getattr(a, "device", "cpu"))


def _off_device(a: Any, w: Any) -> bool:
    return _device(a) != _device(w)


def _described(a: Any) -> str:
    """``"Tensor (4,) torch.float32 on cuda:0"``: an array's type, shape, dtype and device; a value that is not an
    array, its type alone."""
    if not hasattr(a, "shape"):
        return type(a).__name__
    return f"{type(a).__name__} {tuple(a.shape)} {getattr(a, 'dtype', '')} on {_device(a)}"
