"""Run ``hebbcore bench`` with some ``Ops`` methods taken from another git revision: an A/B on one machine.

    python benchmarks/ops_at_revision.py REV METHOD[,METHOD...] [hebbcore bench arguments]
    python benchmarks/ops_at_revision.py REV METHOD[,METHOD...] SCRIPT.py [its arguments]

    python benchmarks/ops_at_revision.py REV METHOD[,METHOD...] --alternate STEPS [--backend numpy] [--rounds 4]

e.g. ``python benchmarks/ops_at_revision.py df8f0e5 conv2d_winner_sums --backend numpy --repeats 3 --skip memory``
times the numpy backend with the winner sums of commit ``df8f0e5`` and everything else as checked out (with a
script instead, e.g. ``benchmarks/winner_sums.py``, that script runs under the patched methods). Run it
alternately with the plain ``hebbcore bench`` of the same arguments: CPU timings drift by 10-20 % between runs
on a shared VM, so one pair says little. Only the base ``Ops`` class (``hebbcore/ops/``, or ``hebbcore/ops.py``
at revisions before it was split) is patched, so a backend that overrides the method (torch) is unaffected.

With ``--alternate STEPS`` the A/B runs in one process instead: STEPS batch-64 Hebbian steps of the paper's
all-Hebbian net with the methods of REV, the same steps as checked out, and their floor, alternated ``--rounds``
times (fastest round of each kept), so that a machine slowing down between two commands does not decide it.
"""

from __future__ import annotations

import atexit
import functools
import importlib
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _steps import alternated_steps, step_row  # noqa: E402


def ops_class_at(rev: str) -> type:
    """The ``Ops`` class of ``rev``: from the package ``hebbcore/ops/``, or ``hebbcore/ops.py`` before the split."""
    git = functools.partial(subprocess.run, capture_output=True, text=True, cwd=REPO)
    single = git(["git", "show", f"{rev}:hebbcore/ops.py"])
    if not single.returncode:
        old = types.ModuleType(f"ops_at_{rev}")
        exec(compile(single.stdout, f"ops.py@{rev}", "exec"), old.__dict__)
        return old.Ops
    names = git(["git", "ls-tree", "--name-only", f"{rev}:hebbcore/ops"])
    if names.returncode:
        raise LookupError(f"cannot read hebbcore/ops at {rev!r}: {names.stderr.strip() or single.stderr.strip()}")
    root = Path(tempfile.mkdtemp(prefix="hebbcore-ops-"))  # a package of its own: HEAD~1 and HEAD^1 do not meet
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    package = "ops_at_" + re.sub(r"\W", "_", rev) + "_" + root.name.rsplit("-", 1)[-1]
    (root / package).mkdir()
    for name in names.stdout.split():
        if name.endswith(".py"):
            text = git(["git", "show", f"{rev}:hebbcore/ops/{name}"])
            if text.returncode:
                raise LookupError(f"cannot read hebbcore/ops/{name} at {rev!r}: {text.stderr.strip()}")
            (root / package / name).write_text(text.stdout)
    sys.path.insert(0, str(root))
    return importlib.import_module(package).Ops


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rev, methods, rest = argv[0], argv[1].split(","), argv[2:]
    try:
        old_ops = ops_class_at(rev)
    except LookupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import hebbcore.ops
    from hebbcore.cli import main as cli

    alternate = "--alternate" in rest  # both versions are installed in turn: both must exist
    trees = ((rev, old_ops),) + ((("the working tree", hebbcore.ops.Ops),) if alternate else ())
    missing = [
        f"Ops.{name} does not exist at {where}" for name in methods for where, cls in trees if not hasattr(cls, name)
    ]
    if missing:
        print(f"error: {'; '.join(missing)}", file=sys.stderr)
        return 2
    then = {name: getattr(old_ops, name) for name in methods}
    now = {name: getattr(hebbcore.ops.Ops, name, None) for name in methods}

    def install(table):
        def go():
            for name in methods:
                setattr(hebbcore.ops.Ops, name, table[name])

        return go

    if alternate:
        import argparse

        from hebbcore.allocator import tune_malloc

        p = argparse.ArgumentParser(prog="ops_at_revision.py REV METHODS")
        p.add_argument("--alternate", type=int, required=True, metavar="STEPS")
        p.add_argument("--backend", default="numpy")
        p.add_argument("--rounds", type=int, default=4)
        a = p.parse_args(rest)
        tune_malloc()  # as hebbcore bench and run do
        name, _, device = a.backend.partition(":")
        best = alternated_steps(
            name,
            a.alternate,
            {rev: install(then), "now": install(now)},
            install(now),
            rounds=a.rounds,
            device=device or "cpu",
        )
        print(
            f"{a.alternate} steps, fastest of {a.rounds} alternated rounds; Ops.{', Ops.'.join(methods)} at {rev} "
            f"against the working tree\n"
        )
        print(f"| backend | {rev} s | now s | floor s | floor / Hebbian at {rev} | floor / Hebbian now |")
        print("|---|---:|---:|---:|---:|---:|")
        print(step_row(a.backend, best, rev, "now"))
        return 0
    install(then)()
    print(f"Ops.{', Ops.'.join(methods)} from {rev}", flush=True)
    if rest and rest[0].endswith(".py"):
        script = Path(rest[0]).resolve()
        sys.argv = [str(script), *rest[1:]]
        sys.path.insert(0, str(script.parent))
        runpy.run_path(str(script), run_name="__main__")
        return 0
    return cli(["bench", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
