"""Built-in layer types: conv, linear, pool, batchnorm, relu, triangle, pad, flatten, dropout.

Each is a :class:`hebbcore.layers.Layer` registered through ``hebbcore_register_layers``, exactly as a
third party's layer type would be; their ``torch.nn`` modules live in :mod:`.torch_modules` (imported only
when the SGD phase or a user asks for a torch model).
"""

from hebbcore import hookimpl

from .pointwise import BatchNorm, ReLU, Triangle
from .shaping import Dropout, Flatten, Pad, Pool
from .weights import Conv, Linear


@hookimpl
def hebbcore_register_layers():
    return [Conv, Linear, Pool, BatchNorm, ReLU, Triangle, Pad, Flatten, Dropout]
