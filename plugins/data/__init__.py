"""Built-in data sources and transforms; this module registers them."""
from hebbcore import hookimpl

from .npz import NpzSource
from .synthetic import SyntheticGratings


@hookimpl
def hebbcore_register_datasets():
    return [SyntheticGratings, NpzSource]
