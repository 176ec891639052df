"""Run specs: TOML read into frozen dataclasses, with every problem reported at once.

A spec names a data source, the layer graph, the Hebbian settings of each
Hebbian layer and the two training phases. Example (see ``hebbcore/examples``)::

    name = "tiny"
    seed = 0

    [data]
    source = "synthetic"

    [hebbian]            # the Hebbian phase
    epochs = 1
    batch_size = 32

    [sgd]                # the SGD phase (torch autograd), skipped when epochs = 0
    epochs = 0

    [[layers]]
    name = "conv1"
    type = "conv"
    out_channels = 16
    kernel_size = 5
    train = "hebbian"    # hebbian | sgd | frozen | random
    [layers.hebbian]
    rule = "wta"         # any registered rule
    aggregation = "weighted_mean"
    lr = 0.1
    [layers.hebbian.options]   # the rule's own options

Unknown keys, wrong types and unknown plugin names are collected with their
key path and a did-you-mean, and raised together as one
:class:`hebbcore.errors.SpecError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import HebbcoreError, SpecError
from .layers import WeightLayer
from .plugin_manager import Registry, did_you_mean
from .settings import convert, describe, parse_options, parse_table
from .specfile import apply_setting, dumps_toml, read_spec_table, resolve_paths, toml_table

__all__ = [  # dumps_toml and resolve_paths: re-exported, the spec's public API
    "RunSpec",
    "LayerSpec",
    "HebbianLayerSpec",
    "DataSpec",
    "TransformSpec",
    "HebbianPhaseSpec",
    "SgdPhaseSpec",
    "parse_spec",
    "load_spec",
    "loads_spec",
    "spec_to_table",
    "dumps_toml",
    "resolve_paths",
    "parse_options",
    "check_path_name",
    "check_against_data",
]


@dataclass(frozen=True)
class HebbianLayerSpec:
    """How one Hebbian layer learns: ``rule``, ``aggregation``, learning rate and the rule's options."""

    rule: str = "wta"
    aggregation: str = ""  # "": the rule's own (LearningRule.aggregation), filled in by the loader
    lr: float = 0.1
    options: Any = None  # the rule's Options dataclass, resolved by the loader


@dataclass(frozen=True)
class LayerSpec:
    """One node of the (sequential) layer graph.

    ``options`` holds the layer type's own keys (its :attr:`hebbcore.layers.Layer.Options`), written flat in
    the ``[[layers]]`` table beside ``type``, ``name``, ``train`` and ``hebbian``. ``train``: for a layer with
    weights ``hebbian`` (the default when ``[layers.hebbian]`` is given), ``sgd`` (the default otherwise),
    ``frozen`` (keeps ``init_weights``) or ``random`` (keeps its random initial weights).
    """

    type: str
    name: str = ""
    train: str = ""
    hebbian: HebbianLayerSpec | None = None
    options: Any = None
    #: The registered :class:`hebbcore.layers.Layer` class of ``type``, filled in by the loader.
    layer_cls: Any = field(default=None, repr=False, compare=False)

    @property
    def trainable(self) -> bool:
        """True for a layer with weights (a :class:`hebbcore.layers.WeightLayer`)."""
        return isinstance(self.layer_cls, type) and issubclass(self.layer_cls, WeightLayer)


@dataclass(frozen=True)
class TransformSpec:
    name: str
    options: Any = None


@dataclass(frozen=True)
class DataSpec:
    source: str = "synthetic"
    options: Any = None  # the source's Options dataclass, resolved by the loader
    transforms: tuple[TransformSpec, ...] = ()


#: A data split an epoch's record can measure.
SplitName = Literal["train", "val", "test"]


def epoch_splits(evaluate: tuple[SplitName, ...], has_val: bool) -> frozenset[str]:
    """The splits an epoch's record measures: ``evaluate``, with train added when there is no val split to
    rank epochs by."""
    return frozenset(evaluate) | ({"train"} if "val" in evaluate and not has_val else set())


