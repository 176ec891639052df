"""The machine a benchmark ran on: CPU model, library versions, numpy's BLAS kernels, threads, load."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any

import numpy as np


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version(), "numpy": np.__version__}
    for mod in ("torch", "cupy", "numba"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # not installed or broken
            out[mod] = None
    return out


def cpu_kernels_line() -> str:
    """Whether the numpy and torch-CPU backends' compiled kernels were on (Numba installed and not switched off
    by ``HEBBCORE_NUMBA=0``; a call whose arrays they do not take still runs the array code), for a benchmark's
    JSON and table."""
    if os.environ.get("HEBBCORE_NUMBA", "1") == "0":
        return "off (HEBBCORE_NUMBA=0)"
    try:
        import numba
    except ImportError:
        return "off (numba is not installed)"
    return f"on (numba {numba.__version__})"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_CORENAME_SYMBOLS = (
    "openblas_get_corename",
    "openblas_get_corename64_",
    "scipy_openblas_get_corename",
    "scipy_openblas_get_corename64_",
)


def _openblas_core() -> str | None:
    """The kernel set (e.g. ``"SkylakeX"``, ``"Haswell"``) of an OpenBLAS loaded in this process (Linux), or None."""
    import ctypes

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            paths = {line.split(None, 5)[5].strip() for line in f if "openblas" in line and line.count(" ") >= 5}
    except OSError:
        return None
    for path in sorted(p for p in paths if ".so" in os.path.basename(p)):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _CORENAME_SYMBOLS:
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                core = fn()
                return core.decode(errors="replace").strip() if core else None
    return None


def numpy_blas() -> dict:
    """numpy's BLAS as this process runs it: library, version, the OpenBLAS kernels in use and the
    ``OPENBLAS_*`` variables that can force them (``OPENBLAS_CORETYPE`` overrides OpenBLAS's own choice)."""
    info: dict[str, Any] = {
        "openblas_core": _openblas_core(),
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith("OPENBLAS_")},
    }
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["name"], info["version"] = blas.get("name"), blas.get("version")
    except Exception:  # older numpy, or a build that does not say
        pass
    return info


def blas_line(blas: dict) -> str | None:
    """One line saying which kernels numpy's matrix products ran, and whether the environment forced them."""
    core = blas.get("openblas_core")
    if core is None:
        return None
    forced = blas.get("env", {}).get("OPENBLAS_CORETYPE")
    how = (
        f"forced by OPENBLAS_CORETYPE={forced} in the environment; unset it to let OpenBLAS choose"
        if forced
        else "OpenBLAS's own choice"
    )
    library = " ".join(filter(None, ("OpenBLAS", blas.get("version"))))
    return f"numpy BLAS: {library}, {core} kernels ({how})"


def machine_info(targets: list[Any]) -> dict:
    """``targets``: the benchmark's :class:`hebbcore.lab.bench.Target` list (which libraries it loads)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "hostname": platform.node(),
    }
    with contextlib.suppress(OSError):  # no load average on some platforms
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    threads = {
        k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ
    }
    if threads:
        info["thread_env"] = threads
    from hebbcore.allocator import malloc_tuning

    info["malloc_tuning"] = malloc_tuning()
    info["numpy_blas"] = numpy_blas()
    info["cpu_kernels"] = cpu_kernels_line()
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if any(str(t.device).startswith("cuda") for t in targets) and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["torch_cudnn"] = torch.backends.cudnn.version()
            info["torch_allow_tf32"] = {
                "cudnn": torch.backends.cudnn.allow_tf32,
                "matmul": torch.backends.cuda.matmul.allow_tf32,
            }
    except Exception:
        pass
    if "gpu" not in info and any(str(t.device).startswith("cuda") for t in targets):
        try:
            import cupy

            name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
            info["gpu"] = name.decode() if isinstance(name, bytes) else str(name)
        except Exception:
            pass
    return info
