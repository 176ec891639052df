"""The layer graph: shapes, parameters, the forward pass and the Hebbian step on any backend.

A :class:`Network` is a sequence of layers built from a spec's ``[[layers]]``, each a registered
:class:`hebbcore.layers.Layer`. Layers with weights (:class:`hebbcore.layers.WeightLayer`: conv, linear, or a
plugin's) carry a training mode:

- ``hebbian``: learns with its rule during the Hebbian phase; responds with the
  cosine similarity of kernel and input patch, clamped at 0 (no bias);
- ``sgd``: learns by backpropagation (torch autograd) in the SGD phase;
- ``frozen``: keeps the weights it was given (``init_weights``);
- ``random``: keeps its random initial weights.

Parameters live on the backend during training; :meth:`Network.state_dict`
returns host copies named ``"<layer>.<param>"`` (``weight``, ``bias``,
``running_mean``, ``running_var``), the names used in ``weights.npz``.
"""

from __future__ import annotations

import difflib
import functools
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DataError, HebbcoreError, SpecError, TrainingDiverged
from .interfaces import HebbianContext, KernelTerms, LayerInfo, check_hflip_inputs
from .io import read_npz
from .layers import ForwardContext, Layer, LayerShapeError, WeightLayer
from .ops import Array, Ops, inference_batch
from .plugin_manager import Registry
from .spec import LayerSpec, RunSpec
from .step import hebbian_terms

_INFERENCE = ForwardContext()


@dataclass
class Node:
    """One layer: its spec, its :class:`hebbcore.layers.Layer`, its parameters and (Hebbian layers) its rule."""

    spec: LayerSpec
    layer: Layer
    params: dict[str, Any] = field(default_factory=dict)
    rule: Any = None
    aggregation: Any = None
    #: The rule's state (``LearningRule.init_state``), advanced by every Hebbian step and checkpointed.
    rule_state: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def mode(self) -> str:
        return self.spec.train

    @property
    def in_shape(self) -> tuple[int, ...]:
        return self.layer.in_shape

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.layer.out_shape

    @property
    def cosine(self) -> bool:
        """True when the layer responds with clamped cosine similarity (Hebbian layers)."""
        return isinstance(self.layer, WeightLayer) and self.layer.cosine

    @property
    def stride(self) -> int:
        return int(getattr(self.layer, "stride", 1))


def build_layers(layers: Sequence[LayerSpec], input_shape: tuple[int, ...]) -> list[Layer]:
    """The :class:`hebbcore.layers.Layer` of each spec, bottom-up (each knows its in and out shapes);
    :class:`SpecError` naming the first layer whose input does not fit."""
    built: list[Layer] = []
    shape = tuple(input_shape)
    for i, l in enumerate(layers):
        try:
            layer = l.layer_cls(l.options, shape, l.train, built[-1] if built else None)
        except LayerShapeError as exc:
            raise SpecError([f"layers[{i}] ({l.name}): {exc}"]) from None
        built.append(layer)
        shape = layer.out_shape
    return built


