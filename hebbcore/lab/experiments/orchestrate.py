"""Running the rows of a manifest: dependencies first, resumable, with overrides and the feature cache."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hebbcore.errors import HebbcoreError, SpecError
from hebbcore.features import FeatureCache
from hebbcore.interfaces import Dataset
from hebbcore.plugin_manager import Registry
from hebbcore.rundir import RunDir
from hebbcore.spec import RunSpec, parse_spec, spec_to_table
from hebbcore.specfile import apply_setting, read_spec_table

from .manifest import MANIFEST, Experiment, Overrides, order_with_dependencies
from .report import _pct
from .results import git_commit, interrupted_position, is_done, read_metrics, stale_fields, write_init_weights


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
        from hebbcore.runner import load_dataset

        key = repr(spec.data)
        if key not in self.datasets:
            self.datasets[key] = load_dataset(spec, self.registry)
            while len(self.datasets) > 2:
                self.datasets.popitem(last=False)
        self.datasets.move_to_end(key)
        return self.datasets[key]

    def spec_changes(self, exp: Experiment) -> list[str]:
        """Top-level fields in which the finished run's ``spec.toml`` differs from the spec file now ([] if none)."""
        return stale_fields(exp.spec_path, self.results_dir(exp), self.registry, exp.set)

    def reduced_note(self, exp: Experiment) -> str:
        """For a finished run made with other reductions (--n-train, --sgd-epochs, ...) than asked now: what it
        ran with and how to rerun it ("" otherwise). Such a run counts as done, so a row can start from it."""
        recorded = ((read_metrics(self.results_dir(exp)) or {}).get("experiment") or {}).get("overrides") or {}
        if recorded == self.overrides.active():
            return ""
        return f" (ran with {_overrides_text(recorded)}, not as asked now; --force reruns it)"

    def prepare(self, exp: Experiment, rows: dict[str, Experiment]) -> RunSpec:
        """The spec of ``exp`` with its init weights written and the overrides applied."""
        self._parent_reduced = {}
        table = read_spec_table(exp.spec_path)[0]  # as hebbcore run reads the file (extends)
        problems = [p for setting in exp.set for p in apply_setting(table, setting)]
        if problems:
            raise SpecError(problems, f"{MANIFEST} ({exp.name}).set")
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
        from hebbcore.runner import run

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
        result = run(
            spec,
            self.registry,
            backend=self.backend,
            out_dir=out,
            device=self.device,
            progress=self.progress,
            dataset=data,
            features=self.cache,
            log=self.log,
            **self._resume(exp, out.path, spec, info),
        )
        metrics = result.metrics
        if metrics.get("feature_cache"):
            info["feature_cache"] = metrics["feature_cache"]
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
                    self.log(f"{name}: already done ({out}/metrics.json){self.reduced_note(exp)}")
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


def _overrides_text(overrides: dict) -> str:
    return ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.items()) or "none (full size)"
