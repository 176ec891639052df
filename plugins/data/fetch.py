"""Downloads with a checksum, for the data sources that fetch the official files when ``download = true``."""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from hebbcore.errors import DataError


def md5_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)  # the official checksums are md5: integrity, not security
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def check_md5(path: Path, expected: str) -> None:
    """:class:`DataError` unless ``path`` has md5 ``expected`` (the file is left for inspection)."""
    got = md5_of(path)
    if got != expected:
        raise DataError(
            f"downloaded file {str(path)!r} has md5 {got}, expected {expected}: corrupt or incomplete download; "
            f"delete it and retry"
        )


def fetch(url: str, dest: Path, md5: str, hint: str) -> Path:  # pragma: no cover - needs the network
    """``dest``, downloaded from ``url`` unless a copy with the right md5 is there; ``hint`` says how to do it
    by hand when the download fails."""
    if dest.is_file() and md5_of(dest) == md5:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as fh:
            shutil.copyfileobj(resp, fh, 1 << 20)
    except OSError as exc:
        raise DataError(f"cannot download {url} ({exc.__class__.__name__}: {exc}); {hint}") from None
    check_md5(part, md5)
    os.replace(part, dest)
    return dest
