"""Time the winner-take-all one-hot on the paper's layer shapes: the code before 2026-12-01 against the current one.

    python benchmarks/one_hot.py [--repeats 9] [--threads 1]

``Ops.one_hot_argmax`` builds the post-synaptic ``y`` of WTA and of the teacher's
masked competition: the argmax over the kernels at every sample and position, as
a one-hot array in the channels-last layout of the activations. Before, numpy
compared the argmax with ``arange(K)`` (a boolean temporary, then a cast) and the
torch backend used ATen's ``argmax`` + ``zeros_like`` + ``scatter_``. Now numpy
zero-fills once and scatters the ones through flat indices, and the torch backend
runs that numpy code on a zero-copy view of its CPU tensor (ATen's argmax over a
contiguous axis of 96-256 is ~2.5x slower than numpy's on the CPUs measured).
Prints the fastest of ``--repeats`` calls per shape and version, in ms; with
``--steps N``, also N batch-64 Hebbian steps of the paper's all-Hebbian net
(``HHHHHH``, as ``hebbcore bench`` times it) with the one-hot before and now,
alternated in one process, and the floor of those steps (fastest of 4 rounds). Since the WTA and teacher
rules return ``Winners`` (later on 2026-12-01, ``benchmarks/winner_sums.py``) a Hebbian step no longer
calls ``one_hot_argmax``, so ``--steps`` then times the same step twice.
"""

from __future__ import annotations

import argparse

import numpy as np
from _steps import alternated_steps, best_ms, step_row

# (N, K, H, W) of the activations whose one-hot the paper's net builds, batch 64 (conv1 .. conv4, fc5)
SHAPES = [(64, 96, 28, 28), (64, 128, 12, 12), (64, 192, 10, 10), (64, 256, 3, 3), (64, 300)]


def numpy_before(a):
    last = np.moveaxis(a, 1, -1)
    idx = last.argmax(axis=-1)[..., None]
    return np.moveaxis((idx == np.arange(a.shape[1])).astype(a.dtype), -1, 1)


def channels_last(x):
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if x.ndim == 4 else x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=0, help="also time N Hebbian steps of the paper's net")
    args = ap.parse_args()
    from hebbcore_backends.numpy_backend import NumpyOps

    np_ops = NumpyOps()
    versions = {"numpy before": None, "numpy now": None}
    try:
        import torch

        from hebbcore_backends.torch_backend import TorchOps

        if args.threads:
            torch.set_num_threads(args.threads)
        t_ops = TorchOps("cpu")
        versions.update({"torch before": None, "torch now": None})
    except ImportError:
        torch = None
    rng = np.random.default_rng(0)
    print("| shape (N, K, H, W) | " + " | ".join(f"{v} ms" for v in versions) + " |")
    print("|---|" + "---:|" * len(versions))
    for shape in SHAPES:
        x = channels_last(rng.standard_normal(shape).astype(np.float32))
        a = np.moveaxis(x, -1, 1) if len(shape) == 4 else x  # an (N, K, H, W) view of channels-last memory
        row = {
            "numpy before": best_ms(lambda: numpy_before(a), args.repeats),
            "numpy now": best_ms(lambda: np_ops.one_hot_argmax(a, 1), args.repeats),
        }
        assert np.array_equal(numpy_before(a), np_ops.one_hot_argmax(a, 1))
        if torch is not None:
            ta = t_ops.asarray(a)
            if len(shape) == 4:
                ta = ta.contiguous(memory_format=torch.channels_last)
            assert torch.equal(t_ops._one_hot_native(ta, 1), t_ops.one_hot_argmax(ta, 1))
            row["torch before"] = best_ms(lambda: t_ops._one_hot_native(ta, 1), args.repeats)
            row["torch now"] = best_ms(lambda: t_ops.one_hot_argmax(ta, 1), args.repeats)
        print(f"| {shape} | " + " | ".join(f"{row[v]:.2f}" for v in versions) + " |")
    if args.steps:
        print()
        print(
            "| backend | Hebbian steps, one-hot before s | Hebbian steps, now s | floor s | floor / Hebbian before | "
            "floor / Hebbian now |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        step_ab("numpy", args.steps)
        if torch is not None:
            step_ab("torch", args.steps)


def step_ab(backend: str, steps: int) -> None:
    """Hebbian steps of ``HHHHHH`` with the one-hot before and now (alternated), and their floor."""
    from hebbcore.ops import Ops
    from hebbcore.plugin_manager import default_registry

    owner = Ops if backend == "numpy" else type(default_registry().get("backend", backend)("cpu"))
    now = next(k.__dict__["one_hot_argmax"] for k in owner.__mro__ if "one_hot_argmax" in k.__dict__)  # its definer
    before = (
        (lambda self, a, axis=1: numpy_before(a) if axis == 1 else now(self, a, axis))
        if backend == "numpy"
        else (lambda self, a, axis=1: self._one_hot_native(a, axis))
    )
    best = alternated_steps(
        backend,
        steps,
        {
            "before": lambda: setattr(owner, "one_hot_argmax", before),
            "now": lambda: setattr(owner, "one_hot_argmax", now),
        },
        restore=lambda: setattr(owner, "one_hot_argmax", now),
    )
    print(step_row(backend, best, "before", "now"))


if __name__ == "__main__":
    main()
