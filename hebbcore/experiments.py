"""Run sets of specs resumably, and report measured accuracies against published ones.

    python -m hebbcore.experiments run experiments/paper/t2_GGGGGG.toml experiments/paper/t2_HHHHHH.toml --backend torch
    python -m hebbcore.experiments run experiments/paper            # every spec of the folder
    python -m hebbcore.experiments report experiments/paper          # REPORT.md and plots

A folder of experiments holds TOML run specs and a manifest, ``experiments.toml``,
with one ``[[experiment]]`` per reported row:

- ``name``: the run's name (its results live in ``<results>/<name>/``);
- ``spec``: the spec file (relative to the folder), or ``same_as``: the name of
  another row whose run this row reports (one run may fill two table cells);
- ``paper``: the published accuracy in percent; ``table`` and ``row``: labels;
- ``goal``: ``"match"`` (default: within the tolerance of ``paper``) or ``"beat"``
  (above ``paper``), what the report checks;
- ``repeats``: the row this run repeats with another seed; the report gives
  each such row's spread over its seeds (mean ± sd) and judges the row by it;
- ``init_from`` and ``init_layers``: the run whose ``weights.npz`` this spec
  starts from, and the trainable layers taken from it (their batch-norms come
  along). The weights are written to ``<results>/<name>/init_weights.npz``
  and the spec's ``init_weights`` points there.

``run`` runs the dependencies first and skips runs whose ``metrics.json``
already has a ``final`` record (``--force`` reruns them), so a killed command
continues where it stopped; a run cut off mid-way continues from its last
checkpoint (each epoch's end, or every ``--checkpoint-every`` batches) when its
spec is unchanged, and the replayed batches give the weights an uninterrupted
run would have. A finished run
whose spec file has changed since (compared resolved, with the run's own
overrides) is not rerun silently: ``run`` and ``--dry-run`` name the changed
fields, keep its results, fail the runs that need it and exit 1. When a spec's
bottom layers are all ``frozen`` or ``random``, their output is computed once
and kept in memory, and only the layers above train on it ("feature cache");
the run's ``spec.toml`` and ``weights.npz`` still describe the whole network.

``report`` writes ``REPORT.md`` (measured test accuracy vs the paper for every
row, "not run yet" where there is no result) and PNG plots (layer-1 kernels,
accuracy per layer) into the results folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, HebbcoreError, SpecError
from .interfaces import Dataset, Split, check_hflip_inputs
from .io import atomic_save_npz, atomic_write_text
from .plugin_manager import Registry
from .rundir import RunDir
from .spec import RunSpec, check_path_name, dumps_toml, parse_spec, spec_to_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MANIFEST = "experiments.toml"
GOALS = ("match", "beat")


def _feature_cache_bytes() -> int:
    """``HEBBCORE_FEATURE_CACHE_BYTES``, else a quarter of the physical memory (2.5 GB where unknown)."""
    if os.environ.get("HEBBCORE_FEATURE_CACHE_BYTES"):
        return int(os.environ["HEBBCORE_FEATURE_CACHE_BYTES"])
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (AttributeError, ValueError, OSError):
        return 2_500_000_000


#: Memory all cached feature sets may take together (bytes).
FEATURE_CACHE_BYTES = _feature_cache_bytes()


@dataclass
class Experiment:
    """One row of a manifest (or a spec file with no manifest entry)."""

    name: str
    folder: Path
    spec: str = ""
    same_as: str = ""
    paper: float | None = None
    table: str = ""
    row: str = ""
    init_from: str = ""
    init_layers: tuple[str, ...] = ()
    goal: str = "match"
    repeats: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def spec_path(self) -> Path:
        return self.folder / self.spec


def load_manifest(folder: str | Path) -> OrderedDict[str, Experiment]:
    """The rows of ``folder/experiments.toml`` by name (empty when the folder has none)."""
    folder = Path(folder)
    path = folder / MANIFEST
    out: OrderedDict[str, Experiment] = OrderedDict()
    if not path.is_file():
        return out
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError([f"cannot read the manifest ({exc})"], str(path)) from None
    problems = []
    known = {f.name for f in dataclasses.fields(Experiment)} - {"folder", "extra"}
    for i, row in enumerate(table.get("experiment", [])):
        if not isinstance(row, dict) or not isinstance(row.get("name"), str):
            problems.append(f"experiment[{i}]: expected a table with a string 'name'")
            continue
        kw = {k: v for k, v in row.items() if k in known}
        kw["init_layers"] = tuple(kw.get("init_layers", ()))
        exp = Experiment(folder=folder, extra={k: v for k, v in row.items() if k not in known}, **kw)
        problems += [f"experiment[{i}].name: {p}" for p in check_path_name(exp.name)]
        if not exp.spec and not exp.same_as:
            problems.append(f"experiment[{i}] ({exp.name}): needs 'spec' or 'same_as'")
        if exp.name in out:
            problems.append(f"experiment[{i}]: name {exp.name!r} is used twice")
        if exp.goal not in GOALS:
            problems.append(f"experiment[{i}] ({exp.name}).goal: expected one of {GOALS}, got {exp.goal!r}")
        out[exp.name] = exp
    for exp in out.values():
        for dep in filter(None, (exp.same_as, exp.init_from, exp.repeats)):
            if dep not in out:
                problems.append(f"experiment {exp.name!r}: refers to {dep!r}, which the manifest does not list")
    if problems:
        raise SpecError(problems, str(path))
    return out


def collect(paths: Sequence[str | Path]) -> tuple[OrderedDict[str, Experiment], list[str]]:
    """All manifest rows of the folders involved, and the names requested by ``paths`` (spec files or folders)."""
    rows: OrderedDict[str, Experiment] = OrderedDict()
    wanted: list[str] = []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        manifest = load_manifest(folder)
        for name, exp in manifest.items():
            rows.setdefault(name, exp)
        if p.is_dir():
            wanted += [n for n, e in manifest.items() if e.spec]
            continue
        if not p.is_file():
            raise SpecError(["file does not exist"], str(p))
        by_spec = {e.spec_path.resolve(): n for n, e in manifest.items() if e.spec}
        name = by_spec.get(p.resolve())
        if name is None:  # a spec outside any manifest
            name = p.stem
            rows.setdefault(name, Experiment(name=name, folder=folder, spec=p.name))
        wanted.append(name)
    return rows, list(OrderedDict.fromkeys(wanted))


def order_with_dependencies(rows: dict[str, Experiment], wanted: Sequence[str]) -> list[str]:
    """``wanted`` plus the runs they start from, dependencies first."""
    out: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in out:
            return
        if name in visiting:
            raise SpecError([f"experiment {name!r}: circular init_from / same_as"], MANIFEST)
        visiting.add(name)
        exp = rows[name]
        for dep in filter(None, (exp.same_as, exp.init_from)):
            visit(dep)
        visiting.discard(name)
        if exp.spec:
            out.append(name)

    for n in wanted:
        visit(n)
    return out


# ------------------------------------------------------------------------------------------------ results


def read_metrics(run_dir: Path) -> dict | None:
    return RunDir(run_dir).read_metrics()


def is_done(run_dir: Path) -> bool:
    return RunDir(run_dir).is_done()


def interrupted_position(run_dir: Path, spec_table: dict | None = None) -> str | None:
    """Where an unfinished run in ``run_dir`` stopped ("sgd epoch 7"), or None when it cannot resume.

    None: the run is finished or has no readable checkpoint, or ``spec_table`` (the spec it would run
    now, as :func:`spec_to_table` writes it) differs from the checkpoint's. Asked of the run
    directory's owner, :class:`hebbcore.rundir.RunDir`.
    """
    return RunDir(run_dir).interrupted_position(spec_table)


def stale_fields(spec_file: Path, run_dir: Path, registry) -> list[str]:
    """Top-level spec fields in which ``spec_file`` (now) differs from the finished run in ``run_dir``.

    The spec file gets the overrides the run was made with (``metrics.json``), both sides are resolved
    (defaults filled in), and ``init_weights`` is left out (it names a file, not a setting). An
    unreadable spec on either side counts as a change of ``spec``.
    """
    recorded = run_dir / "spec.toml"
    if not recorded.is_file():
        return []
    try:
        info = (read_metrics(run_dir) or {}).get("experiment") or {}
        now = Overrides(**(info.get("overrides") or {})).apply(tomllib.loads(spec_file.read_text(encoding="utf-8")))
        then = tomllib.loads(recorded.read_text(encoding="utf-8"))
        for t in (now, then):
            t.pop("init_weights", None)
        a = spec_to_table(parse_spec(now, registry, str(spec_file)))
        b = spec_to_table(parse_spec(then, registry, str(recorded)))
    except (OSError, TypeError, tomllib.TOMLDecodeError, HebbcoreError):
        return ["spec"]
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def layer_params_to_take(layers: list[dict], take: Sequence[str]) -> set[str]:
    """Names of the layers whose parameters come from the parent run: ``take`` and the batch-norms above them."""
    names, last_trainable = set(take), None
    for l in layers:
        if l.get("type") in ("conv", "linear"):
            last_trainable = l.get("name")
        elif l.get("type") == "batchnorm" and last_trainable in take:
            names.add(l.get("name"))
    return names


def write_init_weights(parent_weights: Path, layers: list[dict], take: Sequence[str], dest: Path) -> list[str]:
    """Copy the parameters of layers ``take`` (and their batch-norms) from ``parent_weights`` into ``dest``."""
    from .network import read_npz

    arrays = read_npz(parent_weights, "weights of the run to start from")
    keep = layer_params_to_take(layers, take)
    chosen = {k: v for k, v in arrays.items() if k.split(".", 1)[0] in keep}
    missing = [n for n in take if f"{n}.weight" not in chosen]
    if missing:
        raise DataError(f"weights {str(parent_weights)!r} hold no parameters for layer(s) {missing}")
    atomic_save_npz(dest, chosen)
    return sorted(chosen)


def git_commit(cwd: Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# ------------------------------------------------------------------------------------------------ feature cache


def frozen_prefix_cut(spec: RunSpec) -> int:
    """Number of leading layers whose output can be computed once, 0 if none.

    The prefix holds the leading ``frozen`` / ``random`` conv and linear layers
    with the ReLU, triangle, pad, pool and flatten layers between them, and the
    batch-norms that follow a ``frozen`` layer, or normalise the input below a
    ``frozen`` first layer (their statistics come with the weights and are used
    as at inference, as for any fixed feature extractor). It stops at
    a batch-norm above a ``random`` layer unless that batch-norm is ``frozen``
    (its statistics must still be learned), at a batch-norm with ``train =
    "sgd"``, at dropout, and at the first layer that trains.
    """
    first = next((l for l in spec.layers if l.trainable), None)
    # a batch-norm of the input (below every trainable layer) is as frozen as the first trainable layer
    cut, below = 0, "frozen" if first is not None and first.train == "frozen" else ""
    for i, l in enumerate(spec.layers):
        if l.trainable:
            if l.train not in ("frozen", "random"):
                break
            below = l.train
        elif l.type == "batchnorm":
            # an SGD-trained batch-norm is not a fixed feature; one above a random layer is, when frozen itself
            if l.train == "sgd" or (below != "frozen" and l.train != "frozen"):
                break
        elif l.type not in ("relu", "triangle", "pad", "pool", "flatten"):
            break
        cut = i + 1
    if not any(l.trainable and l.train in ("hebbian", "sgd") for l in spec.layers[cut:]):
        return 0
    if not any(l.trainable for l in spec.layers[:cut]):
        return 0
    return cut


class FeatureCache:
    """Outputs of frozen bottom layers, kept in memory (a few entries, least recently used dropped).

    Entries are keyed by a chain of hashes, one per layer (its spec and
    parameters, on top of the keys below it), so a deeper prefix of the same
    frozen layers starts from a shallower cached one instead of from the images.
    """

    def __init__(self, max_entries: int = 4, max_bytes: int = FEATURE_CACHE_BYTES):
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.entries: OrderedDict[str, Dataset] = OrderedDict()
        self.hits = 0
        self.extended = 0
        self.too_large: str = ""  # why the last features() call returned None, for the log

    @staticmethod
    def nbytes(data: Dataset) -> int:
        return sum(s.x.nbytes for s in (data.train, data.val, data.test, data.train_mirrored) if s is not None)

    @staticmethod
    def layer_keys(net, cut: int, data_key: str) -> list[str]:
        """One key per layer of the prefix: the hash of the key below, the layer's spec and its parameters."""
        keys, prev = [], hashlib.sha256(data_key.encode()).hexdigest()
        for node in net.nodes[:cut]:
            h = hashlib.sha256(prev.encode())
            h.update(repr(node.spec).encode())
            for k in sorted(node.params):
                h.update(np.ascontiguousarray(net.ops.to_numpy(node.params[k])).tobytes())
            prev = h.hexdigest()
            keys.append(prev)
        return keys

    def features(
        self, net, cut: int, data: Dataset, data_key: str, batch: int = 500, mirrored: bool = False
    ) -> Dataset | None:
        """The output of ``net``'s first ``cut`` layers for every split of ``data`` (None: over the budget).

        ``mirrored``: also for the left-right mirror image of each training image (``Dataset.train_mirrored``).
        """
        if mirrored:
            check_hflip_inputs(data.train.x.shape)
        keys = self.layer_keys(net, cut, data_key)
        entry = self.entries.get(keys[-1])
        if entry is not None and (entry.train_mirrored is not None or not mirrored):
            self.entries.move_to_end(keys[-1])
            self.hits += 1
            return entry
        shape = net.nodes[cut - 1].out_shape
        n = len(data.train) + len(data.val) + len(data.test) + (len(data.train) if mirrored else 0)
        need = int(np.prod(shape)) * 4 * n
        extra = need - (self.nbytes(entry) if entry is not None else 0)  # what is computed now
        if need > self.max_bytes:
            self.too_large = (
                f"its features would take {need / 1e9:.1f} GB, over the cache's "
                f"{self.max_bytes / 1e9:.1f} GB (HEBBCORE_FEATURE_CACHE_BYTES)"
            )
            return None
        self.too_large = ""
        start, source, source_key = 0, data, None
        for j in range(cut - 1, 0, -1):
            if keys[j - 1] in self.entries and (not mirrored or self.entries[keys[j - 1]].train_mirrored is not None):
                start, source, source_key = j, self.entries[keys[j - 1]], keys[j - 1]
                self.extended += 1
                break
        # make room first: the budget holds while the new features are computed, not only after
        for key in [k for k in self.entries if k not in (keys[-1], source_key)]:
            if sum(map(self.nbytes, self.entries.values())) + extra <= self.max_bytes:
                break
            del self.entries[key]  # least recently used first
        ops = net.ops

        def run(split: Split) -> Split:
            out = np.empty((len(split),) + tuple(shape), dtype=np.float32)
            for i in range(0, len(split), batch):
                x = ops.asarray(split.x[i : i + batch])
                for node in net.nodes[start:cut]:
                    x = net.layer_forward(node, x, batch_stats=False)
                out[i : i + batch] = ops.to_numpy(x)
            return Split(out, split.y)

        if entry is not None:  # the same features without the mirrored ones: only those are computed
            feats = entry
            del self.entries[keys[-1]]
        else:
            feats = data.replace(train=run(source.train), val=run(source.val), test=run(source.test))
        if mirrored:
            below = (
                source.train_mirrored if start else Split(np.ascontiguousarray(data.train.x[..., ::-1]), data.train.y)
            )
            feats = feats.replace(train_mirrored=run(below))
        self.entries[keys[-1]] = feats
        while len(self.entries) > 1 and (
            len(self.entries) > self.max_entries or sum(map(self.nbytes, self.entries.values())) > self.max_bytes
        ):
            self.entries.popitem(last=False)  # least recently used first; the new entry stays
        return feats


