"""What the file-based data sources share: where their files are, and the checks of their split options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hebbcore.errors import DataError


def cache_root() -> Path:
    return Path(os.environ.get("HEBBCORE_CACHE") or Path.home() / ".cache" / "hebbcore")


def find_root(root: str, env_var: str, cache_name: str) -> tuple[Path, str]:
    """``(folder, where it came from)``: the ``root`` option, else ``$env_var``, else the cache folder."""
    if root:
        return Path(root).expanduser(), "data.options.root"
    if os.environ.get(env_var):
        return Path(os.environ[env_var]).expanduser(), f"${env_var}"
    return cache_root() / cache_name, "the cache folder"


def take(n_opt: int, total: int) -> int:
    """How many of ``total`` an ``n_*`` option asks for: 0 all, -1 none, else at most n."""
    return total if n_opt == 0 else (0 if n_opt < 0 else min(n_opt, total))


def check_splits(options: Any, n_train_total: int, optional: tuple[str, ...] = ("n_val", "n_test")) -> list[str]:
    """Problems with ``train_split`` (1..``n_train_total``), ``n_train`` and the ``optional`` counts
    (0: all, -1: none)."""
    problems = []
    if not 1 <= options.train_split <= n_train_total:
        problems.append(f"train_split: expected 1..{n_train_total} training images, got {options.train_split}")
    if options.n_train < 0:
        problems.append(f"n_train: expected >= 1 (0: all of train_split), got {options.n_train}")
    for k in optional:
        if getattr(options, k) < -1:
            problems.append(f"{k}: expected >= 0 (0: all) or -1 (none), got {getattr(options, k)}")
    return problems


class LocatedFiles:
    """For a data source whose ``locate(options)`` finds its files (or downloads them with ``download = true``):
    ``check_files`` locates them without downloading, so that validate refuses a missing folder as run does."""

    @classmethod
    def check_files(cls, options: Any) -> list[str]:
        if getattr(options, "download", False):
            return []
        try:
            cls().locate(options)  # type: ignore[attr-defined]  # the data source's own
        except DataError as exc:
            return [str(exc)]
        return []
