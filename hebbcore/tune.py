"""``hebbcore tune``: a hyper-parameter search over any spec key, on Optuna.

A search space is a TOML file of the keys to vary, each written as ``hebbcore run --set`` writes it (a layer by
its name)::

    metric = "val_acc"                       # what a trial maximises: its final val_acc (or train_acc)

    [params."layers.conv1.hebbian.lr"]
    type = "float"                           # float | int | categorical
    low = 0.01
    high = 1.0
    log = true

    [params."layers.conv1.hebbian.rule"]
    type = "categorical"
    choices = ["wta", "kwta"]

Each trial is a run of the spec with the trial's values (its own run directory, ``trial_NNNN``); every epoch's
``metric`` is reported to Optuna, which prunes trials that fall behind (the space's ``[pruning]``: the median
pruner after a warm-up of a quarter of the measured epochs by default, or ``type = "none"``). The study lives in a
database: by default SQLite, ``study.db`` beside the trials; ``--storage`` takes any URL Optuna supports, so
several machines can share one study. Rerunning the command continues the study until ``--trials`` trials have
finished; a trial whose process died is retried once. ``--workers N`` runs N processes on the study at once.
At the end the best trial's resolved spec is written to ``best.toml``. With ``feature_cache`` the trials of a
worker share one :class:`hebbcore.features.FeatureCache`: a probe search computes its fixed layers' output once.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import multiprocessing
import os
import sys
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from . import hookimpl
from .errors import HebbcoreError, SpecError, TrainingDiverged
from .io import atomic_write_text
from .plugin_manager import Registry, default_registry
from .settings import convert, describe, parse_table
from .spec import RunSpec, dumps_toml, load_spec, spec_to_table
from .specfile import toml_table, toml_value

#: Seconds between a running trial's heartbeats; a trial silent for GRACE_S is failed (and retried once).
HEARTBEAT_S = 10
GRACE_S = 60


@dataclass(frozen=True)
class Param:
    """One searched key: ``float`` or ``int`` in ``[low, high]`` (``log``: sampled in log scale), or one of
    ``choices``."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Pruning:
    """When a trial that falls behind is stopped. ``median``: Optuna's median pruner, which stops a trial whose
    best metric so far is below the median of the completed trials' at the same epoch, once ``startup_trials``
    trials have completed, and never within the trial's first ``warmup_epochs`` measured epochs (default: a
    quarter of the spec's, at least one, since a probe's early epochs swing widely). ``none``: every trial runs to
    its end. Epochs count those whose records hold accuracies (:attr:`RunSpec.measured_epochs`)."""

    type: Literal["median", "none"] = "median"
    warmup_epochs: int | None = None
    startup_trials: int = 3


@dataclass(frozen=True)
class SearchSpace:
    params: dict[str, Param]
    metric: Literal["val_acc", "train_acc"] = "val_acc"
    pruning: Pruning = Pruning()


