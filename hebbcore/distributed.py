"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU, nccl on CUDA).

Hebbian statistics are sums (``Σ_p y_p·d_p``, ``Σ_p y_p``, batch-norm moments),
so summing them over processes that each see a shard of the batch gives
exactly what one process computes on the whole batch. Start with torchrun::

    torchrun --nproc-per-node 2 -m hebbcore.cli run spec.toml --distributed --out runs/x

Every process reads the same data and draws the same batch order (same seed);
process ``r`` of ``W`` takes rows ``r::W`` of every batch. Only rank 0 writes
files. The SGD phase runs under ``DistributedDataParallel`` (gradients
averaged; batch-norm statistics stay per process there).
"""
from __future__ import annotations

import os

import numpy as np

from .errors import HebbcoreError
from .plugin_manager import Registry
from .runner import Shard


def make_reducer(ops, group=None):
    """A function summing a backend array over all processes (returns a new array)."""
    import torch
    import torch.distributed as dist

    if ops.name == "torch":
        def reduce(a):
            t = a.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
            return t
        return reduce

    def reduce(a):  # numpy / cupy: through a host tensor
        t = torch.from_numpy(np.ascontiguousarray(ops.to_numpy(a), dtype=np.float64))
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
        return ops.asarray(t.numpy(), dtype=str(a.dtype) if hasattr(a, "dtype") else "float32")

    return reduce


def init_from_env(registry: Registry, backend: str, device: str | None) -> Shard:
    """Join the process group described by torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise HebbcoreError(f"--distributed needs the variables torchrun sets; missing {', '.join(missing)}")
    try:
        import torch.distributed as dist
    except ImportError:
        raise HebbcoreError("--distributed needs torch (pip install torch)") from None
    on_cuda = (device or "").startswith("cuda") or (backend == "cupy")
    dist.init_process_group("nccl" if on_cuda else "gloo")
    ops = registry.get("backend", backend)(device)
    return Shard(rank=dist.get_rank(), world=dist.get_world_size(), reducer=make_reducer(ops))


def leave_group() -> None:
    """Wait for every process, then tear the process group down.

    Leaving it to interpreter exit lets one rank destroy its gloo context
    while the other still talks to it, which aborts the process
    ("terminate called without an active exception").
    """
    import sys

    import torch.distributed as dist

    if not dist.is_initialized():
        return
    try:
        if sys.exc_info()[0] is None:
            dist.barrier()
    finally:
        dist.destroy_process_group()
