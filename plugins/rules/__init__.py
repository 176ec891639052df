"""Built-in learning rules. One module per family; this module registers them."""

from hebbcore import hookimpl

from .bcm import BCM
from .chl import ContrastiveHebbian
from .competitive import WinnerTakesAll
from .krotov import KrotovHopfield
from .kwta import KWinnersTakeAll
from .oja import Oja
from .pca import HebbianPCA, Sanger
from .plain import Decay, Hebb
from .ridge import Ridge
from .softhebb import SoftHebb
from .teacher import Teacher


@hookimpl
def hebbcore_register_rules():
    return [
        Hebb,
        Decay,
        WinnerTakesAll,
        Teacher,
        Oja,
        Sanger,
        HebbianPCA,
        KWinnersTakeAll,
        SoftHebb,
        KrotovHopfield,
        BCM,
        ContrastiveHebbian,
        Ridge,
    ]
