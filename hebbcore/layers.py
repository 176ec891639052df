"""The layer interface: one class per layer type, registered like a rule (``hebbcore_register_layers``).

A layer type owns everything about itself: its options (the keys of its
``[[layers]]`` table besides ``type``, ``name``, ``train`` and ``hebbian``),
their checks, its output shape, its parameters, its forward pass on
:class:`hebbcore.ops.Ops` and its ``torch.nn`` module for the SGD phase. The
core never names a layer type: the built-in ones (the ``layers`` entry point of this distribution)
register through the same hook a third party's do::

    @dataclass(frozen=True)
    class ScaleOptions:
        factor: float = 2.0

    class Scale(Layer):
        name = "scale"
        Options = ScaleOptions

        def forward(self, ops, params, x, ctx):
            return x * self.options.factor

        def torch_module(self):
            ...

    @hookimpl
    def hebbcore_register_layers():
        return [Scale]

A layer with weights that a Hebbian rule can train subclasses :class:`WeightLayer`
(a convolution or a dense layer: the two geometries the rules' sums know).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .interfaces import NoOptions
from .ops import Array, Ops

#: The training modes of a layer with weights.
TRAIN_MODES = ("hebbian", "sgd", "frozen", "random")
#: Added to the product of norms in the cosine similarity (no division by zero for an all-zero patch).
COS_EPS = 1e-8


class LayerShapeError(ValueError):
    """Raised by :meth:`Layer.infer_shape` when the input does not fit; the message says why (one line)."""


@dataclass(frozen=True)
class ForwardContext:
    """What a forward pass may need besides its input.

    ``batch_stats``: normalise with the batch's statistics and update the running ones (the Hebbian phase's
    forward), else use the running statistics (inference). ``reducer``: sums an array over the processes of a
    data-parallel run (None in one process), so statistics can be synchronised.
    """

    batch_stats: bool = False
    reducer: Any = None


class Layer:
    """A layer type. One instance per layer of a network, built once its input shape is known.

    Class attributes a layer type sets:

    - ``name``: what a spec writes in ``type = "..."``.
    - ``Options``: a frozen dataclass whose fields are the layer's own keys; typed fields (``Literal`` enums
      included) are checked by the spec loader, value ranges by :meth:`check`.
    - ``required``: option keys a spec must give.
    - ``train_modes``: what ``train`` may be (``()``: the layer has no ``train`` key).
    - ``fixed``: the output is a fixed function of the input (no parameters, nothing random), so the
      output of a frozen stack below and through it can be computed once and cached.
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    required: ClassVar[tuple[str, ...]] = ()
    train_modes: ClassVar[tuple[str, ...]] = ()
    #: True for layers with weights (a :class:`WeightLayer`): trained by a rule or by SGD, frozen or random.
    trainable: ClassVar[bool] = False
    fixed: ClassVar[bool] = False
    #: Running statistics that the SGD phase trains when the layer below it does (batch norm).
    running_stats: ClassVar[bool] = False

    def __init__(self, options: Any, in_shape: tuple[int, ...], train: str = "", below: Layer | None = None):
        """``in_shape``: one sample's input shape; ``below``: the layer under this one (None for the first).

        Raises :class:`LayerShapeError` when the input does not fit.
        """
        self.options, self.in_shape, self.train = options, tuple(in_shape), train
        self.out_shape: tuple[int, ...] = tuple(self.infer_shape(self.in_shape))

    @classmethod
    def check(cls, options: Any) -> list[str]:
        """Problems with option values, each ``"key: expected ..., got ..."``; called when a spec loads."""
        return []

    def infer_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        """One sample's output shape (default: the input's); raise :class:`LayerShapeError` if it does not fit."""
        return in_shape

    @property
    def nonnegative(self) -> bool:
        """True when every output is >= 0 whatever the input (a ReLU above is then the identity)."""
        return False

    def init_params(self, ops: Ops, rng: np.random.Generator) -> dict[str, Array]:
        """The layer's parameters, named as in ``weights.npz`` after ``"<layer>."`` (default: none)."""
        return {}

    def forward(self, ops: Ops, params: dict[str, Array], x: Array, ctx: ForwardContext) -> Array:
        """The output for a batch ``x`` (``(N, *in_shape)``). May update running statistics in ``params``."""
        raise NotImplementedError

    def torch_module(self) -> Any:
        """An equivalent ``torch.nn.Module`` whose ``state_dict`` names match :meth:`init_params` (import torch
        here, not at module level)."""
        raise NotImplementedError(f"layer type {self.name!r} has no torch module")

    def parameter_count(self) -> int:
        """Number of parameter values (the memory estimate at spec load uses it)."""
        return 0


def _fan_in_bound(fan_in: int) -> float:
    return float(1.0 / np.sqrt(fan_in))


