"""Peak memory of one step, per backend: tracemalloc (numpy), the torch profiler's allocation events (torch CPU),
the CUDA allocator's peak (torch CUDA), a CuPy memory-pool hook (cupy)."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import tracemalloc
from collections.abc import Callable

import numpy as np

from hebbcore.ops import Ops


@contextlib.contextmanager
def _quiet_stderr():
    """Silence C-level stderr (the torch profiler's banner lines) for the duration."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), fd)
            yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def peak_step_memory(ops: Ops, step: Callable[[], None]) -> tuple[int | None, str]:
    """``(bytes, method)``: the peak allocated during ``step()`` above what was allocated before it."""
    gc.collect()
    torch = getattr(ops, "torch", None)
    if torch is not None:
        dev = ops.dev
        if dev.type == "cuda":
            ops.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
            step()
            ops.synchronize()
            return int(torch.cuda.max_memory_allocated(dev) - base), "torch.cuda.max_memory_allocated"
        if dev.type == "cpu":
            from torch.profiler import ProfilerActivity, profile

            with _quiet_stderr():
                with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                    step()
                events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
            total = peak = 0
            for e in sorted(events, key=lambda e: e.start_ns()):
                total += e.nbytes()
                peak = max(peak, total)
            return int(peak), "torch.profiler memory events (CPU allocator)"
        return None, f"no peak-memory method for torch device {dev}"
    xp = getattr(ops, "xp", None)
    if xp is np:
        started = not tracemalloc.is_tracing()
        if started:
            tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            if started:
                tracemalloc.stop()
        return int(peak - base), "tracemalloc (numpy allocations)"
    if xp is not None and getattr(xp, "__name__", "") == "cupy":
        from cupy.cuda import memory_hook

        class PeakHook(memory_hook.MemoryHook):
            name = "HebbcorePeakHook"

            def __init__(self):
                self.current = self.peak = 0

            def malloc_postprocess(self, **kw):
                self.current += kw["mem_size"]
                self.peak = max(self.peak, self.current)

            def free_postprocess(self, **kw):
                self.current -= kw["mem_size"]

        ops.synchronize()
        hook = PeakHook()
        with hook:
            step()
            ops.synchronize()
        return int(hook.peak), "cupy memory-pool hook"
    return None, f"no peak-memory method for backend {ops.name!r}"
