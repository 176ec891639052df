"""The feature cache: the output of a spec's frozen bottom layers, computed once and kept in memory.

A probe of fixed features (a linear readout of Hebbian layers a previous run learned, of random layers, of
frozen ones) runs those layers on every batch of every epoch unless their output is kept.
``run(spec, registry, features=FeatureCache())`` computes it once per split and trains only the layers above on
it; the run directory still describes the whole network. One cache serves many runs of one process (the rows
of an experiment folder, the trials of ``hebbcore tune``): a run whose frozen layers hold the same weights on the
same data reuses the features of the one before.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from hebbcore.interfaces import Dataset, Split, check_hflip_inputs
from hebbcore.network import Network
from hebbcore.plugin_manager import Registry
from hebbcore.settings import env_bytes, size_text
from hebbcore.spec import RunSpec


def feature_cache_bytes() -> int:
    """Memory all cached feature sets may take together: ``HEBBCORE_FEATURE_CACHE_BYTES``, else a quarter of the
    physical memory (2.5 GB where unknown)."""
    try:
        default = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (AttributeError, ValueError, OSError):
        default = 2_500_000_000
    return env_bytes("HEBBCORE_FEATURE_CACHE_BYTES", default)


def frozen_prefix_cut(spec: RunSpec) -> int:
    """Number of leading layers whose output can be computed once, 0 if none.

    The prefix holds the leading ``frozen`` / ``random`` conv and linear layers
    with the ReLU, triangle, pad, pool and flatten layers between them, and the
    batch-norms that follow a ``frozen`` layer, or normalise the input below a
    ``frozen`` first layer (their statistics come with the weights and are used
    as at inference, as for any fixed feature extractor). It stops at
    a batch-norm above a ``random`` layer unless that batch-norm is ``frozen``
    (its statistics must still be learned), at a batch-norm with ``train =
    "sgd"``, at a batch-norm not marked ``frozen`` when the spec has a Hebbian
    phase (which learns its statistics), at dropout, and at the first layer
    that trains. A ``hebbian`` layer is as ``frozen`` when the spec has no
    Hebbian phase (a probe of weights a Hebbian run learned, given by
    ``init_weights``).
    """
    hebbian_phase = (
        "hebbian" in spec.phases and spec.hebbian.epochs > 0 and any(l.train == "hebbian" for l in spec.layers)
    )
    fixed = {"frozen": "frozen", "random": "random", **({} if hebbian_phase else {"hebbian": "frozen"})}
    first = next((l for l in spec.layers if l.trainable), None)
    # a batch-norm of the input (below every trainable layer) is as frozen as the first trainable layer
    cut, below = 0, "frozen" if first is not None and fixed.get(first.train) == "frozen" else ""
    for i, l in enumerate(spec.layers):
        if l.trainable:
            if l.train not in fixed:
                break
            below = fixed[l.train]
        elif l.layer_cls.running_stats:
            # an SGD-trained batch-norm is not a fixed feature; one above a random layer is, when frozen itself;
            # the Hebbian phase learns the statistics of every batch-norm not marked frozen
            if l.train == "sgd" or (l.train != "frozen" and (below != "frozen" or hebbian_phase)):
                break
        elif not l.layer_cls.fixed:
            break
        cut = i + 1
    trained = ("sgd", "hebbian") if hebbian_phase else ("sgd",)
    if not any(l.trainable and l.train in trained for l in spec.layers[cut:]):
        return 0
    if not any(l.trainable for l in spec.layers[:cut]):
        return 0
    return cut


class FeatureCache:
    """Outputs of frozen bottom layers, kept in memory (a few entries, least recently used dropped).

    Entries are keyed by a chain of hashes, one per layer (its spec and
    parameters, on top of the keys below it), so a deeper prefix of the same
    frozen layers starts from a shallower cached one instead of from the images.
    """

    def __init__(self, max_entries: int = 4, max_bytes: int | None = None):
        """``max_bytes``: what all entries may take together (default: :func:`feature_cache_bytes`)."""
        self.max_entries = max_entries
        self.max_bytes = feature_cache_bytes() if max_bytes is None else max_bytes
        self.entries: OrderedDict[str, Dataset] = OrderedDict()
        self.hits = 0
        self.extended = 0
        self.too_large: str = ""  # why the last features() call returned None, for the log

    @staticmethod
    def nbytes(data: Dataset) -> int:
        return sum(s.x.nbytes for s in (data.train, data.val, data.test, data.train_mirrored) if s is not None)

    @staticmethod
    def layer_keys(net, cut: int, data_key: str) -> list[str]:
        """One key per layer of the prefix: the hash of the key below, the layer's spec and its parameters."""
        keys, prev = [], hashlib.sha256(data_key.encode()).hexdigest()
        for node in net.nodes[:cut]:
            h = hashlib.sha256(prev.encode())
            h.update(repr(node.spec).encode())
            for k in sorted(node.params):
                h.update(np.ascontiguousarray(net.ops.to_numpy(node.params[k])).tobytes())
            prev = h.hexdigest()
            keys.append(prev)
        return keys

    def features(
        self, net, cut: int, data: Dataset, data_key: str, batch: int = 500, mirrored: bool = False
    ) -> Dataset | None:
        """The output of ``net``'s first ``cut`` layers for every split of ``data`` (None: over the budget).

        ``mirrored``: also for the left-right mirror image of each training image (``Dataset.train_mirrored``).
        """
        if mirrored:
            check_hflip_inputs(data.train.x.shape)
        keys = self.layer_keys(net, cut, data_key)
        entry = self.entries.get(keys[-1])
        if entry is not None and (entry.train_mirrored is not None or not mirrored):
            self.entries.move_to_end(keys[-1])
            self.hits += 1
            return entry
        shape = net.nodes[cut - 1].out_shape
        n = len(data.train) + len(data.val) + len(data.test) + (len(data.train) if mirrored else 0)
        need = int(np.prod(shape)) * 4 * n
        extra = need - (self.nbytes(entry) if entry is not None else 0)  # what is computed now
        if need > self.max_bytes:
            self.too_large = (
                f"its features would take {size_text(need)}, over the cache's "
                f"{size_text(self.max_bytes)} (HEBBCORE_FEATURE_CACHE_BYTES)"
            )
            return None
        self.too_large = ""
        start, source, source_key = 0, data, None
        for j in range(cut - 1, 0, -1):
            if keys[j - 1] in self.entries and (not mirrored or self.entries[keys[j - 1]].train_mirrored is not None):
                start, source, source_key = j, self.entries[keys[j - 1]], keys[j - 1]
                self.extended += 1
                break
        # make room first: the budget holds while the new features are computed, not only after
        for key in [k for k in self.entries if k not in (keys[-1], source_key)]:
            if sum(map(self.nbytes, self.entries.values())) + extra <= self.max_bytes:
                break
            del self.entries[key]  # least recently used first
        ops = net.ops

        def run(split: Split) -> Split:
            out = np.empty((len(split),) + tuple(shape), dtype=np.float32)
            for i in range(0, len(split), batch):
                x = ops.asarray(split.x[i : i + batch])
                for node in net.nodes[start:cut]:
                    x = net.layer_forward(node, x, batch_stats=False)
                out[i : i + batch] = ops.to_numpy(x)
            return Split(out, split.y)

        if entry is not None:  # the same features without the mirrored ones: only those are computed
            feats = entry
            del self.entries[keys[-1]]
        else:
            feats = data.replace(train=run(source.train), val=run(source.val), test=run(source.test), unlabeled=None)
        if mirrored:
            below = source.train_mirrored  # a shallower entry is used only when it has the mirrored images
            if not start or below is None:
                below = Split(np.ascontiguousarray(data.train.x[..., ::-1]), data.train.y)
            feats = feats.replace(train_mirrored=run(below))
        self.entries[keys[-1]] = feats
        while len(self.entries) > 1 and (
            len(self.entries) > self.max_entries or sum(map(self.nbytes, self.entries.values())) > self.max_bytes
        ):
            self.entries.popitem(last=False)  # least recently used first; the new entry stays
        return feats