class WeightLayer(Layer):
    """A layer with weights ``w`` that a Hebbian rule can train: a convolution (``kind = "conv"``, weights
    ``(K, C, kh, kw)``) or a dense layer (``kind = "linear"``, ``(K, D)``).

    Options every weight layer has: ``response`` (``"cosine"``: the cosine similarity of kernel and input
    patch clamped at 0, no bias; ``"linear"``: ``w·x + b``; ``"auto"``: cosine iff the layer is Hebbian),
    ``init`` and ``init_scale`` (with ``s = init_scale / sqrt(fan_in)``: ``"uniform"`` in ``[-s, s]`` and a
    bias in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, torch's default when ``init_scale = 1``; ``"normal"``:
    ``N(0, s²)`` and a zero bias). A Hebbian layer has no bias: nothing would train it.
    """

    trainable = True
    train_modes = TRAIN_MODES
    kind: ClassVar[Literal["conv", "linear"]] = "linear"

    @property
    def stride(self) -> int:
        return 1

    @property
    def n_kernels(self) -> int:
        return int(self.out_shape[0])

    @property
    def weight_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def fan_in(self) -> int:
        """One kernel's size: ``C·kh·kw`` (conv) or ``D`` (linear)."""
        return int(np.prod(self.weight_shape[1:]))

    @property
    def cosine(self) -> bool:
        """True when the layer responds with its cosine similarity clamped at 0."""
        response = self.options.response
        return bool(response == "cosine" or (response == "auto" and self.train == "hebbian"))

    @property
    def nonnegative(self) -> bool:
        return self.cosine

    @property
    def has_bias(self) -> bool:
        return not self.cosine and self.train != "hebbian"

    def parameter_count(self) -> int:
        return int(np.prod(self.weight_shape)) + (self.n_kernels if self.has_bias else 0)

    def init_params(self, ops: Ops, rng: np.random.Generator) -> dict[str, Array]:
        shape = self.weight_shape
        bound = _fan_in_bound(self.fan_in)  # torch's default (kaiming-uniform, a=sqrt(5))
        scale = self.options.init_scale * bound
        if self.options.init == "normal":
            params = {"weight": ops.asarray(rng.normal(0.0, scale, size=shape))}
            bias = np.zeros(shape[0])
        else:
            params = {"weight": ops.asarray(rng.uniform(-scale, scale, size=shape))}
            bias = rng.uniform(-bound, bound, size=shape[0])  # drawn always: the stream stays the same
        if self.has_bias:
            params["bias"] = ops.asarray(bias)
        return params

    def cosine_torch_module(self) -> Any:
        """The torch module of this layer when it answers ``relu(cosine)``, or None (the default) for the Hebbian
        module :mod:`hebbcore.torch_model` builds from :attr:`weight_shape` and :attr:`stride` (a plain
        convolution with any ``kh × kw`` kernel, or a matrix product). A plugin weight layer whose :meth:`dot` is
        neither returns its own (a subclass of ``HebbianConv2d`` or ``HebbianLinear`` runs its rule in torch)."""
        return None

    def dot(self, ops: Ops, w: Array, x: Array) -> Array:
        """``w_k · x_p`` for every kernel and input patch."""
        raise NotImplementedError

    def norms(self, ops: Ops, w: Array, x: Array) -> tuple[Array, Array]:
        """``(‖w_k‖, ‖x_p‖)`` shaped to broadcast against :meth:`dot`'s output."""
        raise NotImplementedError

    def similarity(self, ops: Ops, w: Array, x: Array, dot: Array) -> Array:
        """The cosine similarity of every kernel and input patch, from :meth:`dot`'s output."""
        wn, xn = self.norms(ops, w, x)
        return ops.cosine(dot, wn, xn, COS_EPS)

    def similarity_argmax(
        self, ops: Ops, w: Array, x: Array, dot: Array, allowed: Array | None = None
    ) -> tuple[Array, Array]:
        """:meth:`similarity` and, at each sample and position, the index of the most similar kernel (among
        ``allowed`` ``(N, K)`` bool, when given): in one pass where the backend can
        (:meth:`hebbcore.ops.Ops.cosine_argmax`). A layer that overrides :meth:`similarity` gets its own
        similarity's argmax."""
        if type(self).similarity is not WeightLayer.similarity:
            s = self.similarity(ops, w, x, dot)
            return s, ops.argmax_among(s, allowed)
        wn, xn = self.norms(ops, w, x)
        return ops.cosine_argmax(dot, wn, xn, COS_EPS, allowed)

    def clamped(self, ops: Ops, s: Array) -> Array:
        """``relu(s)`` of a similarity this layer computed for this call: in place where :meth:`similarity` and
        :meth:`similarity_argmax` are the built-in ones, whose cosines are a new array nobody else holds (a
        plugin's may not be)."""
        builtin = type(self).similarity is WeightLayer.similarity
        builtin = builtin and type(self).similarity_argmax is WeightLayer.similarity_argmax
        return ops.relu(s, out=s if builtin else None)

    def linear_response(self, params: dict[str, Array], dot: Array) -> Array:
        """``w·x + b`` from an already computed ``dot`` (no ``b`` on a Hebbian layer)."""
        b = params.get("bias")
        if b is None:
            return dot
        return dot + b.reshape((1, -1) + (1,) * (dot.ndim - 2))

    def forward(self, ops: Ops, params: dict[str, Array], x: Array, ctx: ForwardContext) -> Array:
        dot = self.dot(ops, params["weight"], x)
        if self.cosine:
            return self.clamped(ops, self.similarity(ops, params["weight"], x, dot))
        return self.linear_response(params, dot)
