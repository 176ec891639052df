"""Downloads with a checksum, for the data sources that fetch the official files when ``download = true``."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
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


def extract_archive(archive: Path, dest: Path, expected_md5: str, folder: str) -> Path:
    """Check the archive's md5, then extract it into ``dest``; returns its ``folder``.

    Raises :class:`DataError` on a checksum mismatch (the archive is left in
    place for inspection) or an unreadable archive. Members that would land
    outside ``dest`` are refused.
    """
    got = md5_of(archive)
    if got != expected_md5:
        raise DataError(
            f"downloaded archive {str(archive)!r} has md5 {got}, expected {expected_md5}: "
            f"corrupt or incomplete download; delete it and retry"
        )
    dest.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                for m in members:
                    target = (tmp / m.name).resolve()
                    if not str(target).startswith(str(tmp.resolve())) or m.issym() or m.islnk():
                        raise DataError(f"archive {str(archive)!r}: refusing member {m.name!r}")
                tar.extractall(tmp, members=members)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"archive {str(archive)!r} cannot be extracted ({exc.__class__.__name__}: {exc})") from None
        src = tmp / folder
        if not src.is_dir():
            raise DataError(f"archive {str(archive)!r} holds no {folder}/ folder")
        final = dest / folder
        if final.exists():
            shutil.rmtree(final)
        os.replace(src, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def locate_release(root: str, env_var: str, cache_name: str, folder: str, marker: str, download: bool, url: str,
                   md5: str, label: str, shown: str = "") -> Path:  # fmt: skip
    """The folder of an official release (holding ``marker``): the ``root`` option, ``$env_var`` or the cache
    folder, being that folder or holding it; with ``download``, the archive at ``url`` fetched, md5-checked and
    extracted there. :class:`DataError` with where it looked and what to set, otherwise (``shown``: how the
    message names the missing marker)."""
    from .splits import find_root

    base, origin = find_root(root, env_var, cache_name)
    path = base if (base / marker).is_file() or base.name == folder else base / folder
    if (path / marker).is_file():
        return path
    if download:  # pragma: no cover - needs the network
        hint = f"download it by hand and set ${env_var} to the folder holding {folder}/"
        archive = fetch(url, path.parent / url.rsplit("/", 1)[1], md5, hint)
        return extract_archive(archive, path.parent, md5, folder)
    raise DataError(
        f"{label} not found: {str(path)!r} (from {origin}) has no {shown or marker}; set [data.options] root or "
        f"${env_var} to the folder holding {folder}/, or set download = true"
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