class Network:
    """The layer graph of a spec on one backend."""

    def __init__(
        self,
        spec: RunSpec,
        input_shape: tuple[int, ...],
        n_classes: int,
        ops: Ops,
        registry: Registry,
        source: str = "spec",
    ):
        """``source``: the spec file's name, for errors."""
        self.spec, self.ops, self.n_classes = spec, ops, n_classes
        rng = np.random.default_rng(spec.seed)
        self.nodes: list[Node] = []
        problems: list[str] = []
        for i, (lspec, layer) in enumerate(zip(spec.layers, build_layers(spec.layers, input_shape), strict=True)):
            node = Node(lspec, layer, dict(layer.init_params(ops, rng)))
            if isinstance(layer, WeightLayer) and lspec.train == "hebbian":
                h = lspec.hebbian
                assert h is not None  # the loader fills it in for every Hebbian layer
                rule_cls = registry.get("rule", h.rule)
                response = "cosine" if layer.cosine else "linear"
                info = LayerInfo(lspec.name, layer.kind, layer.n_kernels, n_classes, layer.fan_in, response)
                for p in rule_cls.check(h.options, info):
                    problems.append(f"layers[{i}] ({lspec.name}).hebbian.{p}")
                node.rule = rule_cls(h.options, info) if not problems else None
                node.aggregation = registry.get("aggregation", h.aggregation or rule_cls.aggregation)()
                if node.rule is not None:
                    node.rule_state = dict(node.rule.init_state(ops))
            self.nodes.append(node)
        if problems:
            raise SpecError(problems, source)
        self.reducer = None  # data-parallel training sets a sum-over-processes function (hebbcore.distributed)
        last_hebbian = [i for i, n in enumerate(self.nodes) if n.rule is not None]
        self._hebbian_top = last_hebbian[-1] if last_hebbian else -1

    # ------------------------------------------------------------------ parameters
    def state_dict(self) -> dict[str, np.ndarray]:
        return {f"{n.name}.{k}": self.ops.to_numpy(v) for n in self.nodes for k, v in n.params.items()}

    def load_state_dict(
        self, arrays: dict[str, np.ndarray], source: str = "weights", strict: bool = False
    ) -> list[str]:
        """Copy arrays named ``"<layer>.<param>"`` in; returns the names loaded. Shapes must match.

        ``strict``: every array must name a parameter and every parameter must be given.
        """
        loaded = []
        known = {f"{n.name}.{k}": (n, k) for n in self.nodes for k in n.params}
        if strict:
            missing = sorted(set(known) - set(arrays))
            if missing:
                raise DataError(f"{source}: no array for parameter(s) {', '.join(missing)}")
        for key, value in arrays.items():
            if key not in known:
                if strict:
                    raise DataError(f"{source}: array {key!r} matches no parameter of the network")
                continue
            node, k = known[key]
            want = tuple(node.params[k].shape)
            if tuple(value.shape) != want:
                raise DataError(f"{source}: array {key!r} has shape {tuple(value.shape)}, the layer needs {want}")
            node.params[k] = self.ops.asarray(value)
            loaded.append(key)
        return loaded

    def rule_state_dict(self) -> dict[str, dict[str, np.ndarray]]:
        """Each Hebbian layer's rule state as host arrays: ``{layer: {name: array}}``."""
        return {n.name: {k: self.ops.to_numpy(v) for k, v in n.rule_state.items()} for n in self.hebbian_nodes}

    def load_rule_state(self, states: dict[str, dict[str, np.ndarray]], source: str = "checkpoint") -> None:
        """Restore :meth:`rule_state_dict`; every layer's declared state must be there, with its shapes."""
        for n in self.hebbian_nodes:
            saved = states.get(n.name, {})
            if set(saved) != set(n.rule_state):
                raise DataError(
                    f"{source}: layer {n.name!r}'s rule {n.rule.name!r} has state "
                    f"{sorted(n.rule_state)}, the checkpoint has {sorted(saved)}"
                )
            for k, v in saved.items():
                want = tuple(n.rule_state[k].shape)
                if tuple(np.shape(v)) != want:
                    raise DataError(
                        f"{source}: rule state {n.name}.{k} has shape {tuple(np.shape(v))}, expected {want}"
                    )
            n.rule_state = {k: self.ops.asarray(v, dtype=str(np.asarray(v).dtype)) for k, v in saved.items()}

    def load_npz(self, path: str) -> list[str]:
        """Load the arrays of ``path`` that name a parameter (others, e.g. of layers this network lacks, are
        left out); refuses a file none of whose arrays names one."""
        arrays = read_npz(path, "init_weights")
        loaded = self.load_state_dict(arrays, source=f"init_weights {path!r}")
        if not loaded:
            known = [f"{n.name}.{k}" for n in self.nodes for k in n.params]
            first = next(iter(arrays), "")
            close = difflib.get_close_matches(first, known, n=1)
            hint = f" (did you mean {close[0]!r} for {first!r}?)" if close else ""
            raise DataError(
                f"init_weights {path!r}: none of its arrays ({', '.join(sorted(arrays)) or 'none'}) names a "
                f"parameter of this network, which has {', '.join(known)}{hint}"
            )
        return loaded

    @property
    def is_classifier(self) -> bool:
        """True when the output is one score per class (accuracies are then defined)."""
        return tuple(self.nodes[-1].out_shape) == (self.n_classes,)

    @property
    def hebbian_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.rule is not None]

    @property
    def sgd_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.spec.trainable and n.mode == "sgd"]

    # ------------------------------------------------------------------ forward
    def similarity(self, node: Node, x: Array) -> tuple[Array, Array]:
        """``(dot, cosine)`` of a Hebbian layer's kernels with every input patch."""
        dot = self.dot_of(node, x)
        return dot, self.cosine_of(node, x, dot)

    def dot_of(self, node: Node, x: Array) -> Array:
        """``w_k · x_p`` for every kernel and input patch (a convolution, or a matrix product)."""
        return self._weights(node).dot(self.ops, node.params["weight"], x)

    def cosine_of(self, node: Node, x: Array, dot: Array) -> Array:
        """The cosine similarity from ``dot`` (patch norms by a convolution of ``x²``, kernel norms)."""
        return self._weights(node).similarity(self.ops, node.params["weight"], x, dot)

    @staticmethod
    def _weights(node: Node) -> WeightLayer:
        assert isinstance(node.layer, WeightLayer), node.name
        return node.layer

    def layer_forward(self, node: Node, x: Array, batch_stats: bool) -> Array:
        ctx = ForwardContext(batch_stats, self.reducer) if batch_stats else _INFERENCE
        return node.layer.forward(self.ops, node.params, x, ctx)

    def forward(self, x: Array, upto: int | None = None) -> Array:
        """Inference (batch-norm with running statistics); ``upto``: stop after that many layers."""
        for node in self.nodes[:upto]:
            x = self.layer_forward(node, x, batch_stats=False)
        return x

    def scores(self, x: Array) -> Array:
        """Class scores: the forward pass, except that a cosine (Hebbian) output layer answers its cosine
        similarity unclamped, as the paper's classifier does (``⟨x, w_c⟩/‖w_c‖`` up to a per-sample factor),
        so images whose every score is negative are not all predicted as class 0."""
        last = self.nodes[-1]
        x = self.forward(x, upto=len(self.nodes) - 1)
        if last.spec.trainable and last.cosine:
            return self.similarity(last, x)[1]
        return self.layer_forward(last, x, batch_stats=False)

    def predict(self, x: np.ndarray, batch_size: int | None = None, mirror: bool = False) -> np.ndarray:
        """The argmax of :meth:`scores` for every sample, ``batch_size`` rows at a time (default: the device's
        :func:`hebbcore.ops.inference_batch`). ``mirror``: of the scores of each image ``(N, C, H, W)`` plus
        those of its left-right mirror image (test-time augmentation)."""
        if mirror:
            check_hflip_inputs(tuple(x.shape), "mirror-averaged scores (--hflip): the network's inputs")
        out = [
            self.ops.to_numpy(self.ops.argmax(functools.reduce(operator.add, views), 1))  # summed on the device
            for views in self._scores_by_batch(x, image_views(mirror, 0), batch_size)
        ]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def view_scores(self, x: np.ndarray, views: list[View], batch_size: int | None = None) -> np.ndarray:
        """Class scores ``(V, N, classes)`` of each of ``views`` (:func:`image_views`) of each image ``x[n]``
        ``(N, C, H, W)``, ``batch_size`` images at a time; sums of them are test-time augmentation."""
        out = [np.stack([self.ops.to_numpy(s) for s in b]) for b in self._scores_by_batch(x, views, batch_size)]
        if not out:
            return np.zeros((len(views), 0, self.n_classes), dtype=np.float32)
        return np.concatenate(out, axis=1)

    def _scores_by_batch(self, x: np.ndarray, views: list[View], batch_size: int | None) -> Iterator[list[Array]]:
        """For each batch of ``x``, the device scores of each of ``views`` of it."""
        batch_size = batch_size or inference_batch(self.ops.device)
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            yield [self.scores(self.ops.asarray(view_of(xb, v))) for v in views]

    # ------------------------------------------------------------------ the Hebbian step
    def hebbian_step(self, x: Array, labels: Array | None) -> None:
        """One Hebbian step of every Hebbian layer on one batch, bottom-up.

        Each layer sees the output of the layers below (batch-norm with batch
        statistics, running statistics updated; one with ``train = "frozen"``
        keeps its statistics, as at inference) and updates its weights from its
        own response, computed before its update.
        """
        for i, node in enumerate(self.nodes[: self._hebbian_top + 1]):
            if node.rule is None:
                frozen = node.layer.running_stats and node.spec.train == "frozen"
                x = self.layer_forward(node, x, batch_stats=not frozen)
                continue
            ctx = self.hebbian_context(node, x, None, labels)
            self.apply_hebbian(node, ctx)
            if i == self._hebbian_top:
                break  # nothing reads the top Hebbian layer's response: not computed unless the rule read it
            # the response to the weights before the update (ctx keeps them): computed by then if the rule read it
            x = (
                self._weights(node).clamped(self.ops, ctx.similarity)  # nothing reads ctx after this
                if node.cosine
                else self._weights(node).linear_response({**node.params, "weight": ctx.w}, ctx.dot)
            )

    def hebbian_context(
        self, node: Node, x: Array, dot: Array | None, labels: Array | None, cos: Array | None = None
    ) -> HebbianContext:
        """The rule's view of ``node``'s response ``dot`` to ``x``. ``dot`` None: computed on first use.
        ``cos``: the similarity, if computed; else it is computed on first use, with the winners in the same pass
        when the rule asks for those first."""
        layer, w = self._weights(node), node.params["weight"]
        ops = self.ops
        dot_of = functools.cache(functools.partial(layer.dot, ops, w, x)) if dot is None else (lambda: dot)
        similarity = (lambda: layer.similarity(ops, w, x, dot_of())) if cos is None else cos
        return HebbianContext(
            ops, layer.kind, x, w, dot_of if dot is None else dot, similarity, labels, self.n_classes, node.stride,
            reducer=self.reducer,
            similarity_argmax=lambda allowed: layer.similarity_argmax(ops, w, x, dot_of(), allowed),
            dot_shape=(int(x.shape[0]), *node.out_shape),
        )  # fmt: skip

    def hebbian_update(self, node: Node, ctx: HebbianContext) -> Array:
        """Apply the rule and aggregation of ``node`` to its response in ``ctx``; returns the update applied,
        ``η·Δw`` (an array :meth:`apply_hebbian`, which the step calls, does not make)."""
        terms = self.apply_hebbian(node, ctx)
        return float(self._lr(node)) * terms.direction(self.ops, ctx.w)

    def apply_hebbian(self, node: Node, ctx: HebbianContext) -> KernelTerms:
        """Apply the rule and aggregation of ``node`` to its response in ``ctx``: ``w + η·Δw`` in one pass;
        returns ``Δw`` as its terms (the update before the learning rate ``η``)."""
        terms, node.rule_state = hebbian_terms(ctx, node.rule, node.aggregation, node.rule_state)
        # new weights in the sum's layout (channels-last from a torch CPU conv); ctx.w stays the old ones
        node.params["weight"] = terms.applied(self.ops, ctx.w, self._lr(node))
        return terms

    @staticmethod
    def _lr(node: Node) -> float:
        return node.spec.hebbian.lr if node.spec.hebbian is not None else 0.0

    def check_finite(self, step: str) -> None:
        """Raise :class:`TrainingDiverged` naming the first layer whose parameters, their squared norms
        (which overflow before the weights do: the cosine then divides by inf) or rule state hold NaN or inf."""
        ops = self.ops
        for node in self.nodes:
            for k, v in node.params.items():
                if not ops.isfinite_all(v):
                    raise TrainingDiverged(
                        f"layer {node.name!r}: {k} became NaN or inf at {step}; "
                        f"lower its learning rate or check the input data"
                    )
                if k == "weight" and node.cosine and _sq_norm_overflows(ops.to_numpy(v)):
                    raise TrainingDiverged(
                        f"layer {node.name!r}: the norm of its weights overflowed at {step} "
                        f"(max |w| is too large for float32); lower its learning rate"
                    )
            for k, v in node.rule_state.items():
                if not ops.isfinite_all(v):
                    raise TrainingDiverged(
                        f"layer {node.name!r}: rule state {k} became NaN or inf at {step}; "
                        f"lower its learning rate or check the input data"
                    )


