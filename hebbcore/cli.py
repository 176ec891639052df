"""The ``hebbcore`` command line: ``run``, ``validate``, ``plot``, ``evaluate``, ``export``, ``tune``, ``plugins``,
and every registered command.

Commands beyond these (``bench``, from the lab) are plugins (``hebbcore_register_commands``);
loggers are chosen by name (``--logger``), so the core names no plugin package.

Errors a user can fix (a bad spec, a missing file, an unavailable backend) are
printed as one line, ``hebbcore: error: ...``, with exit status 2 (spec and
usage) or 1 (everything else); no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from .errors import HebbcoreError


class UsageError(HebbcoreError):
    exit_code = 2


def _parser(registry) -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="hebbcore", description="Hebbian learning for convolutional networks.")
    p.add_argument("--version", action="version", version=f"hebbcore {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train a spec and write metrics.json, weights.npz and spec.toml")
    r.add_argument("spec", nargs="?", help="path of a TOML run spec (with --resume: default DIR/spec.toml)")
    r.add_argument(
        "--backend",
        default=None,
        help="array backend: numpy, torch, cupy or a plugin's (default numpy; with --resume the run's)",
    )
    r.add_argument(
        "--device", default=None, help="device of the backend, e.g. cpu, cuda, cuda:1 (default: the best one)"
    )
    r.add_argument("--out", default=None, help="run directory (default runs/<spec name>)")
    r.add_argument("--no-progress", action="store_true", help="never draw progress bars")
    r.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the run in DIR from its last checkpoint (after a crash or kill)",
    )
    r.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="N",
        help="also checkpoint every N batches (always at the end of each epoch)",
    )
    r.add_argument(
        "--logger",
        action="append",
        default=[],
        metavar="NAME",
        help=f"also log every epoch with this logger (repeatable; registered: {', '.join(registry.names('logger'))})",
    )
    r.add_argument("--tensorboard", action="store_true", help="same as --logger tensorboard (DIR/tensorboard)")
    r.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over processes started by torchrun (gloo on CPU, nccl on CUDA)",
    )
    r.add_argument(
        "--dist-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="with --distributed: give up, naming the rank, when another process does not answer "
        "for this long (default 300)",
    )
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run the output directory already holds (otherwise that is refused)",
    )
    r.add_argument(
        "--feature-cache",
        action="store_true",
        help="compute the output of the spec's frozen bottom layers once, not on every batch of every epoch, and "
        "train the layers above on it (a probe of fixed features; memory: $HEBBCORE_FEATURE_CACHE_BYTES, default "
        "a quarter of RAM); --resume continues a run as it started",
    )
    v = sub.add_parser("validate", help="check a spec and print it resolved")
    v.add_argument("spec")
    for p_ in (r, v):
        p_.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            dest="settings",
            help="override a spec value, e.g. --set hebbian.epochs=1 --set layers.conv1.hebbian.lr=0.05 (repeatable)",
        )
    pl = sub.add_parser("plot", help="(re)draw a run's kernel grid, learning curves and confusion matrix")
    pl.add_argument("run_dir", help="a run directory (with metrics.json and weights.npz)")
    ex = sub.add_parser("export", help="write a run's network as a torch state dict or safetensors file")
    ex.add_argument("run_dir", help="a run directory (spec.toml and weights.npz)")
    ex.add_argument("--format", choices=("torch", "safetensors"), default="torch")
    ex.add_argument("--out", default=None, help="the file (default RUN/model.pt or RUN/model.safetensors)")
    e = sub.add_parser("evaluate", help="measure a finished run's accuracy again, optionally over several views")
    e.add_argument("run_dir", help="a run directory (spec.toml and weights.npz); nothing in it is written")
    e.add_argument("--split", default="test", help="comma list of splits: train, val, test (default test)")
    e.add_argument("--hflip", action="store_true", help="also with each image's scores plus its mirror image's")
    e.add_argument(
        "--shift", type=int, default=0, metavar="N",
        help="also with the scores of its four translations by N pixels added (with --hflip, theirs mirrored too)",
    )  # fmt: skip
    e.add_argument("--backend", default="numpy", help="array backend (default numpy)")
    e.add_argument("--device", default=None, help="device of the backend")
    e.add_argument("--json", default=None, metavar="FILE", help="also write the accuracies to FILE")
    t = sub.add_parser("tune", help="search hyper-parameters of a spec with Optuna (pruning, SQLite, workers)")
    t.add_argument("spec", help="path of the TOML run spec to tune")
    t.add_argument("--space", required=True, help='TOML search space: [params."key.path"] tables (see docs)')
    t.add_argument("--trials", type=int, required=True, help="finished trials (complete or pruned) to reach")
    t.add_argument("--out", default=None, help="folder of the trials, study.db and best.toml (default runs/tune/NAME)")
    t.add_argument("--storage", default=None, help="Optuna storage URL (default sqlite:///OUT/study.db)")
    t.add_argument("--study", default=None, help="study name (default: the spec's name)")
    t.add_argument("--workers", type=int, default=1, help="processes working on the study at once")
    t.add_argument("--backend", default="numpy", help="array backend of every trial")
    t.add_argument("--device", default=None, help="device of the backend")
    t.add_argument("--seed", type=int, default=0, help="the sampler's seed")
    t.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="change a spec value for every trial, as hebbcore run --set")  # fmt: skip
    t.add_argument("--feature-cache", action="store_true",
                   help="as hebbcore run --feature-cache; trials whose frozen layers are the same share the "
                   "features (one cache per worker)")  # fmt: skip
    sub.add_parser("plugins", help="list everything registered: rules, aggregations, backends, datasets, ...")
    for name in registry.names("command"):
        cls = registry.get("command", name)
        cls.add_arguments(sub.add_parser(name, help=cls.help, description=cls.help))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status. Output cut off by its reader (``hebbcore plugins | head -1``)
    ends the command quietly with status 141, as Unix tools do."""
    try:
        try:
            return _main(argv)
        except SystemExit as exc:  # argparse's --help, --version and usage errors
            return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.stdout.flush()  # buffered output reaches the pipe here, inside the handler, not at interpreter exit
    except BrokenPipeError:
        if not _stdout_reader_gone():
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left for Python's own flush
        return 141