@dataclass(frozen=True)
class HebbianPhaseSpec:
    """The Hebbian phase: every Hebbian layer learns at once, bottom-up, for ``epochs`` epochs."""

    epochs: int = 1
    batch_size: int = 64
    check_every: int = 50  # batches between NaN/inf checks of the weights
    train_acc_images: int = 0  # train accuracy on the first N training images (0: all), each epoch and, for the
    # last phase run, the final one
    evaluate: tuple[SplitName, ...] = ("val",)  # splits measured after each epoch (train too when there is no val
    # split: keep_best and the progress line rank by it); the final record measures all three
    data: Literal["train", "unlabeled"] = "train"  # the images it learns from (unlabeled: the source's extra ones)


@dataclass(frozen=True)
class SgdPhaseSpec:
    """The SGD phase (torch autograd) of the ``sgd`` layers, after the Hebbian phase.

    ``optimizer`` is ``"sgd"`` (``momentum``, ``nesterov``) or ``"adam"`` (torch's
    Adam; ``momentum`` and ``nesterov`` unused); ``weight_decay`` is an L2 term for both.
    The learning rate is ``lr`` for ``lr_decay_after`` epochs, then multiplied
    by ``lr_decay`` each epoch; with ``lr_milestones`` instead it is multiplied by
    ``lr_decay`` once after each listed epoch (1-based: ``[10]`` gives epoch 11
    ``lr·lr_decay``). With ``keep_best`` the weights of the epoch with the best
    validation accuracy are kept. With ``hflip`` each training image is mirrored
    left-right with probability 1/2, drawn anew each epoch (data augmentation;
    the inputs must be images, or features a feature cache computed for both
    the images and their mirror images).
    """

    epochs: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    lr_decay_after: int = 10
    lr_decay: float = 0.5
    lr_milestones: tuple[int, ...] = ()  # decay once after each of these epochs (replaces lr_decay_after)
    optimizer: Literal["sgd", "adam"] = "sgd"
    keep_best: bool = True
    train_acc_images: int = 0  # train accuracy on the first N training images (0: all), each epoch and, for the
    # last phase run, the final one
    evaluate: tuple[SplitName, ...] = ("val",)  # splits measured after each epoch (train too when there is no val
    # split: keep_best and the progress line rank by it); the final record measures all three
    hflip: bool = False  # mirror each training image left-right with probability 1/2, per epoch
    crop_padding: int = 0  # random crop: pad by this many zeros, take a random crop of the image's size, per epoch
    labels_per_class: int = 0  # label-scarce probe: train on this many labelled images per class (0: all)
    label_fraction: float = 0.0  # or on this fraction of each class (0: all); drawn by seed, recorded

    def lr_at(self, epoch: int) -> float:
        """The learning rate of 1-based ``epoch``."""
        if self.lr_milestones:
            return self.lr * self.lr_decay ** sum(1 for m in self.lr_milestones if m < epoch)
        return self.lr * self.lr_decay ** max(0, epoch - self.lr_decay_after)


@dataclass(frozen=True)
class RunSpec:
    layers: tuple[LayerSpec, ...]
    name: str = "run"
    seed: int = 0
    init_weights: str = ""  # optional .npz of initial weights, arrays named "<layer>.weight" / "<layer>.bias"
    phases: tuple[Literal["hebbian", "sgd"], ...] = ("hebbian", "sgd")  # order of the training phases
    data: DataSpec = field(default_factory=DataSpec)
    hebbian: HebbianPhaseSpec = field(default_factory=HebbianPhaseSpec)
    sgd: SgdPhaseSpec = field(default_factory=SgdPhaseSpec)

    @property
    def hebbian_epochs_measure(self) -> bool:
        """Whether a Hebbian epoch measures accuracies: not when the output layer is an SGD layer that a later
        phase trains (an untrained classifier's accuracies are not worth a pass over the splits)."""
        out = self.layers[-1] if self.layers else None
        trained_later = "sgd" in self.phases and self.sgd.epochs > 0
        return not (out is not None and out.trainable and out.train == "sgd" and trained_later)

    @property
    def measured_epochs(self) -> int:
        """The epochs whose records hold accuracies (a tuning trial reports each to its pruner); a phase with no
        layer to train does not run."""
        trains = {layer.train for layer in self.layers if layer.trainable}
        hebbian = "hebbian" in self.phases and "hebbian" in trains and self.hebbian_epochs_measure
        sgd = "sgd" in self.phases and "sgd" in trains
        return (self.hebbian.epochs if hebbian else 0) + (self.sgd.epochs if sgd else 0)


