"""Atomic file writes (a reader sees the old file or the new one, never half of one), and the one safe reader
of ``.npz`` files.

A write that fails (disk full, read-only folder, file size limit, name too long)
raises :class:`WriteError` naming the file; the file it would have replaced is
left as it was and no temporary file stays behind. New files get the
permissions a plain ``open`` would give them (``0o666`` less the umask).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, HebbcoreError

TMP_SUFFIX = ".tmp"


class WriteError(HebbcoreError):
    """A file could not be written; what was on disk before is intact."""


def describe_os_error(exc: OSError) -> str:
    """``"No space left on device (ENOSPC)"``: the reason, with its errno name when there is one."""
    name = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or exc.__class__.__name__
    return f"{reason} ({name})" if name else reason


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is a set-and-return, racy with threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
        with contextlib.suppress(AttributeError, OSError):  # platforms without fchmod keep mkstemp's 0o600
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0o600; give what open() would
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        with contextlib.suppress(OSError):  # make the rename itself durable (not on every platform)
            dirfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
    except OSError as exc:
        raise WriteError(
            f"cannot write {str(path)!r}: {describe_os_error(exc)}; the files already written are intact"
        ) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def atomic_save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **arrays with allow_pickle
    atomic_write_bytes(path, buf.getvalue())


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


#: What reading a damaged, truncated or foreign file as an ``.npz`` raises (numpy, zipfile, zlib).
NPZ_READ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def read_npz(path: str | os.PathLike, what: str, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path`` (only ``names`` when given; those it lacks are left out).

    Never unpickles. A missing, truncated, corrupted or foreign file raises :class:`DataError` naming
    ``what`` and the file, in one line.
    """
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{what}: {str(path)!r} does not exist") from None
    except NPZ_READ_ERRORS as exc:
        raise DataError(f"{what}: {str(path)!r} is not a readable .npz ({_npz_reason(exc)})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise DataError(f"{what}: {str(path)!r} is a single .npy array, not an .npz archive of named arrays")
    try:
        with loaded as f:
            wanted = f.files if names is None else [k for k in names if k in f.files]
            return {k: f[k] for k in wanted}
    except NPZ_READ_ERRORS as exc:
        raise DataError(f"{what}: {str(path)!r} is not a readable .npz ({_npz_reason(exc)})") from None


def read_json_table(path: str | os.PathLike, what: str) -> dict:
    """The JSON object (a table) in the file at ``path``; :class:`DataError` naming ``what`` and the file when it
    is missing, unreadable, not JSON or not an object."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{what}: {str(path)!r} does not exist") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DataError(f"{what}: {str(path)!r} is not readable JSON ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{what}: {str(path)!r} holds a JSON {type(obj).__name__}, expected an object")
    return obj


def _npz_reason(exc: BaseException) -> str:
    if isinstance(exc, ValueError) and "Object arrays cannot be loaded" in str(exc):
        return "it holds an array of Python objects, which would be unpickled; hebbcore never loads those"
    if isinstance(exc, ValueError) and "pickle" in str(exc):  # numpy's guess for a file of unknown format
        return "neither an .npz archive nor an .npy array"
    return f"{exc.__class__.__name__}: {exc}"
