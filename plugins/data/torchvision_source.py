"""``torchvision``: any image-classification dataset of ``torchvision.datasets`` (needs ``pip install torchvision``).

``dataset`` names its class (``"CIFAR10"``, ``"SVHN"``, ``"FashionMNIST"``, ``"KMNIST"``, ...): one whose
constructor takes ``train=True/False`` or ``split="train"/"test"`` and whose items are ``(image, label)``.
torchvision reads (and with ``download = true`` downloads and checks) the files under ``root``; the images
become float32 ``(C, H, W)`` in [0, 1], and the last ``n_val`` training images, in torchvision's order, validate
(the order is the dataset's own, not shuffled by the seed: check the classes are mixed in it before using
``n_val``).
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from hebbcore.errors import DataError
from hebbcore.interfaces import Dataset, DataSource, Split

from .splits import find_root, take

ENV_VAR = "HEBBCORE_TORCHVISION"


@dataclass(frozen=True)
class TorchvisionOptions:
    dataset: str = ""  # a class of torchvision.datasets, e.g. "CIFAR10", "SVHN", "FashionMNIST"
    root: str = ""  # "": $HEBBCORE_TORCHVISION, then the cache folder
    download: bool = False
    n_val: int = 0  # the last n_val training images validate (0: no validation split)
    n_train: int = 0  # 0: all the other training images; else the first n
    n_test: int = 0  # 0: all; else the first n; -1: none


def _datasets_module() -> Any:
    try:
        from torchvision import datasets
    except ImportError:
        raise DataError("data.source 'torchvision' needs torchvision: pip install torchvision") from None
    return datasets


def _dataset_class(name: str) -> type:
    datasets = _datasets_module()
    cls = getattr(datasets, name, None) if name else None
    if not isinstance(cls, type):
        names = [n for n in dir(datasets) if not n.startswith("_") and isinstance(getattr(datasets, n), type)]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"data.options.dataset: torchvision.datasets has no dataset {name!r}{hint}")
    return cls


def _open(cls: type, root: str, train: bool, download: bool) -> Any:
    """One split of a torchvision dataset, by its ``train`` flag or its ``split`` name."""
    params = inspect.signature(cls).parameters
    if "train" in params:
        kwargs: dict[str, Any] = {"train": train}
    elif "split" in params:
        kwargs = {"split": "train" if train else "test"}
    else:
        raise DataError(f"torchvision dataset {cls.__name__}: takes neither train= nor split=; not a train/test "
                        f"classification set this source can read")  # fmt: skip
    if "download" in params:
        kwargs["download"] = download
    elif download:
        raise DataError(f"torchvision {cls.__name__} takes no download=; put its files under {root!r}")
    try:
        return cls(root, **kwargs)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # torchvision's "Dataset not found or corrupted"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DataError(f"torchvision {cls.__name__} under {root!r}: {first}") from None


def _arrays(ds: Any, n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` items as float32 ``(N, C, H, W)`` in [0, 1] and int64 labels."""
    xs, ys = [], []
    for i in range(n):
        image, label = ds[i]
        a = np.asarray(image)
        a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)  # PIL: (H, W) grey or (H, W, C)
        if xs and a.shape != xs[0].shape:
            raise DataError(f"torchvision {name}: images of different sizes ({xs[0].shape} and {a.shape}); "
                            f"use the 'image_folder' source, which resizes")  # fmt: skip
        xs.append(a)
        try:
            ys.append(int(label))
        except (TypeError, ValueError):
            raise DataError(f"torchvision {name}: item {i} has the target {label!r}, not a class index") from None
    x = np.stack(xs).astype(np.float32) / np.float32(255.0) if xs else np.zeros((0, 1, 1, 1), np.float32)
    return x, np.asarray(ys, dtype=np.int64)


class Torchvision(DataSource):
    name = "torchvision"
    Options = TorchvisionOptions

    @classmethod
    def check(cls, options: TorchvisionOptions) -> list[str]:
        problems = [] if options.dataset else ["dataset: the 'torchvision' source needs a torchvision.datasets name"]
        for k in ("n_val", "n_train"):
            if getattr(options, k) < 0:
                problems.append(f"{k}: expected >= 0, got {getattr(options, k)}")
        if options.n_test < -1:
            problems.append(f"n_test: expected >= 0 (0: all) or -1 (none), got {options.n_test}")
        return problems

    def load(self, options: TorchvisionOptions, seed: int) -> Dataset:
        cls = _dataset_class(options.dataset)
        root = str(find_root(options.root, ENV_VAR, "torchvision")[0])
        train_ds = _open(cls, root, True, options.download)
        test_ds = _open(cls, root, False, options.download) if options.n_test != -1 else None
        total = len(train_ds)
        if options.n_val >= total:
            raise DataError(f"data.options.n_val: expected fewer than the {total} training images, "
                            f"got {options.n_val}")  # fmt: skip
        n_tr = take(options.n_train, total - options.n_val)
        x, y = _arrays(train_ds, total if options.n_val else n_tr, cls.__name__)
        none = Split(x[:0], y[:0])
        val = Split(x[total - options.n_val :], y[total - options.n_val :]) if options.n_val else none
        test = (
            Split(*_arrays(test_ds, take(options.n_test, len(test_ds)), cls.__name__)) if test_ds is not None else none
        )
        n_classes = len(getattr(train_ds, "classes", ())) or int(max(y.max(initial=0), test.y.max(initial=0))) + 1
        names = tuple(str(c) for c in getattr(train_ds, "classes", ())) or tuple(str(i) for i in range(n_classes))
        return Dataset(name=f"torchvision:{cls.__name__}", train=Split(x[:n_tr], y[:n_tr]), val=val, test=test,
                       n_classes=n_classes, class_names=names)  # fmt: skip
