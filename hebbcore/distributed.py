"""Data-parallel training over processes with ``torch.distributed`` (gloo on CPU, nccl on CUDA).

Hebbian statistics are sums (``Σ_p y_p·d_p``, ``Σ_p y_p``, batch-norm moments),
so summing them over processes that each see a shard of the batch gives
exactly what one process computes on the whole batch. Start with torchrun::

    torchrun --nproc-per-node 2 -m hebbcore.cli run spec.toml --distributed --out runs/x

Every process reads the same data and draws the same batch order (same seed);
process ``r`` of ``W`` takes rows ``r::W`` of every batch. Only rank 0 writes
files. The SGD phase runs under ``DistributedDataParallel`` (gradients
averaged; batch-norm statistics stay per process there).

A process that stops answering (stopped, swapped out, cut off) ends the others
after ``--dist-timeout`` seconds (300 by default) with one line naming its rank:
each process that timed out says so in the group's key-value store, and the
ranks that did not are the silent ones.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import numpy as np

from .errors import HebbcoreError
from .plugin_manager import Registry
from .runner import Shard

#: Seconds a process that timed out waits for the others to report their own timeout.
REPORT_WAIT = 3.0


class Group:
    """The process group's store, rank, size and timeout: what a timeout message needs."""

    def __init__(self, store, rank: int, world: int, timeout: float):
        self.store, self.rank, self.world, self.timeout = store, rank, world, timeout

    def silent_ranks(self) -> list[int]:
        """The ranks that did not report a timeout of their own within :data:`REPORT_WAIT` seconds."""
        try:
            self.store.set_timeout(timedelta(seconds=REPORT_WAIT + 2))
            self.store.set(f"hebbcore/timed_out/{self.rank}", "1")
            time.sleep(REPORT_WAIT)
            return [
                r for r in range(self.world) if r != self.rank and not self.store.check([f"hebbcore/timed_out/{r}"])
            ]
        except Exception:  # the store is served by rank 0 (or torchrun's agent): it does not answer either
            return [0]

    def timeout_error(self, what: str) -> HebbcoreError:
        silent = self.silent_ranks()
        who = ", ".join(map(str, silent)) if silent else "unknown"
        return HebbcoreError(
            f"rank {self.rank}: rank {who} stopped answering for {self.timeout:g} s during {what} "
            f"(stopped, swapped out or cut off); the last checkpoint is intact, resume with --resume"
        )


def is_timeout(exc: BaseException) -> bool:
    """True for the error a collective raises when a peer does not answer in time."""
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("timed out" in text or "timeout" in text)


def make_reducer(ops, group: Group | None = None):
    """A function summing a backend array over all processes (returns a new array)."""
    import torch
    import torch.distributed as dist

    def all_reduce(t):
        try:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        except RuntimeError as exc:
            if group is not None and is_timeout(exc):
                raise group.timeout_error("a Hebbian step's all-reduce") from None
            raise
        return t

    if ops.name == "torch":
        return lambda a: all_reduce(a.clone())

    def reduce(a):  # numpy / cupy: through a host tensor
        t = all_reduce(torch.from_numpy(np.ascontiguousarray(ops.to_numpy(a), dtype=np.float64)))
        return ops.asarray(t.numpy(), dtype=str(a.dtype) if hasattr(a, "dtype") else "float32")

    return reduce


def init_from_env(registry: Registry, backend: str, device: str | None, timeout: float = 300.0) -> Shard:
    """Join the process group described by torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).

    ``timeout``: seconds a collective waits for the other processes before the run ends with
    one line naming the rank that stopped answering.
    """
    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise HebbcoreError(f"--distributed needs the variables torchrun sets; missing {', '.join(missing)}")
    if not timeout > 0:
        raise HebbcoreError(f"--dist-timeout: expected > 0 seconds, got {timeout}")
    try:
        import torch.distributed as dist
    except ImportError:
        raise HebbcoreError("--distributed needs torch (pip install torch)") from None
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    td = timedelta(seconds=timeout)
    # torchrun's agent serves the store itself; without it rank 0 does, as init_method="env://" would
    serve = rank == 0 and os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() != "true"
    try:
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=serve, timeout=td
        )
    except (RuntimeError, ValueError) as exc:
        raise HebbcoreError(
            f"rank {rank}: cannot reach the process group's store at {os.environ['MASTER_ADDR']}:"
            f"{os.environ['MASTER_PORT']} within {timeout:g} s ({exc.__class__.__name__})"
        ) from None
    on_cuda = (device or "").startswith("cuda") or (backend == "cupy")
    dist.init_process_group("nccl" if on_cuda else "gloo", store=store, rank=rank, world_size=world, timeout=td)
    ops = registry.get("backend", backend)(device)
    group = Group(store, rank, world, timeout)
    return Shard(rank=rank, world=world, reducer=make_reducer(ops, group), group=group)


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