# ---------------------------------------------------------------------------- the run spec


def parse_spec(table: dict, registry: Registry, source: str = "spec", against_data: bool = False) -> RunSpec:
    """Validate a spec table against the schema and the registered plugins.

    ``against_data``: also run :func:`check_against_data` (the data source's options, the
    layers' shapes, the rules' options on them, the memory needed), as ``hebbcore validate``
    and ``hebbcore run`` do; off for a spec whose layers will get other data
    (``runner.run(dataset=...)``)."""
    problems: list[str] = []
    raw_layers = table.get("layers")
    top = dict(table)
    top.pop("layers", None)
    layers: list[LayerSpec] = []
    if not isinstance(raw_layers, list) or not raw_layers:
        problems.append("layers: expected at least one [[layers]] table")
        raw_layers = []
    for i, raw in enumerate(raw_layers):
        layer = _parse_layer(raw, i, registry, problems)
        if layer is not None:
            layers.append(layer)
    data_raw = top.pop("data", {})
    spec = parse_table(RunSpec, {**top, "layers": []}, "", problems)
    data = _parse_data(data_raw, registry, problems)
    names = [l.name for l in layers]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"layers: name {dup!r} is used by more than one layer")
    _check_last_layer(layers, problems)
    if spec is not None:
        for phase in ("hebbian", "sgd"):
            if getattr(spec, phase).epochs < 0:
                problems.append(f"{phase}.epochs: expected >= 0, got {getattr(spec, phase).epochs}")
        if spec.hebbian.check_every < 0:
            problems.append(
                f"hebbian.check_every: expected >= 0 (0: only at epoch ends), got {spec.hebbian.check_every}"
            )
        for phase in ("hebbian", "sgd"):
            if getattr(spec, phase).batch_size < 1:
                problems.append(f"{phase}.batch_size: expected >= 1, got {getattr(spec, phase).batch_size}")
            if getattr(spec, phase).train_acc_images < 0:
                problems.append(
                    f"{phase}.train_acc_images: expected >= 0 (0: every training image), "
                    f"got {getattr(spec, phase).train_acc_images}"
                )
        sgd_runs = "sgd" in spec.phases and spec.sgd.epochs > 0
        if sgd_runs and spec.sgd.keep_best and "val" not in spec.sgd.evaluate:
            problems.append(
                f"sgd.evaluate: keep_best ranks the epochs by their val accuracy (train without a val split); add "
                f"'val' to {list(spec.sgd.evaluate)} or set sgd.keep_best = false"
            )
        _check_sgd_schedule(spec.sgd, top.get("sgd"), problems)
        if spec.init_weights and not Path(spec.init_weights).is_file():
            problems.append(f"init_weights: file {spec.init_weights!r} does not exist")
        if not 0 <= spec.seed < 2**63:
            problems.append(f"seed: expected 0 <= seed < 2**63, got {spec.seed}")
        problems += [f"name: {p}" for p in check_path_name(spec.name)]
    complete = spec is not None and len(layers) == len(raw_layers) and data.options is not None
    if complete:
        assert spec is not None
        spec = dataclasses.replace(spec, layers=_statistics_default(tuple(layers), spec), data=data)
        if against_data:  # even after other problems, so that every problem is reported at once
            problems += check_against_data(spec, registry)
    if problems or spec is None:
        raise SpecError(problems, source)
    return spec


#: Longest run name: it names a folder, and file systems refuse names over 255 bytes.
MAX_NAME = 100


