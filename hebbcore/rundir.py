"""The run directory: its single writer, its lock, and the checkpoint format.

Every file of a run directory is written by :class:`RunDir`, atomically:

- ``spec.toml``: the resolved spec; ``metrics.json`` / ``metrics.csv``: the per-epoch records;
- ``weights.npz``: one array per parameter, ``"<layer>.<param>"``;
- ``checkpoint.npz``: where training stands, for ``hebbcore run --resume DIR``.

A checkpoint holds no pickle: its arrays (weights, rule state, optimizer buffers,
RNG states) are ``.npy`` members of an ``.npz`` read with ``allow_pickle=False``,
and everything else is one JSON document (member ``__meta__``) that refers to
them by name. Reading one can never execute code. A ``checkpoint.pkl`` of an
older hebbcore is refused, not read.

While a run writes, it holds an advisory lock on ``DIR/.lock`` (``fcntl.flock``,
released by the kernel when the process dies), so a second run or resume into the
same directory fails at once, naming the holder's pid.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataError, HebbcoreError
from .io import (
    NPZ_READ_ERRORS,
    TMP_SUFFIX,
    WriteError,
    atomic_save_npz,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    describe_os_error,
    read_json_table,
)

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock
    fcntl = None  # type: ignore[assignment]

CHECKPOINT = "checkpoint.npz"
LEGACY_CHECKPOINT = "checkpoint.pkl"
LOCK = ".lock"
META = "__meta__"
FORMAT = "hebbcore-checkpoint/1"
#: The plots a run draws (``hebbcore.plots``); ``overwrite`` removes them too.
PLOT_FILES = ("kernels_*.png", "learning_curves.png", "confusion.png")
#: The files one run writes; ``overwrite`` removes them (and :data:`PLOT_FILES`) before a new run starts.
RUN_FILES = (CHECKPOINT, LEGACY_CHECKPOINT, "weights.npz", "metrics.json", "metrics.csv", "spec.toml", "command.txt")


class RunDirBusy(HebbcoreError):
    """Another process holds the run directory."""


class RunDirTaken(HebbcoreError):
    """The directory already holds a run, and the caller asked neither to resume nor to overwrite it."""

    exit_code = 2


# ---------------------------------------------------------------------------- the checkpoint format


def _is_tensor(obj: Any) -> bool:
    return type(obj).__name__ == "Tensor" and type(obj).__module__.startswith("torch")


def encode_tree(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """A JSON-ready copy of ``obj`` with every array moved to ``arrays`` and replaced by a reference.

    Handles dicts (any hashable JSON-scalar keys), lists, tuples, str/int/float/bool/None,
    numpy arrays and scalars, and torch tensors (restored as tensors).
    """
    if isinstance(obj, np.ndarray):
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {"__array__": key}
    if _is_tensor(obj):
        key = f"a{len(arrays)}"
        arrays[key] = obj.detach().cpu().numpy()
        return {"__tensor__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_tree(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [encode_tree(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode_tree(v, arrays) for k, v in obj.items()}
        for k in obj:
            if not (k is None or isinstance(k, (bool, int, float, str))):
                raise TypeError(f"checkpoint: cannot store a dict key of type {type(k).__name__}")
        return {"__dict__": [[k, encode_tree(v, arrays)] for k, v in obj.items()]}
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__}")


def decode_tree(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The inverse of :func:`encode_tree`."""
    if isinstance(obj, list):
        return [decode_tree(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        ((tag, value),) = obj.items()
        if tag == "__array__":
            return arrays[value]
        if tag == "__tensor__":
            import torch

            return torch.from_numpy(np.array(arrays[value]))
        if tag == "__tuple__":
            return tuple(decode_tree(v, arrays) for v in value)
        if tag == "__dict__":
            return {k: decode_tree(v, arrays) for k, v in value}
    return {k: decode_tree(v, arrays) for k, v in obj.items()}


def dumps_checkpoint(state: dict) -> bytes:
    """``state`` as the bytes of an ``.npz``: its arrays plus a JSON ``__meta__`` member."""
    arrays: dict[str, np.ndarray] = {}
    meta = {"format": FORMAT, "state": encode_tree(state, arrays)}
    text = json.dumps(meta, allow_nan=True).encode("utf-8")
    buf = io.BytesIO()
    arrays[META] = np.frombuffer(text, dtype=np.uint8)
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # numpy's stub confuses **arrays with allow_pickle
    return buf.getvalue()


def loads_checkpoint(data: bytes | Path, source: str) -> dict:
    """The state :func:`dumps_checkpoint` wrote; :class:`DataError` naming ``source`` if it is anything else."""
    try:
        loaded = np.load(data if isinstance(data, Path) else io.BytesIO(data), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("an .npy array, not an .npz archive")
        with loaded as f:
            arrays = {k: f[k] for k in f.files}
        meta = json.loads(arrays.pop(META).tobytes().decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}")
        state = decode_tree(meta["state"], arrays)
        if not isinstance(state, dict):
            raise ValueError("no state table")
        return state
    except (*NPZ_READ_ERRORS, TypeError, AttributeError, IndexError, UnicodeDecodeError,
            RecursionError) as exc:  # fmt: skip  # a garbled document: whatever it trips on
        raise DataError(
            f"checkpoint {source!r} is unreadable ({exc.__class__.__name__}: {exc}); "
            f"train the run again from the start with --overwrite"
        ) from None


# ---------------------------------------------------------------------------- the directory


class RunDir:
    """The one owner of a run directory: lock, checkpoint, weights, metrics, spec."""

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        """``enabled = False``: a data-parallel worker other than rank 0, which writes nothing."""
        self.path = Path(path)
        self.enabled = enabled
        self._lock_fd: int | None = None
        self._depth = 0
        self._made: list[Path] = []  # the folders this object created, innermost first (removed if left empty)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # locking --------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[RunDir]:
        """Hold the directory's lock for the block (re-entrant within this object)."""
        if not self.enabled or fcntl is None:
            yield self
            return
        if self._depth == 0:
            self._acquire()
        self._depth += 1
        try:
            yield self
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._release()

    def _acquire(self) -> None:
        for _ in range(8):  # a lock file removed by the holder between our open and our flock: open it anew
            fd = self._open_lock()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
                finally:
                    os.close(fd)
                raise RunDirBusy(
                    f"run directory {str(self.path)!r} is in use by another hebbcore process "
                    f"(pid {holder}); wait for it to end or choose another --out"
                ) from None
            if self._is_current_lock(fd):
                break
            os.close(fd)
        else:
            raise RunDirBusy(f"run directory {str(self.path)!r} keeps being removed by another process")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the lock holds even where the pid cannot be written (a full disk)
        self._lock_fd = fd
        self.remove_temporaries()

    def _open_lock(self) -> int:
        """The lock file's descriptor; the folders this object creates for it are remembered (:meth:`_release`)."""
        try:
            made = [p for p in (self.path, *self.path.parents) if not p.exists()]
            self.path.mkdir(parents=True, exist_ok=True)
            self._made = self._made or made
            return os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise WriteError(f"cannot use run directory {str(self.path)!r}: {describe_os_error(exc)}") from None

    def _is_current_lock(self, fd: int) -> bool:
        """True when ``fd`` is still the file at ``.lock`` (not one its previous holder removed)."""
        try:
            return os.fstat(fd).st_ino == os.stat(self.path / LOCK).st_ino
        except OSError:
            return False

    def ensure_free(self) -> None:
        """Raise :class:`RunDirBusy` now if another process holds the directory (a probe: the lock is not kept)."""
        if fcntl is None or not (self.path / LOCK).exists():
            return
        with self.locked():
            pass

    def _release(self) -> None:
        if self._lock_fd is not None:
            if self._made:  # a run that failed before writing anything leaves none of the folders it made
                with contextlib.suppress(OSError):
                    if [p.name for p in self.path.iterdir()] == [LOCK]:
                        (self.path / LOCK).unlink()
                        for folder in self._made:  # the run folder first, then the parents made for it
                            folder.rmdir()  # stops (OSError) at the first one something else now uses
                self._made = []
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def remove_temporaries(self) -> list[Path]:
        """Delete the temporary files an interrupted atomic write left (``.<name>.*.tmp``)."""
        removed = []
        for p in self.path.glob(f".*{TMP_SUFFIX}"):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
        return removed

    # what is there --------------------------------------------------------------------------
    def holds_run(self) -> str | None:
        """The name of a file showing the directory already holds a run, or None."""
        for name in (CHECKPOINT, LEGACY_CHECKPOINT, "metrics.json", "weights.npz"):
            if (self.path / name).exists():
                return name
        return None

    def refuse_if_taken(self, overwrite: bool) -> str | None:
        """:class:`RunDirTaken` when the directory holds a run and ``overwrite`` is off; else the file found."""
        found = self.holds_run() if self.enabled else None
        if found and not overwrite:
            raise RunDirTaken(
                f"run directory {str(self.path)!r} already holds a run ({found}); resume it with "
                f"--resume {str(self.path)}, replace it with --overwrite, or choose another --out "
                f"(from Python: run(..., resume=True) or run(..., overwrite=True))"
            )
        return found

    def prepare_fresh(self, overwrite: bool) -> None:
        """Make the directory ready for a new run: refuse one holding a run unless ``overwrite``."""
        if not self.enabled:
            return
        if self.refuse_if_taken(overwrite):
            for name in RUN_FILES:
                try:
                    (self.path / name).unlink()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise WriteError(f"cannot replace {str(self.path / name)!r}: {describe_os_error(exc)}") from None
            for pattern in PLOT_FILES:  # only what a run draws: a folder of the user's own stays
                for plot in (self.path / "plots").glob(pattern):
                    with contextlib.suppress(FileNotFoundError):
                        plot.unlink()

    def read_metrics(self) -> dict | None:
        try:
            return read_json_table(self.path / "metrics.json", "metrics")
        except DataError:
            return None

    def is_done(self) -> bool:
        m = self.read_metrics()
        return bool(m and m.get("final"))

    # checkpoints ----------------------------------------------------------------------------
    def load_checkpoint(self) -> dict:
        """The last checkpoint; a clear :class:`HebbcoreError` when there is none or it is foreign."""
        path = self.path / CHECKPOINT
        if not path.is_file():
            if (self.path / LEGACY_CHECKPOINT).is_file():
                raise DataError(
                    f"cannot resume: {str(self.path / LEGACY_CHECKPOINT)!r} is a pickle from an older "
                    f"hebbcore, which is never read because unpickling can run arbitrary code; "
                    f"start the run again"
                )
            raise HebbcoreError(f"cannot resume: {str(path)!r} does not exist (was the run started with hebbcore run?)")
        return loads_checkpoint(path, str(path))

    def interrupted_position(self, spec_table: dict | None = None) -> str | None:
        """Where an unfinished run stopped ("sgd epoch 7, batch 20"), or None when it cannot resume.

        None: the run is finished, has no readable checkpoint, or ``spec_table`` (the resolved
        spec it would run now) differs from the checkpoint's.
        """
        if self.is_done() or not (self.path / CHECKPOINT).is_file():
            return None
        try:
            saved = self.load_checkpoint()
        except HebbcoreError:
            return None
        if (spec_table is not None and saved.get("spec") != spec_table) or saved.get("phase") == "done":
            return None  # another spec's checkpoint, or a finished run's: nothing to continue
        where = f"{saved.get('phase')} epoch {saved.get('epoch')}"
        return where + (f", batch {saved['batch']}" if saved.get("batch") else "")

    def save_checkpoint(self, state: dict, weights: dict[str, np.ndarray], metrics: dict, csv: str) -> None:
        """Write the checkpoint, then weights and metrics (each atomically)."""
        if not self.enabled:
            return
        atomic_write_bytes(self.path / CHECKPOINT, dumps_checkpoint(state))
        atomic_save_npz(self.path / "weights.npz", weights)
        atomic_write_json(self.path / "metrics.json", metrics)
        atomic_write_text(self.path / "metrics.csv", csv)

    # plain files ----------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> None:
        if self.enabled:
            atomic_write_text(self.path / name, text)

    def write_json(self, name: str, obj: Any) -> None:
        if self.enabled:
            atomic_write_json(self.path / name, obj)

    def save_npz(self, name: str, arrays: dict[str, np.ndarray]) -> None:
        if self.enabled:
            atomic_save_npz(self.path / name, arrays)
