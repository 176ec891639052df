"""How much memory a run needs, estimated from its spec before anything is allocated."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GIB = 1 << 30


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``), or None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


#: Images per batch when a run evaluates, at most (:func:`hebbcore.ops.inference_batch`: 32 on a CPU, 1024 on a GPU).
EVAL_BATCH = 1024


def run_memory(
    layers: Sequence[Any], n_samples: int, input_shape: tuple[int, ...], hebbian_batch: int, sgd_batch: int
) -> dict[str, int]:
    """Bytes a run holds at once: parameters (float64 while drawn), the data (float32) and the largest of the
    responses alive at once: a forward pass keeps one layer's input and output (evaluation, the Hebbian step,
    with a few temporaries of that size), the SGD phase's autograd every layer's output.

    ``layers``: the :class:`hebbcore.layers.Layer` of each layer, as :func:`hebbcore.network.build_layers`
    gives.
    """
    params = sum(layer.parameter_count() for layer in layers)
    widest = max((math.prod(layer.in_shape) + math.prod(layer.out_shape) for layer in layers), default=0)
    every = sum(math.prod(layer.out_shape) for layer in layers)
    activations = max(EVAL_BATCH * widest, 3 * hebbian_batch * widest, 3 * sgd_batch * every)
    return {
        "parameters": params * 8,
        "data": n_samples * math.prod(input_shape) * 4,
        "activations": activations * 4,
    }


def memory_problem(need: dict[str, int], available: int | None = None) -> str | None:
    """A one-line refusal when ``need`` exceeds the available memory, else None."""
    available = available_memory() if available is None else available
    total = sum(need.values())
    if available is None or total <= available:
        return None
    parts = ", ".join(f"{k} {_gib(v)}" for k, v in need.items())
    return f"the run needs about {_gib(total)} ({parts}), {_gib(available)} available"


def _gib(n: float) -> str:
    g = n / GIB
    return f"{g:,.0f} GiB" if g >= 10 else f"{g:.2g} GiB"