def check_path_name(name: str) -> list[str]:
    """Problems with ``name`` as one folder name (a run's or an experiment's): [] when it is one."""
    if not name or name in (".", "..") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name):
        return [f"expected a single folder name (no '/', '\\', control characters, '.' or '..'), got {name!r}"]
    if len(name) > MAX_NAME or len(name.encode("utf-8")) > 255:
        return [f"expected at most {MAX_NAME} characters, got {len(name)}"]
    return []


def check_against_data(spec: RunSpec, registry: Registry) -> list[str]:
    """The checks that need the data's shapes: source options, layer shapes, rule options, memory.

    Run at load time, so ``hebbcore validate`` refuses what ``hebbcore run`` would.
    """
    from .interfaces import LayerInfo
    from .network import build_layers
    from .resources import memory_problem, run_memory

    source_cls = registry.tables["dataset"][spec.data.source]
    problems = [f"data.options.{p}" for p in source_cls.check(spec.data.options)]
    if problems:
        return problems
    problems = [f"data: {p}" for p in source_cls.check_files(spec.data.options)]  # the shapes need no files
    try:
        info = source_cls.describe(spec.data.options)
    except HebbcoreError as exc:
        return [*problems, f"data: {exc}"]
    if info is None:
        return problems
    if spec.hebbian.data == "unlabeled":
        if not info.n_unlabeled:
            problems.append(f"hebbian.data: 'unlabeled', but the {spec.data.source!r} source gives no unlabeled images "
                            f"with these options")  # fmt: skip
        for i, layer in enumerate(spec.layers):
            rule_cls = registry.tables["rule"].get(layer.hebbian.rule) if layer.hebbian is not None else None
            if layer.train == "hebbian" and rule_cls is not None and rule_cls.needs_labels:
                problems.append(f"layers[{i}] ({layer.name}).hebbian.rule: {rule_cls.name!r} needs labels, but "
                                f"hebbian.data = 'unlabeled'")  # fmt: skip
    try:
        built = build_layers(spec.layers, info.input_shape)
    except SpecError as exc:
        return [*problems, *exc.problems]
    for i, (layer, lay) in enumerate(zip(spec.layers, built, strict=True)):
        if isinstance(lay, WeightLayer) and layer.train == "hebbian" and layer.hebbian is not None:
            rule_cls = registry.tables["rule"].get(layer.hebbian.rule)
            if rule_cls is not None and layer.hebbian.options is not None:
                response = "cosine" if lay.cosine else "linear"
                about = LayerInfo(layer.name, lay.kind, lay.out_shape[0], info.n_classes, lay.fan_in, response)
                problems += [
                    f"layers[{i}] ({layer.name}).hebbian.{p}" for p in rule_cls.check(layer.hebbian.options, about)
                ]
    sgd_batch = spec.sgd.batch_size if "sgd" in spec.phases and spec.sgd.epochs else 0
    memory = memory_problem(run_memory(built, info.n_samples, info.input_shape, spec.hebbian.batch_size, sgd_batch))
    if memory:
        problems.append(memory)
    return problems


