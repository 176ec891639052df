"""Built-in learning rules. One module per family; this module registers them."""
from hebbcore import hookimpl

from .competitive import WinnerTakesAll
from .plain import Decay, Hebb
from .teacher import Teacher


@hookimpl
def hebbcore_register_rules():
    return [Hebb, Decay, WinnerTakesAll, Teacher]
