"""Registers the built-in backends through the ``hebbcore`` entry-point group."""

from hebbcore import hookimpl

from .cupy_backend import CupyOps
from .numpy_backend import NumpyOps
from .torch_backend import TorchOps


@hookimpl
def hebbcore_register_backends():
    return [NumpyOps, TorchOps, CupyOps]
