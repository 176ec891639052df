"""``python -m hebbcore.experiments run|report``."""

from __future__ import annotations

import argparse
import fnmatch
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from hebbcore.errors import HebbcoreError, SpecError
from hebbcore.plugin_manager import did_you_mean

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass


from .manifest import MANIFEST, collect, order_with_dependencies
from .orchestrate import ExperimentRunner, Overrides
from .report import write_report
from .results import interrupted_position, is_done


def add_arguments(sub) -> None:
    """Add the ``run`` and ``report`` sub-commands to an argparse sub-parser group."""
    r = sub.add_parser("run", help="run specs (and the runs they start from); skips finished ones")
    r.add_argument("paths", nargs="+", help="spec files, or folders (every spec of their experiments.toml)")
    r.add_argument(
        "--only",
        default=None,
        metavar="NAMES",
        help="only these rows (names or glob patterns, comma-separated) and the runs they start from",
    )
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
    p.add_argument("--out", default=None, help="report path (default <folder>/REPORT.md, or RESULTS/REPORT.md)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--previous",
        default=None,
        help="a second results folder (an earlier setup's runs) whose test accuracies get their own column",
    )


def dispatch(args: argparse.Namespace, command: str = "") -> int:
    from hebbcore.plugin_manager import default_registry

    if args.exp_command == "report":
        path = write_report(args.folder, args.results, args.out, plots=not args.no_plots, previous=args.previous)
        print(f"wrote {path}")
        return 0
    rows, wanted = collect(args.paths)
    if args.only is not None:
        patterns = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [
            f"{n!r}{did_you_mean(n, wanted)}" for n in patterns if not any(fnmatch.fnmatchcase(w, n) for w in wanted)
        ]
        if unknown or not patterns:
            where = ", ".join(map(str, args.paths))
            raise SpecError([f"--only: no row named {', '.join(unknown) or 'at all'} in {where}"], MANIFEST)
        wanted = [n for n in wanted if any(fnmatch.fnmatchcase(n, pat) for pat in patterns)]
    else:
        for path in args.paths:  # a base spec file runs every row built on it: say which, before hours of runs
            shared = [n for n in wanted if rows[n].spec and rows[n].spec_path.resolve() == Path(path).resolve()]
            if len(shared) > 1:
                print(f"{path}: the spec of {len(shared)} rows ({', '.join(shared)}); --only picks some", flush=True)
    results = Path(args.results) if args.results else None
    order = order_with_dependencies(rows, wanted)
    over = Overrides(args.sgd_epochs, args.hebbian_epochs, args.n_train, args.n_val, args.n_test)
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
    if args.dry_run:
        return _dry_run(runner, rows, order, wanted, args.force)
    status = runner.run(rows, wanted)
    failed = [n for n, s in status.items() if s.startswith(("failed", "stale"))]
    return 1 if failed else 0


def _dry_run(runner: ExperimentRunner, rows: dict, order: list[str], wanted: list[str], force: bool) -> int:
    """Print, in order, what ``run`` would do with each row, by the runner's own rules."""
    rerun = runner.parents_to_rerun(rows, order)
    for name in order:
        d = runner.results_dir(rows[name])
        done = is_done(d)
        if name in rerun:
            state = f"done, but its weights.npz is missing: to run again for {rerun[name]}"
        elif done and force:
            state = "done: to run again (--force)"
        elif done:
            changed = runner.spec_changes(rows[name])
            state = f"done, spec changed since ({', '.join(changed)})" if changed else "done"
            state += runner.reduced_note(rows[name]) if name in wanted else ""
        else:
            state = "to run"
        where = None if done else interrupted_position(d)
        state += f" (interrupted at {where}; continues from there)" if where and not force else ""
        print(f"{name}: {state}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hebbcore.experiments", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="exp_command", required=True)
    add_arguments(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = p.parse_args(argv)
    if args.exp_command == "run":
        from hebbcore.allocator import tune_malloc

        tune_malloc()  # keep freed step buffers for the next step (HEBBCORE_MALLOC_TUNING=0: off)
    recorded = ("HEBBCORE_CIFAR10", "HEBBCORE_CACHE", "HEBBCORE_MALLOC_TUNING")
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in recorded if k in os.environ)
    command = (env + " " if env else "") + "python -m hebbcore.experiments " + shlex.join(argv)
    try:
        try:
            return dispatch(args, command)
        finally:
            sys.stdout.flush()  # a closed pipe (| head) shows here, inside the handlers below
    except HebbcoreError as exc:
        print(f"hebbcore: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hebbcore: interrupted; runs continue from their last checkpoint when run again", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of the output went away (--dry-run | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