def load_space(
    path: str | Path, spec_path: str | Path, registry: Registry, overrides: tuple[str, ...] = ()
) -> SearchSpace:
    """Read and check a search space against the spec (with the ``--set`` ``overrides`` every trial gets):
    every key must exist and every bound or choice must give a valid spec; :class:`SpecError` lists every
    problem with its key."""
    path = Path(path)
    try:
        table = toml_table(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        raise SpecError(["file does not exist"], str(path)) from None
    except OSError as exc:
        raise SpecError([f"cannot read the file ({exc.__class__.__name__})"], str(path)) from None
    problems: list[str] = []
    for key in set(table) - {"params", "metric", "pruning"}:
        problems.append(f"{key}: unknown key (expected 'params', 'metric' or 'pruning')")
    metric = convert(typing.get_type_hints(SearchSpace)["metric"], table.get("metric", "val_acc"), "metric", problems)
    pruning = parse_table(Pruning, table.get("pruning", {}), "pruning", problems) or Pruning()
    raw = table.get("params")
    if not isinstance(raw, dict) or not raw:
        problems.append(f"params: expected a table of at least one key to search, got {describe(raw)}")
        raw = {}
    params: dict[str, Param] = {}
    for key, value in raw.items():
        p = parse_table(Param, value, f"params.{key!r}", problems)
        if p is None:
            continue
        before = len(problems)
        problems += [f"params.{key!r}.{m}" for m in _param_problems(p)]
        if len(problems) == before:
            params[key] = p
            problems += [f"params.{key!r}: {m}" for m in _check_against_spec(key, p, spec_path, registry, overrides)]
    problems += _pruning_problems(pruning, table.get("pruning", {}), params, spec_path, registry, overrides)
    if problems:
        raise SpecError(problems, str(path))
    return SearchSpace(params, metric, pruning)


def _pruning_problems(
    pruning: Pruning, raw: Any, params: dict[str, Param], spec_path: str | Path, registry: Registry,
    overrides: tuple[str, ...],
) -> list[str]:  # fmt: skip
    problems = []
    for key in ("warmup_epochs", "startup_trials"):
        value = getattr(pruning, key)
        if value is not None and value < 0:
            problems.append(f"pruning.{key}: expected >= 0, got {value}")
        if pruning.type == "none" and isinstance(raw, dict) and key in raw:
            problems.append(f"pruning.{key}: has no effect with type = 'none'")
    searched = {"hebbian.epochs", "sgd.epochs", "phases"} & set(params)
    if pruning.type == "median" and pruning.warmup_epochs and not searched:
        try:
            epochs = load_spec(spec_path, registry, against_data=False, overrides=list(overrides)).measured_epochs
        except SpecError:
            return problems  # the spec's own problems are named with the params'
        if pruning.warmup_epochs >= epochs - 1:  # a trial's last epoch is never pruned
            problems.append(f"pruning.warmup_epochs: {pruning.warmup_epochs} spares every epoch a trial could be "
                            f"stopped at (it measures {epochs}, and is never stopped at the last), so none would "
                            "ever be stopped (type = 'none' says so)")  # fmt: skip
    return problems


def _param_problems(p: Param) -> list[str]:
    if p.type == "categorical":
        return [] if p.choices else ["choices: expected at least one value"]
    if p.low is None or p.high is None:
        return [f"low, high: a {p.type} parameter needs both"]
    problems = [] if p.low < p.high else [f"low: expected low < high, got {p.low} >= {p.high}"]
    if p.log and p.low <= 0:
        problems.append(f"low: a log-scale parameter needs low > 0, got {p.low}")
    if p.type == "int" and (p.low != int(p.low) or p.high != int(p.high)):
        problems.append(f"low, high: an int parameter needs whole bounds, got {p.low}, {p.high}")
    return problems


def _check_against_spec(
    key: str, p: Param, spec_path: str | Path, registry: Registry, overrides: tuple[str, ...]
) -> list[str]:
    """The spec with each bound (or choice) set loads, so a trial never fails on a typo."""
    values = list(p.choices) if p.type == "categorical" else [_typed(p, p.low), _typed(p, p.high)]
    for value in values:
        try:
            load_spec(spec_path, registry, against_data=False, overrides=[*overrides, f"{key}={toml_value(value)}"])
        except SpecError as exc:
            return [f"with {toml_value(value)}: {'; '.join(exc.problems)}"]
    return []


def _typed(p: Param, value: float | None) -> Any:
    return int(value) if p.type == "int" and value is not None else value


def _suggest(trial: Any, key: str, p: Param) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(key, list(p.choices))
    if p.type == "int":
        return trial.suggest_int(key, int(p.low or 0), int(p.high or 0), log=p.log)
    return trial.suggest_float(key, float(p.low or 0), float(p.high or 0), log=p.log)


@dataclass(frozen=True)
class TuneJob:
    """Everything a worker process needs (plain values: it builds its own registry)."""

    spec: str
    space: str
    out: str
    storage: str
    study: str
    trials: int
    backend: str = "numpy"
    device: str | None = None
    seed: int = 0
    overrides: tuple[str, ...] = ()
    feature_cache: bool = False  # each worker keeps one FeatureCache for all its trials
    feature_cache_bytes: int = 0  # each worker's cache budget (0: the default); tune() shares it out among them


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise HebbcoreError("hebbcore tune needs Optuna: pip install 'hebbcore[tune]'") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # hebbcore says what a trial did, in one line
    return optuna


def make_pruner(pruning: Pruning, spec: RunSpec) -> Any:
    """The Optuna pruner of ``pruning`` for trials of ``spec`` (whose epochs set the default warm-up)."""
    optuna = _optuna()
    if pruning.type == "none":
        return optuna.pruners.NopPruner()
    warmup = pruning.warmup_epochs
    if warmup is None:
        warmup = max(1, spec.measured_epochs // 4)
    # Optuna prunes from step n_warmup_steps on; steps are 1-based measured epochs, so this spares `warmup`
    return optuna.pruners.MedianPruner(n_startup_trials=pruning.startup_trials, n_warmup_steps=warmup + 1)


def open_study(job: TuneJob, create: bool = True, worker: int = 0, pruner: Any = None) -> Any:
    """The job's Optuna study (created when missing), with heartbeats so a dead worker's trial is retried.

    ``worker``: which of the job's processes opens it. Each opening samples from its own seed, drawn from
    ``job.seed``, ``worker`` and the trials the study holds: workers, or a resumed study, with one seed would
    propose the same parameters again for their first trials. ``pruner``: what stops trials that fall behind
    (:func:`make_pruner`; Optuna keeps none in the study, so each opener names its own)."""
    optuna = _optuna()
    try:
        study = _load_or_create(optuna, job, create, pruner)
    except (HebbcoreError, KeyboardInterrupt):
        raise
    except Exception as exc:  # SQLAlchemy's and Optuna's storage errors: a wrong URL, a folder that is missing
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        first = first.replace(job.storage, _shown(job.storage))
        raise HebbcoreError(f"cannot open the study's storage {_shown(job.storage)} ({exc.__class__.__name__}: "
                            f"{first[:200]})") from None  # fmt: skip
    held = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(
        seed=int(np.random.SeedSequence([job.seed, worker, held]).generate_state(1)[0])
    )
    return study


def _shown(url: str) -> str:
    """A storage URL for a message, its password masked."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: nothing in it to hide
        return url


def _load_or_create(optuna: Any, job: TuneJob, create: bool, pruner: Any) -> Any:
    storage: Any = job.storage
    if storage.startswith(("sqlite", "postgresql", "mysql")):
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; hebbcore relies on them
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):  # Optuna >= 4.9 renamed the retry
                stale = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)
                retry = {"heartbeat_stale_trial_callback": stale}
            else:
                retry = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
            storage = optuna.storages.RDBStorage(
                job.storage, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **retry
            )
    if not create:
        return optuna.load_study(study_name=job.study, storage=storage, pruner=pruner)
    return optuna.create_study(study_name=job.study, storage=storage, pruner=pruner, direction="maximize",
                               load_if_exists=True)  # fmt: skip


class _Reporter:
    """Reports each epoch's metric to the trial (a ``hebbcore_epoch_end`` hook); raises TrialPruned when told,
    except at the trial's last measured epoch (``last``), when it has nothing left to save."""

    def __init__(self, trial: Any, metric: str, pruned: type[BaseException], last: int):
        self.trial, self.metric, self.pruned, self.last, self.step = trial, metric, pruned, last, 0

    @hookimpl
    def hebbcore_epoch_end(self, run_dir: str, record: dict[str, Any]) -> None:
        value = record.get(self.metric)
        if value is None:
            return
        self.step += 1
        self.trial.report(float(value), self.step)
        if self.step < self.last and self.trial.should_prune():
            raise self.pruned(f"pruned at epoch {self.step} ({self.metric} {value:.4f})")


def _measuring(spec: RunSpec, metric: str) -> RunSpec:
    """``spec`` with the metric's split measured after every epoch of both phases, so the pruner sees it."""
    split = metric.removesuffix("_acc")
    phases = {p: getattr(spec, p) for p in ("hebbian", "sgd")}
    return dataclasses.replace(
        spec,
        **{p: dataclasses.replace(c, evaluate=tuple(dict.fromkeys((*c.evaluate, split)))) for p, c in phases.items()},
    )


def _objective(job: TuneJob, space: SearchSpace, registry: Registry) -> Any:
    from .features import FeatureCache
    from .runner import run

    optuna = _optuna()
    budget = {"max_bytes": job.feature_cache_bytes} if job.feature_cache_bytes else {}
    cache = FeatureCache(**budget) if job.feature_cache else None

    def objective(trial: Any) -> float:
        values = {key: _suggest(trial, key, p) for key, p in space.params.items()}
        settings = _trial_settings(job, trial.number, values)
        trial.set_user_attr("pid", os.getpid())
        try:  # each bound was checked alone; some combinations of values still give no valid network
            spec = _measuring(load_spec(job.spec, registry, overrides=settings), space.metric)
        except SpecError as exc:
            trial.set_user_attr("note", f"infeasible: {'; '.join(exc.problems)}")
            raise optuna.TrialPruned("infeasible") from None
        reporter = _Reporter(trial, space.metric, optuna.TrialPruned, spec.measured_epochs)
        registry.pm.register(reporter)
        try:
            result = run(spec, registry, backend=job.backend, device=job.device, progress=False, features=cache,
                         log=functools.partial(print, flush=True), out_dir=_trial_dir(job, trial.number),
                         overwrite=True)  # fmt: skip
        except TrainingDiverged as exc:  # a region of the space where training blows up: a result, not an error
            trial.set_user_attr("note", f"diverged: {exc}")
            raise optuna.TrialPruned(f"diverged: {exc}") from None
        finally:
            registry.pm.unregister(reporter)
        value = result.metrics["final"].get(space.metric)
        if value is None:
            raise HebbcoreError(f"trial {trial.number}: the run has no {space.metric} (a validation split is needed)")
        return float(value)

    return objective


def work(job: TuneJob, worker: int = 0) -> None:
    """One worker (``worker`` of the job's processes): run trials of the study until ``job.trials`` have
    finished (complete or pruned)."""
    optuna = _optuna()
    registry = default_registry()
    space = load_space(job.space, job.spec, registry, job.overrides)
    spec = load_spec(job.spec, registry, against_data=False, overrides=job.overrides)
    study = open_study(job, create=False, worker=worker, pruner=make_pruner(space.pruning, spec))
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    if len(study.get_trials(deepcopy=False, states=done)) >= job.trials:
        return
    study.optimize(
        _objective(job, space, registry),
        callbacks=[optuna.study.MaxTrialsCallback(job.trials, states=done), _announce],
        catch=(),
    )


def _announce(study: Any, trial: Any) -> None:
    """One line per finished trial, as it finishes (a study runs for hours)."""
    if trial.state.name == "COMPLETE":
        result = f"{trial.value:.4f}"
    elif "note" in trial.user_attrs:
        result = trial.user_attrs["note"].split(":")[0]  # diverged / infeasible; trials.csv holds the whole note
    elif trial.state.name == "PRUNED" and trial.value is not None:
        result = f"pruned at epoch {len(trial.intermediate_values)} ({trial.value:.4f})"
    else:
        result = trial.state.name.lower()
    print(f"{study.study_name}: trial {trial.number} {result} {trial.params}", flush=True)


def _work_in_child(job: TuneJob, worker: int) -> None:  # a spawned worker: errors reported, not raised
    try:
        work(job, worker)
    except HebbcoreError as exc:
        print(f"hebbcore tune: worker {os.getpid()}: error: {exc}", flush=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # Ctrl-C reaches every worker; the main process says it once
        raise SystemExit(130) from None


def shared_cache_budget(job: TuneJob, workers: int) -> TuneJob:
    """``job`` with each worker's feature-cache budget: the memory the default gives one cache, shared out."""
    if not job.feature_cache or job.feature_cache_bytes:
        return job
    from .features import feature_cache_bytes

    return dataclasses.replace(job, feature_cache_bytes=feature_cache_bytes() // max(workers, 1))


def tune(job: TuneJob, workers: int = 1) -> dict[str, Any]:
    """Run the study with ``workers`` processes; returns the best trial's number, value and params, and writes
    ``best.toml`` (the spec it ran) and ``trials.csv`` (each trial's state, value, measured epochs, note and
    parameters) into ``job.out``. A study continues only with the spec and settings it started with."""
    optuna = _optuna()
    registry = default_registry()
    load_space(job.space, job.spec, registry, job.overrides)  # every problem before any process starts
    job = shared_cache_budget(job, workers)
    _check_out(job)
    Path(job.out).mkdir(parents=True, exist_ok=True)
    study = open_study(job)
    _check_study(job, study)
    children = []
    if workers > 1:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch or sqlite state
        children = [ctx.Process(target=_work_in_child, args=(job, w)) for w in range(1, workers)]
        for child in children:
            child.start()
    try:
        work(job)
    finally:
        for child in children:
            child.join()
    failed = [c.exitcode for c in children if c.exitcode]
    if failed:
        raise HebbcoreError(f"{len(failed)} tuning worker(s) failed (exit codes {failed}); see their lines above")
    write_trials(job, study)  # also when none completed: it says which were pruned or diverged
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise HebbcoreError(f"study {job.study!r}: no trial completed (see {Path(job.out) / 'trials.csv'})")
    best = study.best_trial
    write_best(job, study, registry)
    return {"number": best.number, "value": best.value, "params": best.params}


def _trial_name(job: TuneJob, number: int) -> str:
    return f"{job.study}_t{number:04d}"  # _check_out reads the study back from it


def _trial_settings(job: TuneJob, number: int, values: dict[str, Any]) -> list[str]:
    """The ``--set`` settings a trial runs with: the command's, the trial's values, its name."""
    return [*job.overrides, *(f"{k}={toml_value(v)}" for k, v in values.items()),
            f"name={toml_value(_trial_name(job, number))}"]  # fmt: skip


def _trial_dir(job: TuneJob, number: int) -> Path:
    return Path(job.out) / f"trial_{number:04d}"


def _check_out(job: TuneJob) -> None:
    """Trial folders are numbered per study: a second study into the same ``out`` would overwrite the first's."""
    for path in sorted(Path(job.out).glob("trial_*/spec.toml")):
        try:
            name = toml_table(path.read_text(encoding="utf-8"), str(path)).get("name", "")
        except (OSError, UnicodeDecodeError, SpecError):
            continue
        other = str(name).rsplit("_t", 1)[0]  # trials are named STUDY_tNNNN
        if "_t" in str(name) and other != job.study:
            raise HebbcoreError(f"{job.out} holds the trials of study {other!r}; name another --out, or --study "
                                f"{other!r} to continue that one")  # fmt: skip


def _check_study(job: TuneJob, study: Any) -> None:
    """A study's trials run one spec: continuing it with another spec file, or other ``--set`` settings, would mix
    trials of two experiments in one ranking (and in best.toml). The spec file's text and the settings are kept
    in the study (as given, so the same command on another machine sharing the storage agrees)."""
    try:
        text = Path(job.spec).read_text(encoding="utf-8")
    except OSError:
        return  # load_spec has said so already
    mine = {"spec_sha256": hashlib.sha256(text.encode()).hexdigest(), "settings": list(job.overrides)}
    held = {k: study.user_attrs[k] for k in mine if k in study.user_attrs}
    if not held:
        if study.get_trials(deepcopy=False):  # a study from before hebbcore kept them: it cannot be checked
            print(f"hebbcore: study {job.study!r} predates the record of its spec and settings; it continues "
                  "unchecked", file=sys.stderr)  # fmt: skip
            return
        for key, value in mine.items():
            study.set_user_attr(key, value)
        return
    if held.get("spec_sha256") != mine["spec_sha256"]:
        raise HebbcoreError(f"study {job.study!r} was started on another text of {job.spec}; continue it with that "
                            "spec, or name a new --study")  # fmt: skip
    if held.get("settings") != mine["settings"]:
        raise HebbcoreError(f"study {job.study!r} was started with --set {held.get('settings')}, not "
                            f"{mine['settings']}; continue it with those, or name a new --study")  # fmt: skip


def write_best(job: TuneJob, study: Any, registry: Registry) -> None:
    """``best.toml``: the spec the study's best trial ran (its ``spec.toml``; rebuilt from the job's settings and
    the trial's values where its folder is elsewhere, as with a storage shared between machines)."""
    best = study.best_trial
    header = f"# The best trial ({best.number}, {best.value:.4f}) of study {job.study!r}.\n"
    ran = _trial_dir(job, best.number) / "spec.toml"
    try:
        text = ran.read_text(encoding="utf-8")
    except OSError:
        settings = _trial_settings(job, best.number, best.params)
        spec: RunSpec = load_spec(job.spec, registry, against_data=False, overrides=settings)
        text = dumps_toml(spec_to_table(spec))
    atomic_write_text(Path(job.out) / "best.toml", header + text)


def write_trials(job: TuneJob, study: Any) -> None:
    """``trials.csv``: each trial's number, state, value, measured epochs, note (diverged or infeasible, and
    why) and parameters."""
    keys = sorted({k for t in study.trials for k in t.params})
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    # a pruned trial's value is its metric at its last measured epoch, so the epochs it reported go beside it
    out.writerow(["number", "state", "value", "measured_epochs", "note", *keys])
    for t in study.trials:
        value = "" if t.value is None else repr(t.value)
        cells = [t.number, t.state.name, value, len(t.intermediate_values), t.user_attrs.get("note", "")]
        out.writerow(cells + [t.params.get(k, "") for k in keys])
    atomic_write_text(Path(job.out) / "trials.csv", buf.getvalue())
