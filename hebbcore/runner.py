"""Run a spec end to end: data, network, the Hebbian and SGD phases, and the files of a run.

A run directory holds, each written atomically and refreshed after every epoch:

- ``spec.toml``: the resolved spec (every default filled in);
- ``metrics.json``: backend, device, and one record per epoch (phase, epoch,
  the accuracies of the splits the phase's ``evaluate`` names, seconds, images/s), plus ``final`` (train, val
  and test);
- ``weights.npz``: one array per parameter, named ``"<layer>.<param>"``;
- ``metrics.csv``: the per-epoch records as a table;
- ``checkpoint.npz``: where training stands, for ``hebbcore run --resume DIR`` (no pickle:
  arrays and JSON, see :mod:`hebbcore.rundir`, which owns every file of the directory);
- ``plots/``: kernel grid of the first conv layer, learning curves, confusion matrix (with matplotlib).
"""

from __future__ import annotations

import functools
import hashlib
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, HebbcoreError
from .features import FeatureCache, FrozenPrefix, frozen_prefix
from .interfaces import Dataset, Split
from .network import Network
from .plugin_manager import Registry
from .progress import Progress
from .rundir import CHECKPOINT, RunDir
from .settings import env_bytes
from .spec import RunSpec, dumps_toml, epoch_splits, parse_spec, spec_to_table


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


@dataclass
class Shard:
    """This process's part of data-parallel training: batch rows ``rank::world``; sums over processes by ``reducer``."""

    rank: int = 0
    world: int = 1
    reducer: Any = None
    group: Any = None  # hebbcore.distributed.Group: names a silent rank when a collective times out


class Checkpointer:
    """Saves where training stands through the run directory (which also reads it back on resume).

    A checkpoint records the phase, the epoch, the batches done in it, the RNG
    state at the epoch's start, the weights, the rules' state and the metrics;
    the SGD phase adds its model, optimizer and RNG states. Resuming from it
    replays the same batches in the same order, so a killed run ends with the
    weights an uninterrupted run would have.
    """

    def __init__(self, run_dir: RunDir, frozen: Mapping[str, np.ndarray] | None = None):
        self.run_dir, self.frozen = run_dir, dict(frozen or {})

    def save(self, state: dict, net: Network, metrics: dict) -> None:
        if not self.run_dir.enabled:
            return
        net.check_finite(f"phase {state['phase']}, epoch {state['epoch']}, batch {state['batch']}")
        trained = net.state_dict()
        state = {**state, "net": trained, "rule_state": net.rule_state_dict(), "metrics": metrics}
        # weights.npz holds the whole network: the frozen layers below cached features too
        self.run_dir.save_checkpoint(state, {**self.frozen, **trained}, metrics, metrics_csv(metrics))


#: Largest training split (bytes of images) kept resident on a GPU backend's device, unless
#: HEBBCORE_DEVICE_DATA_BYTES says otherwise.
DEVICE_DATA_BYTES = 4 << 30


def device_resident(ops, x: np.ndarray, y: np.ndarray, limit: int | None = None):
    """``(x, y)`` uploaded once to a GPU backend's device, or None (CPU backends; data over ``limit`` bytes).

    With it an epoch gathers its batches on the device instead of copying each from the host.
    """
    limit = env_bytes("HEBBCORE_DEVICE_DATA_BYTES", DEVICE_DATA_BYTES) if limit is None else limit
    if str(getattr(ops, "device", "cpu")).startswith("cpu") or x.nbytes > limit:
        return None
    return ops.asarray(x), ops.asarray(y, dtype="int64")