def _stdout_reader_gone() -> bool:
    """True when standard output is a pipe (or socket) whose reading end is closed."""
    try:
        import select

        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


def _main(argv: Sequence[str] | None) -> int:
    from .plugin_manager import default_registry

    try:
        registry = default_registry()
    except HebbcoreError as exc:
        print(f"hebbcore: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return exc.exit_code
    args = _parser(registry).parse_args(argv)
    if args.command in ("run", "tune", "evaluate"):
        from .allocator import tune_malloc

        # keep freed buffers for the next batch (HEBBCORE_MALLOC_TUNING=0: off); without it, evaluate's torch-CPU
        # activations fragmented glibc's heap: 23 MB more every second, 23 GB when the kernel killed it
        tune_malloc()
    try:
        return _dispatch(args, registry)
    except HebbcoreError as exc:
        msg = " ".join(str(exc).split("\n"))
        print(f"hebbcore: error: {msg}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("hebbcore: interrupted; files already written are complete", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if _stdout_reader_gone():  # the reader of a long output went away: main ends quietly
            raise
        print("hebbcore: error: a pipe hebbcore wrote to was closed by its reader (EPIPE)", file=sys.stderr)
        return 1
    except MemoryError:
        print(
            "hebbcore: error: out of memory; use a smaller batch_size, fewer kernels or less data "
            "(files already written are complete)",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:  # a file hebbcore does not write through hebbcore.io (a plugin's, the plots')
        from .io import describe_os_error

        where = f"{exc.filename}: " if exc.filename else ""
        print(f"hebbcore: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace, registry) -> int:
    from .spec import dumps_toml, load_spec, spec_to_table

    if args.command == "plot":
        return _plot(args.run_dir)
    if args.command == "export":
        return _export(args, registry)
    if args.command == "evaluate":
        return _evaluate(args, registry)
    if args.command == "plugins":
        for kind in registry.tables:
            entries = [f"{n} ({registry.origin[(kind, n)]})" for n in registry.names(kind)]
            print(f"{kind}s: {', '.join(entries) or '(none)'}")
        return 0
    if args.command == "tune":
        return _tune(args, registry)
    if args.command in registry.tables["command"]:
        return registry.get("command", args.command)().run(args, registry)
    if args.command == "run":
        for name in dict.fromkeys(args.logger + (["tensorboard"] if args.tensorboard else [])):
            registry.pm.register(registry.get("logger", name)())  # its hebbcore_epoch_end hook joins the run
    if args.command == "run" and args.resume:
        return _resume(args, registry)
    if args.spec is None:
        raise UsageError("a spec path is needed (or --resume DIR)")
    spec = load_spec(args.spec, registry, overrides=args.settings)
    if args.command == "validate":
        sys.stdout.write(dumps_toml(spec_to_table(spec)))
        return 0
    out = args.out or f"runs/{spec.name}"
    return _run(args, registry, spec, out, resume=False, backend=args.backend or "numpy")


def _tune(args: argparse.Namespace, registry) -> int:
    from pathlib import Path

    from .spec import load_spec
    from .tune import TuneJob, tune

    if args.trials < 1 or args.workers < 1:
        raise UsageError(f"--trials and --workers: expected >= 1, got {args.trials} and {args.workers}")
    if args.seed < 0:
        raise UsageError(f"--seed: expected >= 0, got {args.seed}")
    spec = load_spec(args.spec, registry, overrides=args.settings)
    from .runner import make_backend

    make_backend(registry, args.backend, args.device)  # a wrong name is said now, not when the first trial starts
    out = Path(args.out or f"runs/tune/{spec.name}").resolve()
    job = TuneJob(
        spec=str(Path(args.spec).resolve()), space=str(Path(args.space).resolve()), out=str(out),
        storage=args.storage or f"sqlite:///{out / 'study.db'}", study=args.study or spec.name, trials=args.trials,
        backend=args.backend, device=args.device, seed=args.seed, overrides=tuple(args.settings),
        feature_cache=args.feature_cache,
    )  # fmt: skip
    best = tune(job, workers=args.workers)
    print(f"{job.study}: best trial {best['number']}, {best['value']:.4f}, {best['params']} -> {out / 'best.toml'}")
    return 0


def _plot(run_dir: str) -> int:
    from pathlib import Path

    from .errors import DataError

    if not (Path(run_dir) / "metrics.json").is_file():
        raise DataError(f"{run_dir!r} is not a run directory (no metrics.json)")
    try:
        import matplotlib  # noqa: F401  # plots.py imports it only when drawing
    except ImportError:
        raise HebbcoreError("hebbcore plot needs matplotlib: pip install 'hebbcore[plots]'") from None
    from .plots import write_run_plots

    for p in write_run_plots(run_dir):
        print(p)
    return 0


def _evaluate(args: argparse.Namespace, registry) -> int:
    from .evaluate import evaluate_run, format_evaluation
    from .io import atomic_write_json
    from .rundir import RunDir

    splits = tuple(s.strip() for s in args.split.split(",") if s.strip())
    result = evaluate_run(
        args.run_dir, registry, args.backend, args.device, splits, mirror=args.hflip, shift=args.shift
    )
    if not RunDir(args.run_dir).is_done():  # a run cut short or a pruned trial: its last checkpoint's weights
        print(f"hebbcore: {args.run_dir} has no finished record; these are the weights it last saved", file=sys.stderr)
    print(format_evaluation(result))
    if args.json:
        atomic_write_json(args.json, {"run_dir": args.run_dir, "backend": args.backend, "splits": result})
    return 0


def _export(args: argparse.Namespace, registry) -> int:
    import io
    from pathlib import Path

    from .errors import DataError
    from .io import atomic_write_bytes

    run_dir = Path(args.run_dir)
    if not (run_dir / "spec.toml").is_file() or not (run_dir / "weights.npz").is_file():
        raise DataError(f"{str(run_dir)!r} is not a run directory (no spec.toml and weights.npz)")
    try:
        import torch

        from .torch_model import load_run
    except ImportError:
        raise HebbcoreError("hebbcore export needs torch: pip install 'hebbcore[torch]'") from None
    state = {k: v.contiguous() for k, v in load_run(str(run_dir), registry).state_dict().items()}
    out = Path(args.out or run_dir / ("model.pt" if args.format == "torch" else "model.safetensors"))
    if args.format == "safetensors":
        try:
            from safetensors.torch import save
        except ImportError:
            raise HebbcoreError("--format safetensors needs safetensors: pip install safetensors") from None
        data = save(state)
    else:
        buf = io.BytesIO()
        torch.save(state, buf)  # tensors only: torch.load(..., weights_only=True) reads it without running code
        data = buf.getvalue()
    atomic_write_bytes(out, data)
    print(out)
    return 0


def _resume(args: argparse.Namespace, registry) -> int:
    from pathlib import Path

    from .spec import load_spec

    out = Path(args.resume)
    if args.out and Path(args.out) != out:
        raise UsageError("--out and --resume name different directories; --resume continues in place")
    if args.overwrite:
        raise UsageError("--overwrite and --resume contradict each other: --resume continues the run in place")
    if args.settings:
        raise UsageError("--set and --resume contradict each other: a run resumes with the spec it started with")
    from .rundir import RunDir

    if not args.distributed or os.environ.get("RANK", "0") == "0":  # rank 0 owns the directory
        RunDir(out).ensure_free()  # before reading its spec.toml, which a running run may not have written yet
    spec = load_spec(args.spec or out / "spec.toml", registry)
    recorded = RunDir(out).read_metrics() or {}
    backend = args.backend
    if backend is None:
        backend = recorded["backend"] if isinstance(recorded.get("backend"), str) else "numpy"
    if recorded.get("feature_cache"):  # it trained on cached features: so does the rest of it
        args.feature_cache = True
    return _run(args, registry, spec, out, resume=True, backend=backend)


def _run(args: argparse.Namespace, registry, spec, out, resume: bool, backend: str) -> int:
    from .features import FeatureCache, frozen_prefix_cut
    from .runner import run

    if args.feature_cache and not frozen_prefix_cut(spec):
        print(f"hebbcore: --feature-cache: no layer at the bottom of {spec.name!r} stays fixed during the run "
              "(init_weights with no Hebbian phase, or train = 'frozen' / 'random'); nothing is cached",
              file=sys.stderr)  # fmt: skip
    shard = None
    if args.distributed:
        from .distributed import init_from_env

        shard = init_from_env(registry, backend, args.device, timeout=args.dist_timeout)
    try:
        result = run(
            spec,
            registry,
            backend=backend,
            out_dir=out,
            device=args.device,
            progress=False if args.no_progress else None,
            resume=resume,
            checkpoint_every=args.checkpoint_every,
            shard=shard,
            overwrite=args.overwrite,
            features=FeatureCache() if args.feature_cache else None,
        )
    except RuntimeError as exc:  # the SGD phase's gradient all-reduce (DDP) timing out
        from .distributed import is_timeout

        if shard is None or shard.group is None or not is_timeout(exc):
            raise
        raise shard.group.timeout_error("the SGD phase") from None
    finally:
        if shard is not None:
            from .distributed import leave_group

            leave_group()
    if shard is not None and shard.rank != 0:
        return 0
    final = result.metrics["final"]
    shown = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in final.items() if k.endswith("_acc")}
    print(f"{spec.name}: {json.dumps(shown)} -> {out}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
