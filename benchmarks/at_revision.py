"""Run a command on the whole library as it was at another git revision: an A/B of everything on one machine.

    python benchmarks/at_revision.py REV COMMAND [ARGS...]

e.g. ``python benchmarks/at_revision.py 6a79fb9 hebbcore bench --backend numpy --repeats 3 --skip memory``,
run alternately with the same ``hebbcore bench`` on the working tree (CPU timings drift by 10-20 % between
commands on a shared VM, so one pair says little). REV is checked out into a temporary git worktree, and
COMMAND runs with ``hebbcore``, ``hebbcore_backends`` and ``hebbcore_plugins`` imported from it (through
``PYTHONPATH``, from a temporary working directory; an argument naming an existing file or folder here is
passed as its absolute path, so ``benchmarks/winner_sums.py`` runs the working tree's script on the old
library; give files a command writes, e.g. ``--json``, as absolute paths). ``hebbcore`` as COMMAND runs
``python -m hebbcore.cli``; ``python`` runs this interpreter. Where only some ``Ops`` methods
changed, ``benchmarks/ops_at_revision.py`` alternates both versions in one process instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: import name -> folder of the repository (pyproject's package-dir)
PACKAGES = {"hebbcore": "hebbcore", "hebbcore_backends": "backends", "hebbcore_plugins": "plugins"}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    rev, head = argv[0], argv[1]
    args = [a if a.startswith("-") or not os.path.exists(a) else os.path.abspath(a) for a in argv[2:]]
    command = {"hebbcore": [sys.executable, "-m", "hebbcore.cli"], "python": [sys.executable]}.get(head, [head]) + args
    with tempfile.TemporaryDirectory(prefix="hebbcore-at-") as tmp:
        tree, path = Path(tmp) / "tree", Path(tmp) / "path"
        made = subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), rev], cwd=REPO, capture_output=True, text=True
        )
        if made.returncode:
            print(f"error: cannot check out {rev!r}: {made.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            path.mkdir()
            for name, folder in PACKAGES.items():
                (path / name).symlink_to(tree / folder, target_is_directory=True)
            stub_missing_plugins(tree)
            env = {
                **os.environ,
                "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            }
            print(f"{' '.join(argv[1:])}  # with the library at {rev}", file=sys.stderr, flush=True)
            return subprocess.run(command, cwd=path, env=env).returncode
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)


def stub_missing_plugins(tree: Path) -> None:
    """An empty module for each entry-point plugin of the installed hebbcore that the revision lacks (a plugin
    package added since), so the old library loads its entry points instead of refusing the new one."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="hebbcore"):
        top, _, rest = ep.value.partition(":")[0].partition(".")
        if top not in PACKAGES or not rest:
            continue
        target = tree / PACKAGES[top] / Path(*rest.split("."))
        if not target.with_suffix(".py").exists() and not target.is_dir():
            target.with_suffix(".py").write_text('"""Stub: this plugin does not exist at this revision."""\n')


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
