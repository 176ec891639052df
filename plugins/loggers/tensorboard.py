"""TensorBoard logging of every epoch's metrics (needs the ``tensorboard`` package).

Enabled by ``hebbcore run --logger tensorboard`` (or ``--tensorboard``); writes event files under
``<run dir>/tensorboard``: ``<phase>/<metric>`` scalars per epoch.
"""

from __future__ import annotations

from hebbcore import hookimpl
from hebbcore.errors import HebbcoreError
from hebbcore.interfaces import Logger


class TensorBoardLogger(Logger):
    name = "tensorboard"

    def __init__(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise HebbcoreError(f"--tensorboard needs torch and tensorboard (pip install tensorboard): {exc}") from None
        self._writer_cls = SummaryWriter
        self._writers: dict[str, object] = {}
        self._step = 0

    @hookimpl
    def hebbcore_epoch_end(self, run_dir, record):
        writer = self._writers.get(run_dir)
        if writer is None:
            writer = self._writers[run_dir] = self._writer_cls(log_dir=f"{run_dir}/tensorboard")
        self._step += 1
        for key, value in record.items():
            if isinstance(value, (int, float)) and key != "epoch" and value is not None:
                writer.add_scalar(f"{record['phase']}/{key}", value, self._step)
        writer.flush()