# ------------------------------------------------------------------------------------------------ running


def dataset_fingerprint(data: Dataset) -> str:
    """A hash of the splits' shapes, labels and every 97th image: which images a cache entry was computed on."""
    h = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        h.update(repr((split.x.shape, str(split.x.dtype))).encode())
        h.update(np.ascontiguousarray(split.y).tobytes())
        h.update(np.ascontiguousarray(split.x[::97]).tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class FrozenPrefix:
    """``spec`` split at its frozen prefix: ``top`` (the layers above, as a spec of their own) trains on
    ``data`` (the prefix's output for every split), starting from ``whole``'s initial weights; ``state`` holds
    the prefix's parameters and ``whole`` the whole network, which the run's ``spec.toml``, ``weights.npz`` and
    result describe."""

    whole: Network
    top: RunSpec
    data: Dataset
    state: dict[str, np.ndarray]
    key: str  # the cache's key of the features: the frozen layers' weights and the data

    @property
    def record(self) -> dict[str, Any]:
        """What ``metrics.json`` records (``feature_cache``): the first layer trained, its input's shape and the
        features' key (a resumed run checks that its frozen layers and data are those it started with)."""
        return {"trains_from": self.top.layers[0].name, "input_shape": list(self.data.input_shape), "key": self.key}


def frozen_prefix(
    spec: RunSpec, registry: Registry, ops: Any, data: Dataset, cache: FeatureCache
) -> tuple[FrozenPrefix | None, str]:
    """``spec`` split at its frozen prefix with the prefix's output from ``cache``, or ``(None, why)`` when it
    has none that can be cached (random crops and unlabeled Hebbian data need the images themselves) or the
    features are over the cache's budget; ``(None, "")`` when no bottom layer stays fixed."""
    cut = frozen_prefix_cut(spec)
    if not cut:
        return None, ""
    if spec.sgd.crop_padding and "sgd" in spec.phases:
        return None, "random crops (sgd.crop_padding) need the images themselves"
    if spec.hebbian.data != "train" and "hebbian" in spec.phases:
        return None, "the Hebbian phase learns from the unlabeled images, which are not cached"
    whole = Network(spec, data.input_shape, data.n_classes, ops, registry)
    if spec.init_weights:
        whole.load_npz(spec.init_weights)
    key = f"{spec.data!r} seed={spec.seed} {dataset_fingerprint(data)}"  # sources split and draw by the seed
    feats = cache.features(whole, cut, data, key, mirrored=spec.sgd.hflip and "sgd" in spec.phases)
    if feats is None:
        return None, cache.too_large
    names = {n.name for n in whole.nodes[:cut]}
    state = {k: v for k, v in whole.state_dict().items() if k.split(".", 1)[0] in names}
    # the layers above start from the whole network's initial weights (its draws, its init_weights), as they would
    top = dataclasses.replace(spec, layers=spec.layers[cut:], init_weights="")
    return FrozenPrefix(whole, top, feats, state, FeatureCache.layer_keys(whole, cut, key)[-1]), ""