# ------------------------------------------------------------------------------------------------ running


@dataclass
class Overrides:
    """Changes to every spec of a command (reduced runs are labelled as such in metrics and report)."""

    sgd_epochs: int | None = None
    hebbian_epochs: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None

    def active(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    def apply(self, table: dict) -> dict:
        table = json.loads(json.dumps(table))  # deep copy of plain data
        if self.sgd_epochs is not None and table.get("sgd", {}).get("epochs", 0) > 0:
            table["sgd"]["epochs"] = self.sgd_epochs
        if self.hebbian_epochs is not None:
            table.setdefault("hebbian", {})["epochs"] = self.hebbian_epochs
        for k in ("n_train", "n_val", "n_test"):
            v = getattr(self, k)
            if v is not None:
                table.setdefault("data", {}).setdefault("options", {})[k] = v
        return table


class ExperimentRunner:
    def __init__(
        self,
        registry: Registry,
        results: Path | None = None,
        backend: str = "numpy",
        device: str | None = None,
        overrides: Overrides | None = None,
        force: bool = False,
        feature_cache: bool = True,
        progress: bool | None = None,
        log=print,
        command: str = "",
        checkpoint_every: int = 0,
    ):
        """``checkpoint_every``: also checkpoint every that many batches (always at each epoch's end).

        A run stopped before it finished (killed, Ctrl-C, a machine going away) continues from its last
        checkpoint the next time it is asked for, unless ``force`` or its spec changed since.
        """
        self.registry, self.results, self.backend, self.device = registry, results, backend, device
        self.checkpoint_every = checkpoint_every
        self.overrides, self.force, self.progress, self.log = overrides or Overrides(), force, progress, log
        self.cache = FeatureCache() if feature_cache else None
        self.datasets: OrderedDict[Any, Dataset] = OrderedDict()
        self.command = command
        self._parent_reduced: dict = {}

    def results_dir(self, exp: Experiment) -> Path:
        return (self.results or exp.folder / "results") / exp.name

    def dataset(self, spec: RunSpec) -> Dataset:
        from .runner import load_dataset

        key = repr(spec.data)
        if key not in self.datasets:
            self.datasets[key] = load_dataset(spec, self.registry)
            while len(self.datasets) > 2:
                self.datasets.popitem(last=False)
        self.datasets.move_to_end(key)
        return self.datasets[key]

    def spec_changes(self, exp: Experiment) -> list[str]:
        """Top-level fields in which the finished run's ``spec.toml`` differs from the spec file now ([] if none)."""
        return stale_fields(exp.spec_path, self.results_dir(exp), self.registry)

    def prepare(self, exp: Experiment, rows: dict[str, Experiment]) -> RunSpec:
        """The spec of ``exp`` with its init weights written and the overrides applied."""
        self._parent_reduced = {}
        try:
            table = tomllib.loads(exp.spec_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SpecError(["file does not exist"], str(exp.spec_path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise SpecError([f"not valid TOML: {exc}"], str(exp.spec_path)) from None
        table = self.overrides.apply(table)
        out = self.results_dir(exp)
        if exp.init_from:
            parent = self.results_dir(rows[exp.init_from])
            if not is_done(parent):
                raise HebbcoreError(
                    f"{exp.name}: needs the finished run {exp.init_from!r} ({parent} has no final "
                    f"metrics); run it first"
                )
            parent_info = (read_metrics(parent) or {}).get("experiment") or {}
            self._parent_reduced = dict(
                parent_info.get("overrides") or {}, **(parent_info.get("parent_overrides") or {})
            )
            dest = out / "init_weights.npz"
            write_init_weights(parent / "weights.npz", table.get("layers", []), exp.init_layers, dest)
            table["init_weights"] = str(dest)
        table["name"] = table.get("name", exp.name)
        return parse_spec(table, self.registry, str(exp.spec_path), against_data=True)

    def run_one(self, exp: Experiment, rows: dict[str, Experiment]) -> dict:
        out = RunDir(self.results_dir(exp))
        with out.locked():  # one run of the directory at a time, from its init weights to its final metrics
            return self._run_one_locked(exp, rows, out)

    def _run_one_locked(self, exp: Experiment, rows: dict[str, Experiment], out: RunDir) -> dict:
        from .network import Network
        from .runner import make_backend, run

        spec = self.prepare(exp, rows)
        data = self.dataset(spec)
        t0 = time.time()
        info: dict[str, Any] = {
            "name": exp.name,
            "spec": str(exp.spec_path),
            "command": self.command,
            "backend": self.backend,
            "device": self.device,
            "overrides": self.overrides.active(),
            "init_from": exp.init_from,
            "git_commit": git_commit(exp.folder),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if exp.init_from and self._parent_reduced:
            info["parent_overrides"] = self._parent_reduced  # the weights it starts from come from a REDUCED run
        cut = frozen_prefix_cut(spec) if self.cache is not None else 0
        feats = None
        if cut:
            ops = make_backend(self.registry, self.backend, self.device)
            full = Network(spec, data.input_shape, data.n_classes, ops, self.registry)
            if spec.init_weights:
                full.load_npz(spec.init_weights)
            feats = self.cache.features(
                full, cut, data, repr(spec.data), mirrored=spec.sgd.hflip and "sgd" in spec.phases
            )
            prefix_state = {
                k: v for k, v in full.state_dict().items() if k.split(".", 1)[0] in {n.name for n in full.nodes[:cut]}
            }
        if feats is None and cut and self.cache is not None and self.cache.too_large:
            self.log(
                f"{exp.name}: not caching the frozen layers' output: {self.cache.too_large}; they run on "
                f"every batch (slower)"
            )
        if feats is not None:
            top = dataclasses.replace(spec, layers=spec.layers[cut:])
            info["feature_cache"] = {"trains_from": spec.layers[cut].name, "input_shape": list(feats.input_shape)}
            self.log(
                f"{exp.name}: layers up to {spec.layers[cut - 1].name} frozen; training the rest on cached "
                f"features {feats.input_shape}"
            )
            result = run(
                top,
                self.registry,
                backend=self.backend,
                out_dir=out,
                device=self.device,
                progress=self.progress,
                dataset=feats,
                **self._resume(exp, out.path, top, info),
            )
            merged = dict(prefix_state)
            merged.update(result.network.state_dict())
            out.save_npz("weights.npz", merged)
            out.write_text("spec.toml", dumps_toml(spec_to_table(spec)))
            metrics = result.metrics
        else:
            result = run(
                spec,
                self.registry,
                backend=self.backend,
                out_dir=out,
                device=self.device,
                progress=self.progress,
                dataset=data,
                **self._resume(exp, out.path, spec, info),
            )
            metrics = result.metrics
        if self.command:
            out.write_text("command.txt", self.command + "\n")
        info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        info["wall_seconds"] = round(time.time() - t0, 1)
        metrics["experiment"] = info
        out.write_json("metrics.json", metrics)
        return metrics

    def _resume(self, exp: Experiment, out: Path, spec: RunSpec, info: dict) -> dict:
        """``run()``'s resume arguments for ``spec`` in ``out``: continue an interrupted run of the same spec."""
        where = None if self.force else interrupted_position(out, spec_to_table(spec))
        if where:
            self.log(f"{exp.name}: continuing the interrupted run from its checkpoint ({where})")
            info["resumed_at"] = where
        return {"resume": bool(where), "overwrite": not where, "checkpoint_every": self.checkpoint_every}

    def parents_to_rerun(self, rows: dict[str, Experiment], order: Sequence[str]) -> dict[str, str]:
        """Finished runs that must run again because a run still to do starts from their missing weights.

        Returns parent name -> the name of one run that needs it. Applied until nothing changes, so a
        grandparent whose weights are gone too is rerun before its parent.
        """
        to_do = {n for n in order if self.force or not is_done(self.results_dir(rows[n]))}
        rerun: dict[str, str] = {}
        changed = True
        while changed:
            changed = False
            for n in list(to_do):
                p = rows[n].init_from
                if p and p not in to_do and not (self.results_dir(rows[p]) / "weights.npz").is_file():
                    rerun[p] = n
                    to_do.add(p)
                    changed = True
        return rerun

    def run(self, rows: dict[str, Experiment], wanted: Sequence[str]) -> dict[str, str]:
        """Run ``wanted`` (and the runs they need); returns name -> "done" / "skipped" / "failed: ..."."""
        status: dict[str, str] = {}
        order = order_with_dependencies(rows, wanted)
        rerun = self.parents_to_rerun(rows, order)
        for name in order:
            exp = rows[name]
            out = self.results_dir(exp)
            if name in rerun:
                self.log(
                    f"{name}: finished, but {out / 'weights.npz'} is missing (results are committed without "
                    f"weights); running it again for {rerun[name]!r}"
                )
            elif is_done(out) and not self.force:
                changed = self.spec_changes(exp)
                if changed:
                    status[name] = "stale"
                    self.log(
                        f"{name}: finished, but {exp.spec_path} changed since in {', '.join(changed)}; its "
                        f"results are kept: move them aside or rerun with --force"
                    )
                else:
                    status[name] = "skipped"
                    self.log(f"{name}: already done ({out}/metrics.json)")
                continue
            if exp.init_from and status.get(exp.init_from, "").startswith(("failed", "stale")):
                why = "failed" if status[exp.init_from].startswith("failed") else "ran with an older spec"
                status[name] = f"failed: needs {exp.init_from}, which {why}"
                self.log(f"{name}: {status[name]}")
                continue
            self.log(f"{name}: running -> {out}")
            try:
                m = self.run_one(exp, rows)
            except HebbcoreError as exc:
                status[name] = f"failed: {exc}"
                self.log(f"{name}: {status[name]}")
                continue
            status[name] = "done"
            final = m.get("final") or {}
            self.log(f"{name}: done, test accuracy {_pct(final.get('test_acc'))}")
        return status


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


# ------------------------------------------------------------------------------------------------ report


def _run_summary(run_dir: Path) -> dict | None:
    m = read_metrics(run_dir)
    if not m:
        return None
    epochs = m.get("epochs") or []
    phases = {}
    for e in epochs:
        phases[e.get("phase")] = max(phases.get(e.get("phase"), 0), e.get("epoch", 0))
    return {
        "final": m.get("final"),
        "phases": phases,
        "experiment": m.get("experiment") or {},
        "seconds": sum(e.get("seconds", 0) for e in epochs),
        "last": epochs[-1] if epochs else None,
        "n_train": m.get("n_train"),
        "backend": m.get("backend"),
    }


def row_result(exp: Experiment, rows: dict[str, Experiment], results: Path | None) -> tuple[str, dict | None]:
    """(name of the run that holds this row's number, its summary or None)."""
    name = exp.same_as or exp.name
    target = rows[name]
    d = (results or target.folder / "results") / name
    return name, _run_summary(d)


def _fmt_notes(s: dict) -> str:
    bits = []
    over = s["experiment"].get("overrides") or {}
    if over:
        bits.append("REDUCED: " + ", ".join(f"{k}={v}" for k, v in over.items()))
    parent = s["experiment"].get("parent_overrides") or {}
    if parent:
        bits.append("REDUCED parent run: " + ", ".join(f"{k}={v}" for k, v in parent.items()))
    bits.append(", ".join(f"{p} {n} ep" for p, n in s["phases"].items()))
    if s["experiment"].get("feature_cache"):
        bits.append("cached features")
    return "; ".join(b for b in bits if b)


def write_report(
    folder: str | Path,
    results: str | Path | None = None,
    out: str | Path | None = None,
    tolerance: float = 2.0,
    plots: bool = True,
    previous: str | Path | None = None,
) -> Path:
    """Write the Markdown report (and plots) for the manifest of ``folder``; returns the report's path.

    ``previous``: a second results folder (e.g. the runs of an earlier setup, kept aside); its test
    accuracies get a column of their own beside the measured ones.
    """
    folder = Path(folder)
    prev_dir = Path(previous) if previous else None
    if prev_dir is not None and not prev_dir.is_dir():
        raise DataError(f"--previous: {str(prev_dir)!r} is not a folder of results")
    rows = load_manifest(folder)
    if not rows:
        raise SpecError([f"no {MANIFEST} here"], str(folder))
    res = Path(results) if results else None
    res_dir = res or folder / "results"
    out = Path(out) if out else folder / "REPORT.md"
    lines = [
        f"# Measured vs paper: {folder.name}",
        "",
        "Generated by `python -m hebbcore.experiments report " + str(folder) + "` from the `metrics.json` of each "
        "run (test accuracy of the final weights: the best-validation epoch for SGD runs). "
        f"The target is ±{tolerance:g} pp of the paper, or above it for a row whose goal is to beat it "
        '("beat" in the target column). A row marked REDUCED ran with fewer epochs or images than the spec '
        "and is not comparable yet.",
        "",
    ]
    misses, measured_count = [], 0
    tables = OrderedDict()
    for exp in rows.values():
        tables.setdefault(exp.table or "Other", []).append(exp)
    # the paper's own tables first ("Table 1", "Table 2", ...), then the others in manifest order
    order = [*sorted(t for t in tables if t.startswith("Table ")), *(t for t in tables if not t.startswith("Table "))]
    summary_at = len(lines)
    counts: dict[str, list[int]] = {}  # table: [rows, measured, compared with the paper, target met]
    per_layer: dict[str, dict[int, tuple[float | None, float | None]]] = {}
    for tname in order:
        exps = tables[tname]
        counts[tname] = count = [len(exps), 0, 0, 0]
        prev_head = (f" {prev_dir.name} % |", "---:|") if prev_dir is not None else ("", "")
        lines += [
            f"## {tname}",
            "",
            f"| row | run | paper % | measured % | Δ pp | target met |{prev_head[0]} notes |",
            f"|---|---|---:|---:|---:|:-:|{prev_head[1]}---|",
        ]
        for exp in exps:
            run_name, s = row_result(exp, rows, res)
            paper = exp.paper
            if s is None:
                meas, delta, ok, notes = "not run yet", "", "", ""
            elif not s["final"]:
                last = s["last"]
                meas = "running / incomplete"
                notes = (
                    f"last epoch: {last['phase']} {last['epoch']}, test {_pct(last.get('test_acc'))}" if last else ""
                )
                delta = ok = ""
            else:
                acc = s["final"].get("test_acc")
                measured_count += 1
                count[1] += 1
                meas = _pct(acc)
                notes = _fmt_notes(s)
                if acc is not None and paper is not None:
                    d = 100 * acc - paper
                    delta = f"{d:+.2f}"
                    reduced = bool(s["experiment"].get("overrides") or s["experiment"].get("parent_overrides"))
                    met = d > 0 if exp.goal == "beat" else abs(d) <= tolerance
                    ok = ("yes" if met else "no") + (" (beat)" if exp.goal == "beat" else f" (±{tolerance:g})")
                    if reduced:
                        ok = f"({ok})"
                    else:
                        count[2] += 1
                        count[3] += met
                    if not met and not exp.repeats:
                        misses.append((exp, d, reduced))
                else:
                    delta = ok = ""
            ref = run_name if run_name == exp.name else f"{run_name} (same run)"
            if "authors_code" in exp.extra:
                notes = "; ".join(filter(None, (f"authors' code: {exp.extra['authors_code']:.2f}", notes)))
            prev = ""
            if prev_dir is not None:
                ps = _run_summary(prev_dir / run_name)
                pacc = ps["final"].get("test_acc") if ps and ps["final"] else None
                prev = f" {_pct(pacc) if pacc is not None else ''} |"
            lines.append(
                f"| {exp.row or exp.name} | `{ref}` | {'' if paper is None else f'{paper:.2f}'} | {meas} | "
                f"{delta} | {ok} |{prev} {notes} |"
            )
            k = _layer_of(exp)
            if k and exp.table == "Table 1":
                acc = s["final"].get("test_acc") if s and s["final"] else None
                per_layer.setdefault(_series_of(exp), {})[k] = (paper, None if acc is None else 100 * acc)
        lines.append("")
    lines[summary_at:summary_at] = (
        [
            "## Summary",
            "",
            'Rows per table; "compared" counts the finished full-size runs with a paper value, "target met" those '
            "of them that meet the target.",
            "",
            "| table | rows | measured | compared with the paper | target met |",
            "|---|---:|---:|---:|---:|",
        ]
        + [f"| {t} | {n} | {m} | {c} | {k} |" for t, (n, m, c, k) in counts.items()]
        + [""]
    )
    spreads = seed_spreads(rows, res)
    if spreads:
        lines += [
            "## Seed spread",
            "",
            "Each row with repeats (manifest `repeats`): its test accuracy over the seeds measured so far. "
            'Mean ± sd is the sample standard deviation; "paper in mean ± 2 sd" says whether one seed\'s '
            "distance from the paper can be luck.",
            "",
            "| row | run | paper % | seeds | accuracies % | mean ± sd % | mean − paper pp | paper in mean ± 2 sd |",
            "|---|---|---:|---:|---|---:|---:|:-:|",
        ]
        for exp, accs in spreads:
            mean, sd = _mean_sd(accs)
            paper = exp.paper
            inside = "" if paper is None or sd is None else ("yes" if abs(mean - paper) <= 2 * sd else "no")
            lines.append(
                f"| {exp.row or exp.name} | `{exp.name}` | {'' if paper is None else f'{paper:.2f}'} | "
                f"{len(accs)} | {' / '.join(f'{a:.2f}' for a in accs)} | {mean:.2f}"
                f"{'' if sd is None else f' ± {sd:.2f}'} | {'' if paper is None else f'{mean - paper:+.2f}'} | "
                f"{inside} |"
            )
        lines.append("")
    spread_of = {exp.name: accs for exp, accs in spreads}
    lines += ["## Rows outside the target", ""]
    if misses:
        for exp, d, reduced in misses:
            why = "reduced run (fewer epochs / images than the paper)" if reduced else "see the notes below"
            accs = spread_of.get(exp.same_as or exp.name)
            if accs and len(accs) > 1 and not reduced:
                mean, sd = _mean_sd(accs)
                why = f"over {len(accs)} seeds {mean:.2f} ± {sd:.2f} ({mean - exp.paper:+.2f} pp); " + why
            lines.append(f"- {exp.row or exp.name} (`{exp.same_as or exp.name}`): {d:+.2f} pp; {why}")
    else:
        lines.append("- none among the rows measured so far" if measured_count else "- nothing measured yet")
    lines.append("")
    notes_file = folder / "notes.md"
    if notes_file.is_file():
        lines += ["## Notes", "", notes_file.read_text(encoding="utf-8").strip(), ""]
    if plots:
        made = make_plots(rows, res_dir, per_layer, out.parent)
        if made:
            lines += ["## Plots", ""] + [f"![{p.stem}]({os.path.relpath(p, out.parent)})" for p in made] + [""]
    atomic_write_text(out, "\n".join(lines))
    return out


def _mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5


def seed_spreads(rows: dict[str, Experiment], results: Path | None) -> list[tuple[Experiment, list[float]]]:
    """Rows that other rows repeat (``repeats``), with the test accuracies (%) of all their finished, full runs."""
    repeated: OrderedDict[str, list[Experiment]] = OrderedDict()
    for exp in rows.values():
        if exp.repeats:
            repeated.setdefault(exp.repeats, [rows[exp.repeats]]).append(exp)
    out = []
    for name, group in repeated.items():
        accs = []
        for exp in group:
            _, s = row_result(exp, rows, results)
            if (
                s
                and s["final"]
                and s["final"].get("test_acc") is not None
                and not (s["experiment"].get("overrides") or s["experiment"].get("parent_overrides"))
            ):
                accs.append(100 * s["final"]["test_acc"])
        if accs:
            out.append((rows[name], accs))
    return out


def _layer_of(exp: Experiment) -> int:
    import re

    m = re.search(r"layer (\d)", exp.row)
    return int(m.group(1)) if m else 0


def _series_of(exp: Experiment) -> str:
    return exp.row.rsplit(",", 1)[0]


def kernel_grid(w: np.ndarray, cols: int = 12, pad: int = 1) -> np.ndarray:
    """``(K, 3, kh, kw)`` kernels as one RGB image, each kernel scaled to [0, 1] on its own."""
    k, c, kh, kw = w.shape
    rows = -(-k // cols)
    img = np.ones((rows * (kh + pad) + pad, cols * (kw + pad) + pad, 3), dtype=np.float32)
    for i in range(k):
        ker = w[i, :3].transpose(1, 2, 0) if c >= 3 else np.repeat(w[i, :1].transpose(1, 2, 0), 3, axis=2)
        lo, hi = ker.min(), ker.max()
        ker = (ker - lo) / (hi - lo) if hi > lo else np.zeros_like(ker)
        r, q = divmod(i, cols)
        img[pad + r * (kh + pad) : pad + r * (kh + pad) + kh, pad + q * (kw + pad) : pad + q * (kw + pad) + kw] = ker
    return img


def make_plots(rows: dict[str, Experiment], res_dir: Path, per_layer: dict, out_dir: Path) -> list[Path]:
    """Layer-1 kernel grids of the runs that trained conv1, and accuracy per layer; returns the PNGs written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made: list[Path] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for exp in rows.values():
        if not exp.spec or exp.init_from:
            continue
        wfile = res_dir / exp.name / "weights.npz"
        p = out_dir / f"kernels_conv1_{exp.name}.png"
        if not (wfile.is_file() and is_done(res_dir / exp.name)):
            if p.is_file() and is_done(res_dir / exp.name):  # weights are not committed: keep the earlier grid
                made.append(p)
            continue
        try:
            with np.load(wfile, allow_pickle=False) as f:
                if "conv1.weight" not in f.files:
                    continue
                w = f["conv1.weight"]
        except (OSError, ValueError):
            continue
        if w.ndim != 4:
            continue
        fig, ax = plt.subplots(figsize=(8, 8 * (-(-w.shape[0] // 12)) / 12 + 0.6))
        ax.imshow(kernel_grid(w), interpolation="nearest")
        ax.set_axis_off()
        ax.set_title(f"{exp.name}: conv1 kernels ({w.shape[0]}×{w.shape[2]}×{w.shape[3]})")
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        made.append(p)
    if per_layer:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for i, (series, pts) in enumerate(sorted(per_layer.items())):
            ks = sorted(pts)
            color = f"C{i}"
            ax.plot(ks, [pts[k][0] for k in ks], "--", color=color, marker="o", alpha=0.6, label=f"{series} (paper)")
            mk = [k for k in ks if pts[k][1] is not None]
            if mk:
                ax.plot(mk, [pts[k][1] for k in mk], "-", color=color, marker="s", label=f"{series} (measured)")
        ax.set_xlabel("layer the classifier sits on")
        ax.set_ylabel("test accuracy (%)")
        ax.set_xticks([1, 2, 3, 4, 5])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title("Table 1: accuracy per layer")
        p = out_dir / "accuracy_per_layer.png"
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        made.append(p)
    return made


# ------------------------------------------------------------------------------------------------ command line


def add_arguments(sub) -> None:
    """Add the ``run`` and ``report`` sub-commands to an argparse sub-parser group."""
    r = sub.add_parser("run", help="run specs (and the runs they start from); skips finished ones")
    r.add_argument("paths", nargs="+", help="spec files, or folders (every spec of their experiments.toml)")
    r.add_argument("--backend", default="numpy")
    r.add_argument("--device", default=None)
    r.add_argument("--results", default=None, help="results folder (default: <spec folder>/results)")
    r.add_argument("--force", action="store_true", help="rerun finished runs")
    r.add_argument("--no-feature-cache", action="store_true", help="always run the frozen bottom layers")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--dry-run", action="store_true", help="print what would run, in order, and stop")
    for k in ("sgd-epochs", "hebbian-epochs", "n-train", "n-val", "n-test"):
        r.add_argument(f"--{k}", type=int, default=None, help="override every spec (the run is labelled REDUCED)")
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="also checkpoint every N batches (always at each epoch's end); an interrupted run "
        "continues from its last checkpoint when run again",
    )
    p = sub.add_parser("report", help="write REPORT.md and plots for a folder's experiments.toml")
    p.add_argument("folder")
    p.add_argument("--results", default=None)
    p.add_argument("--out", default=None, help="report path (default <folder>/REPORT.md)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--previous",
        default=None,
        help="a second results folder (an earlier setup's runs) whose test accuracies get their own column",
    )


def dispatch(args: argparse.Namespace, command: str = "") -> int:
    from .plugin_manager import default_registry

    if args.exp_command == "report":
        path = write_report(args.folder, args.results, args.out, plots=not args.no_plots, previous=args.previous)
        print(f"wrote {path}")
        return 0
    rows, wanted = collect(args.paths)
    results = Path(args.results) if args.results else None
    order = order_with_dependencies(rows, wanted)
    over = Overrides(args.sgd_epochs, args.hebbian_epochs, args.n_train, args.n_val, args.n_test)
    if args.dry_run:
        registry = default_registry()
        for name in order:
            d = (results or rows[name].folder / "results") / name
            done = is_done(d)
            changed = stale_fields(rows[name].spec_path, d, registry) if done else []
            state = "to run" if not done else f"done, spec changed since ({', '.join(changed)})" if changed else "done"
            where = None if done or args.force else interrupted_position(d)
            state += f" (interrupted at {where}; continues from there)" if where else ""
            print(f"{name}: {state}")
        return 0
    runner = ExperimentRunner(
        default_registry(),
        results,
        args.backend,
        args.device,
        over,
        args.force,
        not args.no_feature_cache,
        False if args.no_progress else None,
        log=lambda m: print(m, flush=True),
        command=command,
        checkpoint_every=args.checkpoint_every,
    )
    status = runner.run(rows, wanted)
    failed = [n for n, s in status.items() if s.startswith(("failed", "stale"))]
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hebbcore.experiments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="exp_command", required=True)
    add_arguments(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.exp_command == "run":
        from .allocator import tune_malloc

        tune_malloc()  # keep freed step buffers for the next step (HEBBCORE_MALLOC_TUNING=0: off)
    recorded = ("HEBBCORE_CIFAR10", "HEBBCORE_CACHE", "HEBBCORE_MALLOC_TUNING")
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in recorded if k in os.environ)
    command = (env + " " if env else "") + "python -m hebbcore.experiments " + shlex.join(argv)
    try:
        return dispatch(args, command)
    except HebbcoreError as exc:
        print(f"hebbcore: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