def _check_sgd_schedule(sgd: SgdPhaseSpec, raw: Any, problems: list[str]) -> None:
    if sgd.crop_padding < 0:
        problems.append(f"sgd.crop_padding: expected >= 0, got {sgd.crop_padding}")
    if sgd.labels_per_class < 0:
        problems.append(f"sgd.labels_per_class: expected >= 1 (0: every label), got {sgd.labels_per_class}")
    if not 0 <= sgd.label_fraction <= 1:
        problems.append(
            f"sgd.label_fraction: expected 0 < label_fraction <= 1 (0: every label), got {sgd.label_fraction}"
        )
    if sgd.labels_per_class and sgd.label_fraction:
        problems.append("sgd.labels_per_class / sgd.label_fraction: give one of the two")
    for key, ok, expected in (
        ("lr", sgd.lr > 0, "> 0"),
        ("momentum", 0 <= sgd.momentum < 1, "0 <= momentum < 1"),
        ("weight_decay", sgd.weight_decay >= 0, ">= 0"),
        ("lr_decay", 0 < sgd.lr_decay <= 1, "0 < lr_decay <= 1"),
        ("lr_decay_after", sgd.lr_decay_after >= 0, ">= 0"),
    ):
        if not ok:
            problems.append(f"sgd.{key}: expected {expected}, got {getattr(sgd, key)}")
    ms = sgd.lr_milestones
    if ms:
        if any(m < 1 for m in ms) or any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            problems.append(f"sgd.lr_milestones: expected increasing epochs >= 1, got {list(ms)}")
        if isinstance(raw, dict) and "lr_decay_after" in raw:
            problems.append("sgd.lr_decay_after: not used with sgd.lr_milestones (give one of the two)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Keys every layer table may have besides its type's options (``train`` and ``hebbian`` where they apply).
_LAYER_KEYS = ("type", "name", "train", "hebbian")


def _parse_layer(raw: Any, i: int, registry: Registry, problems: list[str]) -> LayerSpec | None:
    path = f"layers[{i}]"
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a table, got {describe(raw)}")
        return None
    types_ = registry.tables["layer"]
    ltype = raw.get("type")
    if not isinstance(ltype, str) or ltype not in types_:
        problems.append(
            f"{path}.type: expected one of {', '.join(types_)}, got {ltype!r}"
            f"{did_you_mean(ltype, types_) if isinstance(ltype, str) else ''}"
        )
        return None
    cls = types_[ltype]
    reserved = sorted(set(_LAYER_KEYS) & {f.name for f in dataclasses.fields(cls.Options)})
    if reserved:
        problems.append(f"{path}.type: layer type {ltype!r} declares option(s) {reserved}, which are the layer "
                        f"table's own keys; the plugin must rename them")  # fmt: skip
        return None
    name = raw.get("name", "")
    shown = f"{path} ({name})" if "name" in raw else path
    before = len(problems)
    fields = [f.name for f in dataclasses.fields(cls.Options)]
    weights = issubclass(cls, WeightLayer)
    own = ("type", "name") + (("train",) if cls.train_modes else ()) + (("hebbian",) if weights else ())
    any_layer = set(_LAYER_KEYS).union(*({f.name for f in dataclasses.fields(c.Options)} for c in types_.values()))
    for key in raw:
        if key in own or key in fields:
            continue
        known = f" for a {ltype!r} layer" if key in any_layer else did_you_mean(key, [*own, *fields])
        problems.append(f"{shown}.{key}: unknown key{known}")
    name = convert(str, name, f"{shown}.name", problems) or ""
    train = ""
    if "train" in own and "train" in raw:
        train = convert(str, raw["train"], f"{shown}.train", problems) or ""
    options = parse_table(cls.Options, {k: v for k, v in raw.items() if k in fields}, shown, problems)
    for req in cls.required:
        if req not in raw:
            problems.append(f"{shown}.{req}: missing (a {ltype!r} layer needs it)")
        elif options is not None and _number(getattr(options, req)) and getattr(options, req) < 1 and \
                getattr(options, req) == raw[req]:  # a count below 1, not a stand-in default  # fmt: skip
            problems.append(f"{shown}.{req}: expected >= 1, got {getattr(options, req)}")
    if options is not None:
        problems += [f"{shown}.{p}" for p in cls.check(options)]
    heb_raw = raw.get("hebbian") if weights else None
    hebbian = _parse_hebbian(heb_raw, f"{shown}.hebbian", registry, problems) if heb_raw is not None else None
    if options is None or len(problems) > before:
        return None
    if weights:
        train = train or ("hebbian" if heb_raw is not None else "sgd")
        if train not in cls.train_modes:
            problems.append(
                f"{shown}.train: expected one of {', '.join(cls.train_modes)}, got {train!r}"
                f"{did_you_mean(train, cls.train_modes)}"
            )
        if train == "hebbian" and hebbian is None:
            hebbian = _parse_hebbian({}, f"{shown}.hebbian", registry, problems)
    elif train and train not in cls.train_modes:
        problems.append(
            f"{shown}.train: a {ltype} layer's train is one of {', '.join(map(repr, cls.train_modes))}, got {train!r}"
        )
    if train in cls.train_modes:
        train = cls.train_modes[cls.train_modes.index(train)]  # the mode's own object, as for a Literal option
    return LayerSpec(ltype, name or f"{ltype}{i + 1}", train, hebbian, options, cls)


def _parse_hebbian(raw: Any, path: str, registry: Registry, problems: list[str]) -> HebbianLayerSpec | None:
    raw = dict(raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a table, got {describe(raw)}")
        return None
    options_raw = raw.pop("options", None)
    spec = parse_table(HebbianLayerSpec, raw, path, problems)
    if spec is None:
        return None
    if spec.lr <= 0:
        problems.append(f"{path}.lr: expected > 0, got {spec.lr}")
    rule_cls = registry.tables["rule"].get(spec.rule)
    if rule_cls is None:
        problems.append(
            f"{path}.rule: unknown rule {spec.rule!r}{did_you_mean(spec.rule, registry.tables['rule'])}; "
            f"known: {', '.join(registry.names('rule'))}"
        )
    else:
        spec = dataclasses.replace(spec, aggregation=spec.aggregation or rule_cls.aggregation)
    agg_cls = registry.tables["aggregation"].get(spec.aggregation)
    if agg_cls is None and spec.aggregation:
        problems.append(
            f"{path}.aggregation: unknown aggregation {spec.aggregation!r}"
            f"{did_you_mean(spec.aggregation, registry.tables['aggregation'])}; "
            f"known: {', '.join(registry.names('aggregation'))}"
        )
    if rule_cls is None:
        return spec
    if agg_cls is not None:
        problems += [f"{path}.aggregation: {p}" for p in agg_cls.check(rule_cls)]
        if rule_cls.aggregation_only and spec.aggregation != rule_cls.aggregation:
            problems.append(f"{path}.aggregation: rule {rule_cls.name!r} means aggregation = "
                            f"{rule_cls.aggregation!r} only, got {spec.aggregation!r}")  # fmt: skip
    options = parse_options(rule_cls.Options, options_raw, f"{path}.options", problems)
    return dataclasses.replace(spec, options=options)


def _parse_data(raw: Any, registry: Registry, problems: list[str]) -> DataSpec:
    if not isinstance(raw, dict):
        problems.append(f"data: expected a table, got {describe(raw)}")
        return DataSpec()
    raw = dict(raw)
    options_raw = raw.pop("options", None)
    transforms_raw = raw.pop("transforms", [])
    spec = parse_table(DataSpec, raw, "data", problems) or DataSpec()
    source_cls = registry.tables["dataset"].get(spec.source)
    options = None
    if source_cls is None:
        problems.append(
            f"data.source: unknown data source {spec.source!r}"
            f"{did_you_mean(spec.source, registry.tables['dataset'])}; "
            f"known: {', '.join(registry.names('dataset'))}"
        )
    else:
        options = parse_options(source_cls.Options, options_raw, "data.options", problems)
    transforms = []
    if not isinstance(transforms_raw, list):
        problems.append("data.transforms: expected an array of tables ([[data.transforms]])")
        transforms_raw = []
    for i, t in enumerate(transforms_raw):
        path = f"data.transforms[{i}]"
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            problems.append(f"{path}: expected a table with a string 'name'")
            continue
        t = dict(t)
        name = t.pop("name")
        t_opts = t.pop("options", None)
        for key in t:
            problems.append(f"{path}.{key}: unknown key (a transform takes 'name' and 'options')")
        t_cls = registry.tables["transform"].get(name)
        if t_cls is None:
            problems.append(
                f"{path}.name: unknown transform {name!r}{did_you_mean(name, registry.tables['transform'])}; "
                f"known: {', '.join(registry.names('transform')) or '(none)'}"
            )
            continue
        transforms.append(TransformSpec(name, parse_options(t_cls.Options, t_opts, f"{path}.options", problems)))
    return DataSpec(source=spec.source, options=options, transforms=tuple(transforms))


def _statistics_default(layers: tuple[LayerSpec, ...], spec: RunSpec) -> tuple[LayerSpec, ...]:
    """A batch norm left without ``train`` whose nearest layer with weights below is the last Hebbian one, with an
    SGD layer above, trains with the SGD phase it feeds (in a spec with both phases): the Hebbian phase never runs
    it, so it would otherwise stay the identity in both. Elsewhere it follows the layer with weights below it."""
    hebbian_phase = "hebbian" in spec.phases and spec.hebbian.epochs > 0
    sgd_phase = "sgd" in spec.phases and spec.sgd.epochs > 0
    hebbian = [i for i, l in enumerate(layers) if l.trainable and l.train == "hebbian"]
    if not (hebbian_phase and sgd_phase and hebbian):
        return layers
    out = list(layers)
    for i in range(hebbian[-1] + 1, len(layers)):
        layer = layers[i]
        below = [l for l in layers[:i] if l.trainable]
        above_sgd = any(l.trainable and l.train == "sgd" for l in layers[i + 1 :])
        if layer.layer_cls.running_stats and not layer.train and below[-1].train == "hebbian" and above_sgd:
            out[i] = dataclasses.replace(layer, train="sgd")
    return tuple(out)


def _check_last_layer(layers: list[LayerSpec], problems: list[str]) -> None:
    trainable = [l for l in layers if l.trainable]
    if layers and not trainable:
        problems.append("layers: the graph has no layer with weights (conv, linear or a plugin's)")


def load_spec(
    path: str | Path, registry: Registry, against_data: bool = True, overrides: Sequence[str] = ()
) -> RunSpec:
    """Read and validate a TOML spec file; :class:`SpecError` names the file and every problem.

    ``extends = "base.toml"`` (relative to the file) deep-merges the file onto its base, recursively;
    ``overrides`` are ``"key.path=value"`` settings applied last (``hebbcore run --set``), a layer named
    by its name (``layers.conv1.hebbian.lr=0.05``). Checks it against its data source too (see
    :func:`parse_spec`)."""
    path = Path(path)
    table, chain = read_spec_table(path)
    source = " extends ".join(map(str, chain))
    problems: list[str] = []
    for setting in overrides:
        problems += apply_setting(table, setting)
    if problems:
        raise SpecError(problems, source)
    if overrides:  # a path given on the command line is relative to the current folder (the file's are resolved)
        table = resolve_paths(table, Path.cwd())
    return _parse_guarded(table, registry, source, against_data)


def loads_spec(text: str, registry: Registry, source: str = "spec", against_data: bool = False) -> RunSpec:
    """Validate a spec given as TOML text (paths in it stay as written); see :func:`load_spec` for files."""
    return _parse_guarded(toml_table(text, source), registry, source, against_data)


def _parse_guarded(table: dict, registry: Registry, source: str, against_data: bool) -> RunSpec:
    try:
        return parse_spec(table, registry, source, against_data)
    except RecursionError:
        raise SpecError(["arrays or tables nested too deeply"], source) from None


# ---------------------------------------------------------------------------- writing specs back


def spec_to_table(spec: RunSpec) -> dict:
    """The resolved spec as a plain TOML-ready table (every default filled in); loads back to ``spec``."""
    table = _strip_none(dataclasses.asdict(dataclasses.replace(spec, layers=())))
    table["layers"] = [_layer_table(layer) for layer in spec.layers]
    sgd = table["sgd"]  # one of the two schedules, as parse_spec demands
    sgd.pop("lr_decay_after" if sgd["lr_milestones"] else "lr_milestones")
    return table


def _layer_table(layer: LayerSpec) -> dict:
    """A layer's table as a spec writes it: its type's options flat beside ``type`` and ``name``."""
    table = {"type": layer.type, "name": layer.name}
    if layer.train:
        table["train"] = layer.train
    table.update(_strip_none(dataclasses.asdict(layer.options)))
    if layer.hebbian is not None:
        table["hebbian"] = _strip_none(dataclasses.asdict(layer.hebbian))
    return table


def _strip_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _strip_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [_strip_none(v) for v in obj]
    return obj
