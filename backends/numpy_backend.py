"""The NumPy reference backend: :class:`hebbcore.ops.Ops` as written, on the CPU."""

from __future__ import annotations

import numpy as np

from hebbcore.errors import BackendUnavailable
from hebbcore.ops import Ops


class NumpyOps(Ops):
    name = "numpy"
    xp = np

    def __init__(self, device: str | None = None):
        if device not in (None, "cpu"):
            raise BackendUnavailable(f"backend 'numpy' runs on the CPU only, not on device {device!r}")
        super().__init__("cpu")
