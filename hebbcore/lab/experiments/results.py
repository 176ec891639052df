"""What a results folder holds: finished runs, interrupted ones, stale specs, weights to start from, provenance."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from hebbcore.errors import DataError, HebbcoreError
from hebbcore.io import atomic_save_npz
from hebbcore.rundir import RunDir
from hebbcore.spec import parse_spec, spec_to_table
from hebbcore.specfile import apply_setting, read_spec_table

from .manifest import Overrides

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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


def stale_fields(spec_file: Path, run_dir: Path, registry, settings: Sequence[str] = ()) -> list[str]:
    """Top-level spec fields in which ``spec_file`` (now) differs from the finished run in ``run_dir``.

    The spec file is read as a run reads it (``extends``, paths) with the manifest row's ``settings`` and the
    overrides the run was made with (``metrics.json``); both sides are resolved (defaults filled in), and
    ``init_weights`` is left out (it names a file, not a setting). An unreadable spec on either side counts
    as a change of ``spec``.
    """
    recorded = run_dir / "spec.toml"
    if not recorded.is_file():
        return []
    try:
        info = (read_metrics(run_dir) or {}).get("experiment") or {}
        table = read_spec_table(spec_file)[0]
        if [p for setting in settings for p in apply_setting(table, setting)]:
            return ["spec"]
        now = Overrides(**(info.get("overrides") or {})).apply(table)
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
    from hebbcore.io import read_npz

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