def _sq_norm_overflows(w: np.ndarray) -> bool:
    """True when some kernel's squared norm is beyond float32 (computed in float64, so without overflowing)."""
    sq = np.square(w.reshape(len(w), -1), dtype=np.float64).sum(axis=1)
    return bool((sq > np.finfo(np.float32).max).any())


#: One view of an image: ``(mirrored, dy, dx)``, mirrored left-right first, then shifted by ``(dy, dx)`` pixels.
View = tuple[bool, int, int]


def image_views(mirror: bool, shift: int) -> list[View]:
    """The image itself; with ``shift`` > 0 also its four translations by ``shift`` pixels (down, up, right,
    left); with ``mirror`` each of those and its mirror image."""
    offsets = [(0, 0)] + ([(shift, 0), (-shift, 0), (0, shift), (0, -shift)] if shift > 0 else [])
    return [(m, dy, dx) for m in ((False, True) if mirror else (False,)) for dy, dx in offsets]


def view_of(x: np.ndarray, view: View) -> np.ndarray:
    """``view`` of the images ``x`` ``(N, C, H, W)``: a shift moves the content by ``(dy, dx)`` pixels, the
    uncovered border reflected from the image (numpy's ``reflect``: the edge pixel not repeated)."""
    mirrored, dy, dx = view
    if mirrored:
        x = x[..., ::-1]
    if dy or dx:
        h, w = x.shape[-2:]
        py, px = abs(dy), abs(dx)
        if py >= h or px >= w:
            raise HebbcoreError(f"a shift by {max(py, px)} pixels needs images larger than {h}x{w}")
        padded = np.pad(x, ((0, 0), (0, 0), (py, py), (px, px)), mode="reflect")
        x = padded[..., py - dy : py - dy + h, px - dx : px - dx + w]
    return np.ascontiguousarray(x)