def hebbian_epoch(
    net: Network,
    data: Dataset,
    batch_size: int,
    rng: np.random.Generator,
    epoch: int,
    epochs: int,
    check_every: int = 50,
    progress: bool | None = None,
    start_batch: int = 0,
    shard: Shard | None = None,
    checkpoint=None,
    checkpoint_every: int = 0,
    resident: Any = None,
    postfix: dict | None = None,
) -> float:
    """One Hebbian epoch over the shuffled training split from batch ``start_batch``; returns its seconds.

    ``checkpoint(batches_done)`` is called every ``checkpoint_every`` batches. ``resident``: the
    training split already on the device (:func:`device_resident`); batches are then gathered there.
    """
    ops = net.ops
    shard = shard or Shard()
    x, y = data.train.x, data.train.y
    order = rng.permutation(len(x))
    starts = list(range(0, len(x), batch_size))
    order_dev: Any = ops.asarray(order, dtype="int64") if resident is not None else None
    t0 = time.perf_counter()
    shown = Progress(
        range(start_batch, len(starts)),
        len(starts) - start_batch,
        f"hebbian epoch {epoch}/{epochs}",
        batch_size,
        progress,
        postfix=postfix,
    )
    for b in shown:
        if resident is not None:
            sel = order_dev[starts[b] : starts[b] + batch_size][shard.rank :: shard.world]
            xb, yb = ops.take_rows(resident[0], sel), ops.take_rows(resident[1], sel)
        else:
            idx = order[starts[b] : starts[b] + batch_size][shard.rank :: shard.world]
            xb, yb = ops.asarray(x[idx]), ops.asarray(y[idx], dtype="int64")
        # a diverging step ends the run with check_finite's one line naming the layer, not numpy's warnings
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            net.hebbian_step(xb, yb)
        done = b + 1
        if check_every and done % check_every == 0:
            net.check_finite(f"epoch {epoch}, batch {done}")
        if checkpoint is not None and checkpoint_every and done % checkpoint_every == 0 and done < len(starts):
            checkpoint(done)
    net.check_finite(f"the end of epoch {epoch}")
    ops.synchronize()
    return time.perf_counter() - t0


