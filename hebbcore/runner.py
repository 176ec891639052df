"""Run a spec end to end: data, network, the Hebbian and SGD phases, and the files of a run.

A run directory holds, each written atomically and refreshed after every epoch:

- ``spec.toml``: the resolved spec (every default filled in);
- ``metrics.json``: backend, device, and one record per epoch (phase, epoch,
  train/val/test accuracy, seconds, images/s), plus ``final``;
- ``weights.npz``: one array per parameter, named ``"<layer>.<param>"``.
"""
from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import HebbcoreError
from .interfaces import Dataset
from .io import atomic_save_npz, atomic_write_json, atomic_write_text
from .network import Network
from .plugin_manager import Registry
from .progress import Progress
from .spec import RunSpec, dumps_toml, spec_to_table


@dataclass
class RunResult:
    out_dir: Path
    metrics: dict[str, Any]
    network: Network
    dataset: Dataset


def make_backend(registry: Registry, name: str, device: str | None = None):
    """An Ops instance of backend ``name`` (BackendUnavailable / PluginError on failure)."""
    return registry.get("backend", name)(device)


def load_dataset(spec: RunSpec, registry: Registry) -> Dataset:
    source = registry.get("dataset", spec.data.source)()
    data = source.load(spec.data.options, spec.seed)
    for t in spec.data.transforms:
        data = registry.get("transform", t.name)().apply(data, t.options)
    return data


def accuracy(net: Network, x: np.ndarray, y: np.ndarray) -> float | None:
    """Fraction of correct argmax predictions; None without data or when the net is no classifier."""
    if len(x) == 0 or not net.is_classifier:
        return None
    return float((net.predict(x) == y).mean())


def hebbian_epoch(net: Network, data: Dataset, batch_size: int, rng: np.random.Generator, epoch: int,
                  epochs: int, check_every: int = 50, progress: bool | None = None) -> float:
    """One Hebbian epoch over the shuffled training split; returns its seconds."""
    ops = net.ops
    x, y = data.train.x, data.train.y
    order = rng.permutation(len(x))
    batches = range(0, len(x), batch_size)
    t0 = time.perf_counter()
    for b, i in enumerate(Progress(batches, len(batches), f"hebbian epoch {epoch}/{epochs}", batch_size, progress), 1):
        idx = order[i:i + batch_size]
        net.hebbian_step(ops.asarray(x[idx]), ops.asarray(y[idx], dtype="int64"))
        if check_every and b % check_every == 0:
            net.check_finite(f"epoch {epoch}, batch {b}")
    net.check_finite(f"the end of epoch {epoch}")
    ops.synchronize()
    return time.perf_counter() - t0


def run(spec: RunSpec, registry: Registry, backend: str = "numpy", out_dir: str | Path = "runs/run",
        device: str | None = None, progress: bool | None = None, dataset: Dataset | None = None) -> RunResult:
    """Train ``spec`` on ``backend`` and write the run directory ``out_dir``."""
    ops = make_backend(registry, backend, device)
    data = dataset if dataset is not None else load_dataset(spec, registry)
    net = Network(spec, data.input_shape, data.n_classes, ops, registry)
    if spec.init_weights:
        net.load_npz(spec.init_weights)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spec.toml", dumps_toml(spec_to_table(spec)))
    metrics: dict[str, Any] = {
        "spec": spec.name, "backend": ops.name, "device": str(ops.device), "dataset": data.name,
        "n_train": len(data.train), "n_val": len(data.val), "n_test": len(data.test),
        "machine": platform.machine(), "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "epochs": [], "final": None,
    }
    hooks = registry.pm.hook

    def record_epoch(record: dict) -> None:
        metrics["epochs"].append(record)
        atomic_save_npz(out / "weights.npz", net.state_dict())
        atomic_write_json(out / "metrics.json", metrics)
        hooks.hebbcore_epoch_end(run_dir=str(out), record=record)

    atomic_write_json(out / "metrics.json", metrics)
    rng = np.random.default_rng(spec.seed)
    for phase in spec.phases:
        if phase == "hebbian" and net.hebbian_nodes:
            cfg = spec.hebbian
            for epoch in range(1, cfg.epochs + 1):
                seconds = hebbian_epoch(net, data, cfg.batch_size, rng, epoch, cfg.epochs, cfg.check_every, progress)
                record_epoch({"phase": "hebbian", "epoch": epoch,
                              "train_acc": accuracy(net, data.train.x, data.train.y),
                              "val_acc": accuracy(net, data.val.x, data.val.y),
                              "test_acc": accuracy(net, data.test.x, data.test.y),
                              "seconds": seconds, "images_per_s": len(data.train) / seconds})
        elif phase == "sgd" and net.sgd_nodes and spec.sgd.epochs > 0:
            try:
                from .torch_model import train_sgd
            except ImportError as exc:
                raise HebbcoreError(f"the SGD phase needs torch (pip install torch): {exc}") from None
            train_sgd(net, data, spec.seed, on_epoch=record_epoch, progress=progress)
    final = {"train_acc": accuracy(net, data.train.x, data.train.y), "val_acc": accuracy(net, data.val.x, data.val.y),
             "test_acc": accuracy(net, data.test.x, data.test.y)}
    metrics["final"] = final
    metrics["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_save_npz(out / "weights.npz", net.state_dict())
    atomic_write_json(out / "metrics.json", metrics)
    return RunResult(out, metrics, net, data)
