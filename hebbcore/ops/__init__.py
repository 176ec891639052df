"""The one array-math interface every backend implements.

:class:`Ops` is written once against an array namespace ``xp`` (``numpy`` or
``cupy``): a backend whose arrays follow the NumPy API subclasses it and sets
``xp``; a backend with another API (PyTorch) overrides every method. The core
and the rule plugins only ever call these methods and the arithmetic operators
of the arrays they return, so a rule written once runs on every backend.

Layouts: images are ``(N, C, H, W)``, conv kernels ``(K, C, kh, kw)``, dense
inputs ``(N, D)`` and dense weights ``(K, D)``. Every array is float32 unless
stated otherwise. ``tests/test_backend_signatures.py`` checks that every
backend keeps these signatures.

The methods live in three modules by what calls them: :mod:`.base` (transfer, element-wise math,
reductions, indexing), :mod:`.layers` and :mod:`.rules`.
"""

from __future__ import annotations

from .base import Array, ArrayOps, per_kernel
from .layers import LayerOps
from .rules import RuleOps

__all__ = ["Array", "ArrayOps", "Ops", "inference_batch", "per_kernel"]


def inference_batch(device: str) -> int:
    """Rows per inference batch on ``device``: few on a CPU, where one batch's activations should stay in its
    caches (32 rows ran 2-6x faster than 1,000 on the paper's conv1 + probe), many on a GPU."""
    return 32 if str(device).startswith("cpu") else 1024


class Ops(LayerOps, RuleOps):
    """Array operations of one backend on one device.

    Subclasses set :attr:`name` (the ``--backend`` value) and :attr:`xp`, and
    override what must be native. Constructing one may raise
    :class:`hebbcore.errors.BackendUnavailable`.
    """