def run(
    spec: RunSpec,
    registry: Registry,
    backend: str = "numpy",
    out_dir: str | Path | RunDir = "runs/run",
    device: str | None = None,
    progress: bool | None = None,
    dataset: Dataset | None = None,
    resume: bool = False,
    checkpoint_every: int = 0,
    shard: Shard | None = None,
    overwrite: bool = False,
    features: FeatureCache | None = None,
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Train ``spec`` on ``backend`` and write the run directory ``out_dir``.

    ``resume``: continue from the directory's checkpoint. ``overwrite``: replace a run the
    directory already holds (otherwise that is refused). ``checkpoint_every``: also checkpoint
    every that many batches (always at each epoch's end). ``shard``: data-parallel training
    (see :mod:`hebbcore.distributed`); only rank 0 writes files. The directory is locked for
    the whole run (:class:`hebbcore.rundir.RunDir`).

    ``features``: compute the output of the spec's frozen bottom layers once, in this cache, and
    train the layers above on it (:mod:`hebbcore.features`; recorded as ``feature_cache`` in the
    metrics); a resumed run must be resumed the same way. ``log``: where such notes about the run
    go (default: stderr, unless ``progress`` is False).
    """
    shard = shard or Shard()
    env_bytes("HEBBCORE_DEVICE_DATA_BYTES", DEVICE_DATA_BYTES)  # a wrong value said before the run folder is claimed
    run_dir = out_dir if isinstance(out_dir, RunDir) else RunDir(out_dir, enabled=shard.rank == 0)
    if log is None:
        log = (lambda m: None) if progress is False or shard.rank else (lambda m: print(m, file=sys.stderr, flush=True))
    with run_dir.locked():
        if not resume:  # refuse before the data loads, which can take a while
            run_dir.refuse_if_taken(overwrite)
        elif run_dir.is_done() and (run_dir.path / CHECKPOINT).is_file():  # said before the data loads
            raise HebbcoreError(f"cannot resume {str(run_dir.path)!r}: the run is finished; train it again with "
                                "--overwrite")  # fmt: skip
        prefix = None
        if features is not None:
            dataset = dataset if dataset is not None else load_dataset(spec, registry)
            prefix = _on_cached_features(spec, registry, make_backend(registry, backend, device), dataset, features,
                                         shard, log)  # fmt: skip
        training = Training(
            spec, registry, backend, run_dir, device, dataset, shard, progress, checkpoint_every, prefix, log
        )
        training.start(resume, overwrite)
        return training.train()


def _on_cached_features(
    spec: RunSpec, registry: Registry, ops, data: Dataset, cache: FeatureCache, shard: Shard, log: Callable
) -> FrozenPrefix | None:
    """``spec`` split at its frozen prefix, whose output ``cache`` holds; None (and why, in ``log``) if not."""
    if shard.world > 1:
        log(f"{spec.name}: the feature cache serves single-process runs; this data-parallel one runs every layer")
        return None
    prefix, why = frozen_prefix(spec, registry, ops, data, cache)
    if why:
        log(f"{spec.name}: not caching the frozen layers' output: {why}; they run on every batch (slower)")
    elif prefix is not None:
        below = spec.layers[len(spec.layers) - len(prefix.top.layers) - 1].name
        log(f"{spec.name}: layers up to {below} frozen; training the rest on cached features "
            f"{tuple(prefix.data.input_shape)}")  # fmt: skip
    return prefix


def _segment(ops, shard: Shard, position: dict | None = None) -> dict:
    """One stretch of a run on one backend (a run resumed on another backend has several)."""
    seg = {
        "backend": ops.name,
        "device": str(ops.device),
        "world_size": shard.world,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if position is not None:
        seg["resumed_at"] = dict(position)
    return seg


class Training:
    """One run in a locked run directory: its network, data, RNG, metrics and position; one method per phase."""

    def __init__(
        self,
        spec: RunSpec,
        registry: Registry,
        backend: str,
        run_dir: RunDir,
        device: str | None,
        dataset: Dataset | None,
        shard: Shard,
        progress: bool | None,
        checkpoint_every: int,
        prefix: FrozenPrefix | None = None,
        log: Callable[[str], None] = print,
    ):
        # with a cached frozen prefix the layers above train (``self.spec``) and the files describe ``spec``
        self.recorded, self.prefix, self.dataset_given = spec, prefix, dataset
        spec = prefix.top if prefix else spec
        self.spec, self.registry, self.run_dir, self.shard = spec, registry, run_dir, shard
        self.progress, self.checkpoint_every, self.log = progress, checkpoint_every, log
        self.ops = make_backend(registry, backend, device)
        self.data = prefix.data if prefix else dataset if dataset is not None else load_dataset(spec, registry)
        self.net = Network(spec, self.data.input_shape, self.data.n_classes, self.ops, registry)
        self.net.reducer = shard.reducer
        self.writer = Checkpointer(run_dir, prefix.state if prefix else None)
        self.rng = np.random.default_rng(spec.seed)
        self.position = {"phase_index": 0, "epoch": 1, "batch": 0}
        self.sgd_state: dict | None = None
        self.metrics: dict = {}

    def start(self, resume: bool, overwrite: bool) -> None:
        """Restore the checkpoint (``resume``) or begin a fresh run, refusing a directory that holds one."""
        spec, out, ops, data = self.spec, self.run_dir.path, self.ops, self.data
        if resume:  # every rank reads the checkpoint; only rank 0 writes
            saved = self.run_dir.load_checkpoint()
            source = str(out / CHECKPOINT)
            if _resolved(saved.get("spec"), self.registry) != spec_to_table(self.recorded):
                raise HebbcoreError(f"cannot resume {str(out)!r}: its spec.toml differs from the checkpoint's spec")
            self._check_same_cache(saved.get("metrics"), str(out))
            try:
                self.net.load_state_dict(saved["net"], source=source, strict=True)
                self.net.load_rule_state(saved["rule_state"], source=source)
                self.rng.bit_generator.state = saved["rng_at_epoch_start"]
                self.position = {k: int(saved[k]) for k in self.position}
                self.metrics = saved["metrics"]
                if not isinstance(self.metrics, dict):
                    raise TypeError("metrics is not a table")
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise DataError(f"cannot resume: {source!r} lacks or garbles {exc}; start the run again") from None
            if self.position["phase_index"] >= len(spec.phases) and self.metrics.get("final"):
                raise HebbcoreError(f"cannot resume {str(out)!r}: the run is finished; train it again with "
                                    f"--overwrite")  # fmt: skip
            self.sgd_state = saved.get("sgd")
            self.metrics.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            self.metrics.setdefault("segments", []).append(_segment(ops, self.shard, self.position))
            self.metrics["backend"], self.metrics["device"] = ops.name, str(ops.device)
            return
        self.run_dir.prepare_fresh(overwrite)
        if spec.init_weights:
            self.net.load_npz(spec.init_weights)
        if self.prefix:  # the initial weights the whole network drew or loaded for the layers above the cache
            start = self.prefix.whole.state_dict()
            self.net.load_state_dict({k: v for k, v in start.items() if k not in self.prefix.state})
        self.metrics = {
            "spec": spec.name,
            "backend": ops.name,
            "device": str(ops.device),
            "dataset": data.name,
            "n_train": len(data.train),
            "n_val": len(data.val),
            "n_test": len(data.test),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "world_size": self.shard.world,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "segments": [_segment(ops, self.shard)],
            "epochs": [],
            "final": None,
        }
        if self.prefix:
            self.metrics["feature_cache"] = self.prefix.record
        self.run_dir.write_text("spec.toml", dumps_toml(spec_to_table(self.recorded)))
        self.run_dir.write_json("metrics.json", self.metrics)

    def _check_same_cache(self, saved_metrics: Any, out: str) -> None:
        """A run trained on cached features resumes on the same features, one that ran through its layers
        without them."""
        before = (saved_metrics.get("feature_cache") or {}) if isinstance(saved_metrics, dict) else {}
        now = self.prefix.record if self.prefix else {}
        if before and not now and self.shard.world > 1:
            raise HebbcoreError(
                f"cannot resume {out!r} data-parallel: it trained on cached features of its frozen layers, which "
                f"only single-process runs use; resume it in one process"
            )
        if before and now and before.get("key") not in (None, now["key"]):
            raise HebbcoreError(
                f"cannot resume {out!r}: its frozen layers' weights or its data differ from those it started with "
                f"(was its init_weights file replaced?)"
            )
        if before.get("trains_from") != now.get("trains_from"):
            how = {True: "on cached features of its frozen layers", False: "through all its layers"}
            raise HebbcoreError(
                f"cannot resume {out!r}: it trained {how[bool(before)]}, and would now train {how[bool(now)]}; "
                f"resume it as it started (the feature cache "
                f"{'on' if before else 'off'}{', with room for the features' if before else ''})"
            )

    def save(
        self, phase_index: int, epoch: int, batch: int, rng_state: Mapping[str, Any], sgd: dict | None = None
    ) -> None:
        """Checkpoint: training resumes at ``phase_index``, ``epoch``, ``batch`` with ``rng_state``."""
        phases = self.spec.phases
        state = {
            "spec": spec_to_table(self.recorded),
            "phase": phases[phase_index] if phase_index < len(phases) else "done",
            "phase_index": phase_index,
            "epoch": epoch,
            "batch": batch,
            "rng_at_epoch_start": rng_state,
            "sgd": sgd,
        }
        self.writer.save(state, self.net, self.metrics)

    def record_epoch(self, record: dict, phase_index: int, next_epoch: int, sgd: dict | None = None) -> None:
        self.metrics["epochs"].append(record)
        self.announce(record)
        self.save(phase_index, next_epoch, 0, self.rng.bit_generator.state, sgd)
        if self.shard.rank == 0:
            self.registry.pm.hook.hebbcore_epoch_end(run_dir=str(self.run_dir.path), record=record)

    def announce(self, record: dict) -> None:
        """One line per epoch on stderr when it is not a terminal (nohup, SLURM, CI), where no bar is drawn."""
        if self.progress is False or self.shard.rank != 0 or sys.stderr.isatty():
            return
        total = getattr(self.spec, record["phase"]).epochs
        parts = [f"{record['phase']} epoch {record['epoch']}/{total}"]
        if record.get("images_per_s"):
            parts.append(f"{record['images_per_s']:.0f} img/s")
        accuracies = [(k[:-4], record.get(k)) for k in ("train_acc", "val_acc", "test_acc")]
        parts += [f"{name} {100 * acc:.2f}%" for name, acc in accuracies if acc is not None]
        if record.get("seconds") and record["epoch"] < total:
            parts.append(f"phase ETA {_duration(record['seconds'] * (total - record['epoch']))}")
        print(f"{self.spec.name}: " + ", ".join(parts), file=sys.stderr, flush=True)

    def train(self) -> RunResult:
        for phase_index, phase in enumerate(self.spec.phases):
            if phase_index < self.position["phase_index"]:
                continue
            resuming = phase_index == self.position["phase_index"]
            if phase == "hebbian" and self.net.hebbian_nodes:
                first_epoch = self.position["epoch"] if resuming else 1
                self.hebbian_phase(phase_index, first_epoch, self.position["batch"] if resuming else 0)
            elif phase == "sgd" and self.net.sgd_nodes and self.spec.sgd.epochs > 0:
                self.sgd_phase(phase_index, self.sgd_state if resuming else None)
            self.save(phase_index + 1, 1, 0, self.rng.bit_generator.state)
        if self.shard.rank == 0:
            self.finish()
        if self.prefix:  # the whole network and the data it was given, not the layers above the cache
            whole = self.prefix.whole
            whole.load_state_dict(self.net.state_dict(), strict=False)
            given = self.dataset_given if self.dataset_given is not None else self.data
            return RunResult(self.run_dir.path, self.metrics, whole, given)
        return RunResult(self.run_dir.path, self.metrics, self.net, self.data)

    def hebbian_phase(self, phase_index: int, first_epoch: int, start_batch: int) -> None:
        cfg, net, data = self.spec.hebbian, self.net, self.data
        learn = data  # the images the Hebbian layers learn from; accuracies are still the labelled splits
        if cfg.data == "unlabeled":
            if data.unlabeled is None or not len(data.unlabeled):
                raise DataError(f"hebbian.data = 'unlabeled': the dataset {data.name!r} holds no unlabeled images")
            learn = data.replace(train=data.unlabeled)
        resident = device_resident(self.ops, learn.train.x, learn.train.y)
        for epoch in range(first_epoch, cfg.epochs + 1):
            rng_state = self.rng.bit_generator.state
            seconds = hebbian_epoch(
                net, learn, cfg.batch_size, self.rng, epoch, cfg.epochs, cfg.check_every, self.progress,
                start_batch=start_batch if epoch == first_epoch else 0, shard=self.shard,
                checkpoint=functools.partial(self._mid_epoch_checkpoint, phase_index, epoch, rng_state),
                checkpoint_every=self.checkpoint_every, resident=resident, postfix=self.last_accuracy(),
            )  # fmt: skip
            evaluate = self.shard.rank == 0 and self.spec.hebbian_epochs_measure
            measure = epoch_splits(cfg.evaluate, bool(len(data.val))) if evaluate else frozenset()
            head = data.train_head(cfg.train_acc_images)
            record = {
                "phase": "hebbian",
                "epoch": epoch,
                "train_acc": accuracy(net, head.x, head.y) if "train" in measure else None,
                "val_acc": accuracy(net, data.val.x, data.val.y) if "val" in measure else None,
                "test_acc": accuracy(net, data.test.x, data.test.y) if "test" in measure else None,
                "seconds": seconds,
                "images_per_s": len(learn.train) / seconds,
                **({"train_acc_images": len(head)} if cfg.train_acc_images else {}),
            }
            self.record_epoch(record, phase_index, epoch + 1)

    def last_accuracy(self) -> dict:
        """The last epoch's validation (or train) accuracy, for the bar."""
        for record in reversed(self.metrics.get("epochs", [])):
            for key in ("val_acc", "train_acc"):
                if record.get(key) is not None:
                    return {key[:-4]: f"{100 * record[key]:.1f}%"}
        return {}

    def _mid_epoch_checkpoint(
        self, phase_index: int, epoch: int, rng_state: Mapping[str, Any], batches_done: int
    ) -> None:
        self.save(phase_index, epoch, batches_done, rng_state)

    def labelled(self) -> tuple[np.ndarray | None, dict | None]:
        """The training images a label-scarce probe (``labels_per_class`` / ``label_fraction``) trains on, drawn
        by seed (the Hebbian phase saw every image), and their record; ``(None, None)`` for an ordinary phase."""
        data, cfg = self.data, self.spec.sgd
        if not (cfg.labels_per_class or cfg.label_fraction):
            return None, None
        idx = label_subset(data.train.y, data.n_classes, cfg.labels_per_class, cfg.label_fraction, self.spec.seed)
        record: dict[str, Any] = {
            "per_class": cfg.labels_per_class or None,
            "fraction": cfg.label_fraction or None,
            "images": len(idx),
            "seed": self.spec.seed,
            "indices_sha256": hashlib.sha256(idx.astype("<i8").tobytes()).hexdigest(),
        }
        if cfg.labels_per_class:
            counts = np.bincount(data.train.y[idx], minlength=data.n_classes)
            short = {int(c): int(n) for c, n in enumerate(counts) if n < cfg.labels_per_class}
            if short:  # a class with fewer training images than asked gives all it has
                record["short_classes"] = {str(c): n for c, n in short.items()}  # as metrics.json keeps it
        return idx, record

    def sgd_phase(self, phase_index: int, sgd_state: dict | None) -> None:
        try:
            from .sgd import SgdPhase
        except ImportError as exc:
            raise HebbcoreError(f"the SGD phase needs torch (pip install torch): {exc}") from None
        data = self.data
        idx, record = self.labelled()
        if record and record.get("short_classes"):
            short = ", ".join(f"class {c}: {n}" for c, n in record["short_classes"].items())
            self.log(
                f"{self.spec.name}: sgd.labels_per_class = {self.spec.sgd.labels_per_class}, but some classes have "
                f"fewer training images; all of theirs are used ({short})"
            )
        if idx is not None:
            mirrored = data.train_mirrored
            data = data.replace(
                train=Split(data.train.x[idx], data.train.y[idx]),
                train_mirrored=None if mirrored is None else Split(mirrored.x[idx], mirrored.y[idx]),
            )
            self.metrics["sgd_labels"] = record
        trainer = SgdPhase(self.net, data, self.spec.seed, rank=self.shard.rank, world=self.shard.world)
        if sgd_state is not None:
            try:
                trainer.load_state(sgd_state)
            except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
                source = str(self.run_dir.path / CHECKPOINT)
                raise DataError(
                    f"cannot resume: {source!r} holds a garbled SGD state ({exc}); "
                    f"train the run again from the start with --overwrite"
                ) from None
        best = trainer.run(
            on_epoch=functools.partial(self._sgd_epoch_end, phase_index, trainer),
            checkpoint=functools.partial(self._sgd_checkpoint, phase_index, trainer),
            checkpoint_every=self.checkpoint_every,
            progress=self.progress,
        )
        if self.spec.sgd.keep_best and best.get("epoch") is not None:  # whose weights the final record measures
            self.metrics["sgd_kept_epoch"] = int(best["epoch"])

    def _sgd_epoch_end(self, phase_index: int, trainer, record: dict) -> None:
        self.record_epoch(record, phase_index, trainer.epoch, trainer.state())

    def _sgd_checkpoint(self, phase_index: int, trainer) -> None:
        self.save(phase_index, trainer.epoch, trainer.batch, self.rng.bit_generator.state, trainer.state())

    def finish(self) -> None:
        """Final accuracies, confusion matrix and plots (rank 0)."""
        net, data, metrics = self.net, self.data, self.metrics
        ran = {"sgd": self.spec.sgd.epochs > 0 and bool(net.sgd_nodes), "hebbian": self.spec.hebbian.epochs > 0}
        phase = next((p for p in reversed(self.spec.phases) if ran[p]), "hebbian")
        last = self.spec.sgd if phase == "sgd" else self.spec.hebbian  # as the last phase that ran measured it
        head = data.train_head(last.train_acc_images)  # as the last phase's epochs measured it
        idx = self.labelled()[0] if phase == "sgd" else None
        if idx is not None:  # a label-scarce probe: its labelled images (the head of them), without copying all
            idx = idx[: last.train_acc_images] if last.train_acc_images > 0 else idx
            head = Split(data.train.x[idx], data.train.y[idx])
        predicted = {}  # each split's predictions, computed once (accuracy and confusion matrix)
        if net.is_classifier:
            predicted = {k: net.predict(s.x) for k, s in (("val", data.val), ("test", data.test)) if len(s)}
        labels = {"val": data.val.y, "test": data.test.y}
        metrics["final"] = {
            "train_acc": accuracy(net, head.x, head.y),
            **{f"{k}_acc": float((predicted[k] == labels[k]).mean()) if k in predicted else None for k in labels},
        }
        if last.train_acc_images:
            metrics["final"]["train_acc_images"] = len(head)
        split = "test" if "test" in predicted else "val"
        if split in predicted:
            metrics["final"]["confusion_split"] = split
            metrics["final"]["confusion"] = confusion_matrix(predicted[split], labels[split], data.n_classes).tolist()
        metrics["class_names"] = list(data.class_names)
        metrics["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.save(len(self.spec.phases), 1, 0, self.rng.bit_generator.state)
        write_plots(self.run_dir.path)


def _resolved(table: Any, registry: Registry) -> Any:
    """A checkpoint's recorded spec with today's defaults filled in (a checkpoint from an older hebbcore
    records fewer keys); the table itself when it no longer parses."""
    try:
        return spec_to_table(parse_spec(table, registry))
    except (HebbcoreError, TypeError, AttributeError):
        return table


def label_subset(y: np.ndarray, n_classes: int, per_class: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a class-stratified labelled subset of ``y``: ``per_class`` images of each class (all of
    a smaller class) or ``round(fraction · count)`` of each (at least one), drawn by ``seed``."""
    rng = np.random.default_rng([seed, 0x1ABE15])  # its own stream: the Hebbian phase's order is unchanged
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(y == c)
        k = min(per_class, len(members)) if per_class else max(1, round(fraction * len(members))) if len(members) else 0
        chosen.append(rng.permutation(members)[:k])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(round(seconds)), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def confusion_matrix(pred: np.ndarray, true: np.ndarray, n_classes: int) -> np.ndarray:
    """``cm[t, p]``: how many samples of class t were predicted as p."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (true, pred), 1)
    return cm


def write_plots(out: Path) -> list[Path]:
    """Kernel grid, learning curves and confusion matrix under ``out/plots`` (skipped without matplotlib)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return []
    from .plots import write_run_plots

    return write_run_plots(out)


METRIC_COLUMNS = ("phase", "epoch", "train_acc", "val_acc", "test_acc", "loss", "lr", "seconds", "images_per_s")


def metrics_csv(metrics: dict) -> str:
    """The per-epoch records as CSV (one row per epoch)."""
    rows = [",".join(METRIC_COLUMNS)]
    for e in metrics["epochs"]:
        rows.append(",".join("" if e.get(c) is None else str(e.get(c)) for c in METRIC_COLUMNS))
    return "\n".join(rows) + "\n"
