"""Run ``hebbcore bench`` with some ``Ops`` methods taken from another git revision: an A/B on one machine.

    python benchmarks/ops_at_revision.py REV METHOD[,METHOD...] [hebbcore bench arguments]
    python benchmarks/ops_at_revision.py REV METHOD[,METHOD...] SCRIPT.py [its arguments]

e.g. ``python benchmarks/ops_at_revision.py df8f0e5 conv2d_winner_sums --backend numpy --repeats 3 --skip memory``
times the numpy backend with the winner sums of commit ``df8f0e5`` and everything else as checked out (with a
script instead, e.g. ``benchmarks/winner_sums.py``, that script runs under the patched methods). Run it
alternately with the plain ``hebbcore bench`` of the same arguments: CPU timings drift by 10-20 % between runs
on a shared VM, so one pair says little. Only the base ``Ops`` class (``hebbcore/ops.py``) is patched, so a
backend that overrides the method (torch) is unaffected.
"""
from __future__ import annotations

import runpy
import subprocess
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rev, methods, rest = argv[0], argv[1].split(","), argv[2:]
    src = subprocess.run(["git", "show", f"{rev}:hebbcore/ops.py"], capture_output=True, text=True, cwd=REPO)
    if src.returncode:
        print(f"error: cannot read hebbcore/ops.py at {rev!r}: {src.stderr.strip()}", file=sys.stderr)
        return 2
    old = types.ModuleType(f"ops_at_{rev}")
    exec(compile(src.stdout, f"ops.py@{rev}", "exec"), old.__dict__)
    import hebbcore.ops
    from hebbcore.cli import main as cli

    for name in methods:
        if not hasattr(old.Ops, name):
            print(f"error: Ops.{name} does not exist at {rev}", file=sys.stderr)
            return 2
        setattr(hebbcore.ops.Ops, name, getattr(old.Ops, name))
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
