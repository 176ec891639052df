"""Built-in data sources and transforms; this module registers them."""

from hebbcore import hookimpl

from .cifar10 import Cifar10
from .cifar100 import Cifar100
from .image_folder import ImageFolder
from .mnist import FashionMnist, Mnist
from .npz import NpzSource
from .stl10 import Stl10
from .synthetic import SyntheticGratings
from .torchvision_source import Torchvision
from .transforms import Normalize, Zca


@hookimpl
def hebbcore_register_datasets():
    return [SyntheticGratings, NpzSource, Cifar10, Cifar100, Mnist, FashionMnist, ImageFolder, Stl10, Torchvision]


@hookimpl
def hebbcore_register_transforms():
    return [Normalize, Zca]
