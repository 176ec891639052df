"""Re-test the surviving mutants of a finished cosmic-ray session against today's tests.

    python tests/mutation/retest_survivors.py CONFIG.toml [SESSION_DIR]

A full session takes hours; after tests are added for its survivors, this applies each survivor's recorded diff
to a throw-away checkout of HEAD, runs the config's test command, and prints which are now killed. A mutant the
session killed stays killed as long as tests are only added, so the two together give today's score. A diff that
no longer applies (the code moved) is reported as such, not counted.
"""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def survivors(session: Path) -> list[tuple[str, str, int, str]]:
    """(job id, module, line, diff) of every surviving mutant of the session."""
    with sqlite3.connect(session / "session.sqlite") as db:
        rows = db.execute(
            "select s.job_id, s.module_path, s.start_pos_row, r.diff from mutation_specs s "
            "join work_results r on s.job_id = r.job_id where r.test_outcome = 'SURVIVED' "
            "order by s.module_path, s.start_pos_row"
        ).fetchall()
    # cosmic-ray's diffs start with a header line of its own and end without the newline git apply needs
    return [(j, m, int(line), diff.split("\n", 1)[1].rstrip("\n") + "\n") for j, m, line, diff in rows]


def main(argv: list[str]) -> int:
    config = Path(argv[0]).resolve()
    session = Path(argv[1] if len(argv) > 1 else f"/tmp/hebbcore-mutation-{config.stem}")
    if not (session / "session.sqlite").is_file():
        print(f"retest_survivors: no cosmic-ray session in {str(session)!r} (run tests/mutation/run.sh first)")
        return 2
    settings = tomllib.loads(config.read_text())["cosmic-ray"]
    command, timeout = settings["test-command"], float(settings.get("timeout", 300))
    repo = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
    with tempfile.TemporaryDirectory(prefix="hebbcore-retest-") as tmp:
        tree, path = Path(tmp) / "tree", Path(tmp) / "path"
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), "HEAD"], check=True,
                       capture_output=True)  # fmt: skip
        try:
            path.mkdir()  # the checkout's packages first on the path: they are the mutated ones
            packages = {"hebbcore": "hebbcore", "hebbcore_plugins": "plugins", "hebbcore_backends": "backends"}
            for link, target in packages.items():
                (path / link).symlink_to(tree / target)
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(path), os.environ.get("PYTHONPATH")]))}
            counts = {"killed": 0, "survived": 0, "does not apply": 0}
            for job, module, line, diff in survivors(session):
                applied = subprocess.run(["git", "apply", "-"], cwd=tree, input=diff, text=True,
                                         capture_output=True)  # fmt: skip
                if applied.returncode:
                    outcome = "does not apply"
                else:
                    try:
                        res = subprocess.run(shlex.split(command), cwd=tree, env=env, capture_output=True,
                                             timeout=timeout)  # fmt: skip
                        outcome = "survived" if res.returncode == 0 else "killed"
                    except subprocess.TimeoutExpired:
                        outcome = "killed"  # as cosmic-ray counts a timeout
                    subprocess.run(["git", "checkout", "--", "."], cwd=tree, check=True)
                counts[outcome] += 1
                change = [l for l in diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
                shown = change[0][1:].strip()[:90] if change else ""
                print(f"{outcome:15} {job[:8]} {module}:{line} {shown}", flush=True)
            print(", ".join(f"{v} {k}" for k, v in counts.items()))
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
