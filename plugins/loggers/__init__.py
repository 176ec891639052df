"""Loggers: epoch loggers a run enables by name (``hebbcore run --logger tensorboard``)."""

from hebbcore import hookimpl


@hookimpl
def hebbcore_register_loggers():
    from .tensorboard import TensorBoardLogger

    return [TensorBoardLogger]
