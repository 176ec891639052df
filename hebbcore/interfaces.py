"""The interfaces a plugin implements: learning rules, aggregations and data sources.

A Hebbian step on one layer runs in four moves, and a plugin owns exactly one:

1. the core computes the layer's response to a batch (:class:`HebbianContext`:
   input ``x``, weights ``w``, dot products and cosine similarities);
2. the **rule** turns it into the post-synaptic signal ``y`` (also called the
   step coefficient ``c``): :meth:`LearningRule.post_synaptic`; a rule with state
   (BCM's threshold) declares it in :meth:`LearningRule.init_state` and advances it in
   :meth:`LearningRule.next_state` just before, receiving and returning it explicitly;
3. the **rule** sums its per-position updates over every sample and position:
   :meth:`LearningRule.update_terms` returns ``(Σ_p c_p·d_p, Σ_p c_p)`` where
   ``Δw_p = η·c_p·d_p`` is the update one position alone would make, the first as
   :class:`KernelTerms` (or :meth:`LearningRule.update_sums`, as one array; ``Σ_p c_p`` may be
   None where the aggregation never reads it: :meth:`HebbianContext.aggregated_sum`);
4. the **aggregation** turns the sums into one update per shared kernel: a factor per kernel
   (:meth:`Aggregation.kernel_scale`) or any other form (:meth:`Aggregation.combine`). The core
   adds ``η`` times it to the weights, in one pass where it has the terms and the factor.

Sums are computed through :meth:`HebbianContext.input_correlation`, a convolution
weight-gradient, so no rule ever needs the unfolded patches of a batch. A rule
whose ``y`` is one winner per sample and position (winner-takes-all) returns it
as :class:`Winners`, the winning kernel's index, and the same two calls then add
one patch per position instead of correlating with a K-wide one-hot.
"""

from __future__ import annotations

import dataclasses
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .errors import HebbcoreError, PluginError
from .ops import Array, Ops, per_kernel


@dataclass(frozen=True)
class NoOptions:
    """Options of a plugin that takes none."""


@dataclass(frozen=True)
class LayerInfo:
    """What a rule may know about its layer when it is built (static shapes only)."""

    name: str
    kind: str  # "conv" or "linear"
    out_features: int  # number of kernels K
    n_classes: int
    in_features: int = 0  # one kernel's size: C·kh·kw (conv) or D (linear); 0 where unknown
    response: str = ""  # what the layer passes up: "cosine" (clamped cosine similarity) or "linear" (w·x)


@dataclass(frozen=True, eq=False)  # holds arrays: no element-wise __eq__
class Winners:
    """A 0/1 post-synaptic signal with exactly one winner per sample and position, by its index.

    ``y[n, k, p] = 1`` where ``k == index[n, p]``, else 0. ``index``: integer array
    ``(N, Ho, Wo)`` (conv) or ``(N,)`` (linear) on the backend, values in ``0..n_kernels-1``.
    :meth:`HebbianContext.input_correlation` and :meth:`HebbianContext.coefficient_sum`
    take it in place of the dense ``y``; :meth:`HebbianContext.dense` expands it.
    """

    index: Any
    n_kernels: int


#: The numbers a per-kernel factor may be instead of an array (numpy's float and integer scalars are Real).
REAL = (numbers.Real, np.bool_)


@dataclass(frozen=True, eq=False)  # holds arrays: no element-wise __eq__
class KernelTerms:
    """A layer's summed update ``scale_k·(hebb − decay_k·w)`` kept in its terms, so that the step adds ``η`` times
    it to the weights in one pass (:meth:`hebbcore.ops.Ops.kernel_affine`) instead of one pass per term.

    ``hebb``: shaped like ``w`` (``Σ_p c_p·x_p``), an array the rule made for this step and does not keep;
    ``decay``: a ``(K,)`` array (``Σ_p β_p``), None for none; ``scale``: ``(K,)``, a 0-d array or a real number,
    None for 1. Arrays are in ``w``'s dtype, on its device (the step checks shape, dtype and device: a float64
    factor would promote the weights); a number becomes a Python float.
    """

    hebb: Any
    decay: Any = None
    scale: Any = None

    def __post_init__(self) -> None:
        if isinstance(self.scale, REAL):
            object.__setattr__(self, "scale", float(self.scale))

    def times(self, factor: Array | float | None) -> KernelTerms:
        """These terms with ``scale`` multiplied by ``factor`` (``(K,)``, a 0-d array, a number, or None for 1)."""
        if factor is None:
            return self
        if isinstance(factor, REAL):
            factor = float(factor)
        return dataclasses.replace(self, scale=factor if self.scale is None else self.scale * factor)

    def direction(self, ops: Ops, w: Array) -> Array:
        """The update as one array shaped like ``w``: a new array unless nothing is left to apply to ``hebb``."""
        if self.decay is None:
            if self.scale is None:
                return self.hebb
            return self.hebb * per_kernel(self.scale, w.ndim)
        if self.scale is None:
            return ops.minus_per_kernel(self.hebb, self.decay, w)
        return ops.kernel_affine(w, -(self.scale * self.decay), self.hebb, self.scale)

    def applied(self, ops: Ops, w: Array, lr: float, out: Array | None = None) -> Array:
        """``w + lr·update`` in one pass where the backend can: a new array in ``hebb``'s layout, or ``out``."""
        b = float(lr) if self.scale is None else self.scale * float(lr)
        a = 1.0 if self.decay is None else 1.0 - b * self.decay
        return ops.kernel_affine(w, a, self.hebb, b, out)


class HebbianContext:
    """One layer's response to one batch, handed to the rule.

    Attributes:
        ops: the backend.
        kind: ``"conv"`` or ``"linear"``.
        x: the layer input, ``(N, C, H, W)`` or ``(N, D)``.
        w: the weights, ``(K, C, kh, kw)`` or ``(K, D)``.
        dot: ``w_k · x_p`` for every kernel and position, ``(N, K, Ho, Wo)`` or ``(N, K)``; computed on first use
            where the core passes a function (with :attr:`dot_shape`), so a rule that reads other currents
            (Krotov's ``p``-norm ones) at the top Hebbian layer costs no product with ``w``.
        dot_shape: the shape of ``dot``, known before it is computed.
        similarity: cosine similarity ``dot / (‖w_k‖·‖x_p‖)``, same shape as ``dot``; computed on first use
            (the core may pass a function), so a rule that never reads it costs no patch norms.
            :meth:`most_similar` gives the winner of a competition on it. The network's step may clamp it at 0
            in place afterwards, as the layer's response: a rule that keeps it keeps a copy.
        labels: integer class labels ``(N,)`` on the backend (None when unlabeled).
        n_classes: number of classes of the task.
        stride: conv stride (1 for linear layers).
        state: the rule's state for this step (what :meth:`LearningRule.next_state` returned).
        reducer: data-parallel training's sum over processes (None in one process); see :meth:`reduce`.
        cache: values a rule computes once per step and reads in several of its methods.
    """

    def __init__(
        self,
        ops: Ops,
        kind: str,
        x: Array,
        w: Array,
        dot: Array | Callable[[], Array],
        similarity: Array | Callable[[], Array],
        labels: Array | None,
        n_classes: int,
        stride: int = 1,
        reducer: Callable[[Array], Array] | None = None,
        similarity_argmax: Callable[[Array | None], tuple[Array, Array]] | None = None,
        dot_shape: tuple[int, ...] | None = None,
    ):
        """``similarity_argmax``: the similarity and :meth:`most_similar` in one call (one pass over ``dot``
        where the backend can), used when a rule asks for the winners before the similarity is computed.
        ``dot_shape``: required where ``dot`` is a function."""
        self.ops, self.kind, self.x, self.w = ops, kind, x, w
        if callable(dot):
            if dot_shape is None:
                raise ValueError("HebbianContext: a dot computed on first use needs its dot_shape")
            self.dot_shape = tuple(int(n) for n in dot_shape)
        else:
            self.dot_shape = tuple(int(n) for n in dot.shape)
        self._dot, self._similarity, self.labels = dot, similarity, labels
        self._similarity_argmax = similarity_argmax
        self.n_classes, self.stride = n_classes, stride
        self.reducer = reducer
        self.state: dict[str, Array] = {}
        self.cache: dict[str, Any] = {}
        self.total_positions: int | None = None  # P summed over processes, once asked for
        #: False while the step's aggregation never reads the coefficient sums (``mean``, ``sum``): see
        #: :meth:`aggregated_sum`.
        self.reads_coefficient_sum = True

    @property
    def dot(self) -> Array:
        if callable(self._dot):  # computed once, on first use
            self._dot = self._dot()
            if tuple(self._dot.shape) != self.dot_shape:  # n_positions and the rules' shapes were taken from it
                raise PluginError(
                    f"the layer's dot product has shape {tuple(self._dot.shape)}; its output shape says "
                    f"{self.dot_shape}"
                )
        return self._dot

    @property
    def dot_dtype(self) -> Any:
        """The dtype of :attr:`dot` (the weights' until it is computed: the core multiplies like dtypes)."""
        return self.w.dtype if callable(self._dot) else self._dot.dtype

    @property
    def similarity(self) -> Array:
        if callable(self._similarity):  # computed once, on first use
            self._similarity = self._similarity()
        return self._similarity

    def most_similar(self, allowed: Array | None = None) -> Array:
        """The index of the kernel most similar to each input patch (the largest :attr:`similarity`, the first on
        ties): ``(N, Ho, Wo)`` or ``(N,)`` integers; with ``allowed`` ``(N, K)`` bool, among each sample's allowed
        kernels (0 where it allows none). A winner-takes-all competition: ``Winners(ctx.most_similar(), K)``."""
        if callable(self._similarity) and self._similarity_argmax is not None:
            self._similarity, index = self._similarity_argmax(allowed)
            return index
        return self.ops.argmax_among(self.similarity, allowed)

    def reduce(self, a: Array) -> Array:
        """``a`` summed over every process of data-parallel training (``a`` itself in one process)."""
        return a if self.reducer is None else self.reducer(a)

    @property
    def kernel_axis_sum(self) -> tuple[int, ...]:
        """Axes of ``dot`` that index positions and samples (all but the kernel axis 1)."""
        return (0,) if self.kind == "linear" else (0, 2, 3)

    @property
    def local_positions(self) -> int:
        """Number of (sample, position) pairs in this process's batch."""
        shape = self.dot_shape
        return shape[0] if self.kind == "linear" else shape[0] * shape[2] * shape[3]

    @property
    def n_positions(self) -> int:
        """Number of (sample, position) pairs P the update is aggregated over (over all processes)."""
        if self.total_positions is None:
            local = self.local_positions
            self.total_positions = (
                local
                if self.reducer is None
                else int(round(float(self.ops.to_numpy(self.reducer(self.ops.asarray([local])))[0])))
            )
        return self.total_positions

    def input_correlation(self, c: Array | Winners) -> Array:
        """``Σ_p c[p, k] · x_p`` for each kernel ``k``: an array shaped like ``w``.

        ``c`` is shaped like :attr:`dot`, or :class:`Winners`. Computed as a convolution
        weight-gradient (conv) or a matrix product (linear); for winners, as the sum of
        the patches (or inputs) each kernel won (:meth:`Ops.conv2d_winner_sums`, :meth:`Ops.linear_winner_sums`).
        """
        if isinstance(c, Winners):
            return self._winner_sums(self.x, c)
        if self.kind == "linear":
            return self.ops.linear_weight_sums(self.x, c)
        return self.ops.conv2d_weight_sums(self.x, c, tuple(self.w.shape[2:]), self.stride)

    def winner_correlation(
        self, winners: Sequence[Array], weights: Sequence[float], dense: Array | None = None
    ) -> Array:
        """:meth:`input_correlation` of ``c = Σ_j weights[j] · one_hot(winners[j])``: several winners per sample
        and position, each index array shaped as :attr:`Winners.index`, the ``j``-th with coefficient
        ``weights[j]`` (Krotov's rank 1 and rank k: ``(1, -delta)``). Where the backend adds winners' rows
        (:meth:`hebbcore.ops.Ops.adds_winner_rows`): one winner sum over the input stacked once per set, each copy
        scaled, a row or patch per winner instead of a ``K``-wide product; elsewhere the one product of ``c``
        (``dense``, when the caller has it as an array shaped like :attr:`dot`)."""
        ops, k = self.ops, int(self.w.shape[0])
        if not ops.adds_winner_rows(self.x, self.kind):
            if dense is None:
                dense = sum(self.dense(Winners(i, k)) * float(a) for i, a in zip(winners, weights, strict=True))
            return self.input_correlation(dense)
        x = ops.concatenate([self.x if a == 1 else self.x * float(a) for a in weights])
        return self._winner_sums(x, Winners(ops.concatenate(list(winners)), k))

    def _winner_sums(self, x: Array, c: Winners) -> Array:
        if self.kind == "conv":
            return self.ops.conv2d_winner_sums(x, c.index, c.n_kernels, tuple(self.w.shape[2:]), self.stride)
        return self.ops.linear_winner_sums(x, c.index, c.n_kernels)

    def coefficient_sum(self, c: Array | Winners) -> Array:
        """``Σ_p c[p, k]`` for each kernel: shape ``(K,)`` (for winners: how often each kernel won)."""
        if isinstance(c, Winners):
            return self.ops.winner_counts(c.index, c.n_kernels)
        return self.ops.sum(c, axis=self.kernel_axis_sum)

    def aggregated_sum(self, c: Array | Winners) -> Array | None:
        """:meth:`coefficient_sum` for :meth:`LearningRule.update_sums` to return as the aggregation's
        ``Σ_p c_p``: None where the step's aggregation never reads it (``mean``, ``sum``), so nothing computes it.
        A rule that uses the sum itself (as a decay) calls :meth:`coefficient_sum`."""
        return self.coefficient_sum(c) if self.reads_coefficient_sum else None

    def dense(self, c: Array | Winners) -> Array:
        """``c`` as an array shaped like :attr:`dot` (a :class:`Winners` becomes its one-hot)."""
        if isinstance(c, Winners):
            return self.ops.one_hot(c.index, c.n_kernels, axis=1, dtype=self.ops.dtype_name(self.dot_dtype))
        return c

    def per_kernel(self, v: Array) -> Array:
        """Reshape a ``(K,)`` vector to broadcast against ``w``."""
        return per_kernel(v, self.w.ndim)

    def expand_per_sample(self, v: Array) -> Array:
        """Reshape an ``(N, K)`` array to broadcast against :attr:`dot`."""
        return v if self.kind == "linear" else v.reshape(tuple(v.shape) + (1, 1))


class LearningRule(ABC):
    """A Hebbian learning rule. Subclass, set :attr:`name`, register with ``hebbcore_register_rules``.

    ``Options`` is a frozen dataclass of the rule's parameters; the spec's
    ``[layers.hebbian.options]`` table is validated against it (unknown keys,
    wrong types). The instance is built once per layer and holds no mutable state:
    what a rule carries from step to step is declared by :meth:`init_state`,
    handed to :meth:`next_state` and returned from it, and saved with the weights
    in every checkpoint, so a resumed run continues exactly.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions
    #: What the coefficients can be: ``"binary"`` (0/1), ``"nonnegative"`` or ``"signed"``.
    coefficients: ClassVar[Literal["binary", "nonnegative", "signed"]] = "nonnegative"
    #: True when the direction ``d_p`` does not depend on the coefficient ``c_p`` (``Δw_p = η·c_p·d_p``).
    separable: ClassVar[bool] = True
    #: The aggregation the rule's published update means; a spec or ``use_rule`` that names none gets it.
    aggregation: ClassVar[str] = "weighted_mean"
    #: True when that aggregation is the only one the update means (a closed form); others are refused.
    aggregation_only: ClassVar[bool] = False
    #: True when the rule reads ``ctx.labels`` (a teacher signal): it cannot learn from unlabeled images.
    needs_labels: ClassVar[bool] = False

    def __init__(self, options: Any, layer: LayerInfo):
        self.options = options
        self.layer = layer

    @classmethod
    def check(cls, options: Any, layer: LayerInfo) -> list[str]:
        """Problems with these options on this layer (e.g. group sizes); empty when fine."""
        return []

    def init_state(self, ops: Ops) -> dict[str, Array]:
        """The rule's state before the first step: named arrays on ``ops`` (empty for a stateless rule)."""
        return {}

    def next_state(self, ctx: HebbianContext, state: dict[str, Array]) -> dict[str, Array]:
        """The state for this step, from the previous one; called once per step before :meth:`post_synaptic`,
        which reads the result as ``ctx.state``. Must not change ``state`` in place. Default: unchanged."""
        return state

    @abstractmethod
    def post_synaptic(self, ctx: HebbianContext) -> Array | Winners:
        """The step coefficient ``y`` for every kernel, sample and position (shape and dtype of ``ctx.dot``,
        which the step checks: numpy would broadcast a wrong shape and promote a float64 silently).

        A rule with one winner per sample and position may return :class:`Winners` instead.
        """

    def update_terms(self, ctx: HebbianContext, coefficient: Array | Winners) -> tuple[KernelTerms, Array | None]:
        """``(Σ_p c_p·d_p, Σ_p c_p)``: the summed update directions as :class:`KernelTerms` (shaped like ``w``) and
        the coefficient sums ``(K,)`` (None allowed where the aggregation does not read them: return
        :meth:`HebbianContext.aggregated_sum`). The step adds the terms to the weights in one pass.

        The default is the common form ``d_p = x_p − (β_p / c_p)·w``: ``KernelTerms(Σ_p c_p·x_p, Σ_p β_p)`` with
        ``Σ_p β_p`` from :meth:`decay_sum` (plain Hebb, Hebb with decay, WTA, Oja, ...). A rule whose update is not
        of this form overrides this method, or :meth:`update_sums` (not both: the step then calls
        :meth:`update_sums`).
        """
        coefficient_sum = ctx.coefficient_sum(coefficient)
        terms = KernelTerms(ctx.input_correlation(coefficient), self.decay_sum(ctx, coefficient, coefficient_sum))
        return terms, coefficient_sum

    def update_sums(self, ctx: HebbianContext, coefficient: Array | Winners) -> tuple[Array, Array | None]:
        """:meth:`update_terms` with the summed directions as one array shaped like ``w``: override this where the
        update is simplest written as an array (the step then applies it in one more pass)."""
        terms, coefficient_sum = self.update_terms(ctx, coefficient)
        return terms.direction(ctx.ops, ctx.w), coefficient_sum

    def decay_sum(self, ctx: HebbianContext, coefficient: Array | Winners, coefficient_sum: Array) -> Array | None:
        """``Σ_p β_p`` per kernel ``(K,)``, the weight-decay term of the default :meth:`update_terms`; None for none.

        Default: ``coefficient_sum`` (``β = c``: Hebb with decay, ``Δw_p = η·c_p·(x_p − w)``)."""
        return coefficient_sum


class Aggregation(ABC):
    """Combines the per-position updates of a shared kernel into one update.

    Register with ``hebbcore_register_aggregations``.
    """

    name: ClassVar[str]
    #: False when :meth:`kernel_scale` and :meth:`combine` never read the coefficient sums: a rule may then pass None.
    reads_coefficient_sum: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "sums" in vars(cls):  # the interface before KernelTerms: it would be skipped silently
            raise PluginError(
                f"aggregation {cls.__name__}: Aggregation.sums(ctx, rule, c) is no longer called; return the "
                f"coefficients to sum with and to normalise by from weighting(ctx, c), and give kernel_scale or "
                f"combine (rename a method of that name that is not the old hook)"
            )

    @classmethod
    def check(cls, rule_cls: type[LearningRule]) -> list[str]:
        """Why this aggregation is wrong for the rule's coefficients (run when the spec is loaded); [] if fine."""
        return []

    @classmethod
    def scales_per_kernel(cls) -> bool:
        """True when the step takes :meth:`kernel_scale`: :meth:`combine` is not overridden (anywhere below)."""
        return cls.combine is Aggregation.combine

    def weighting(self, ctx: HebbianContext, coefficient: Array | Winners) -> tuple[Array | Winners, Array | Winners]:
        """``(the coefficients the rule sums its update with, those whose sums the aggregation reads)``; by default both
        ``coefficient``. Return new arrays, never change ``coefficient`` in place: a rule may have summed it already
        in :meth:`LearningRule.post_synaptic`."""
        return coefficient, coefficient

    def kernel_scale(self, ctx: HebbianContext, coefficient_sum: Array | None) -> Array | float | None:
        """The factor per kernel ``(K,)`` (``w``'s dtype), or one real number or 0-d array, by which the update is
        the summed one: the step then applies the update to the weights in the same pass. Not called where
        :meth:`combine` is overridden (a subclass of a built-in that overrides it gets its combine). Default: None."""
        return None

    def combine(self, ctx: HebbianContext, direction_sum: Array, coefficient_sum: Array | None) -> Array:
        """One update per kernel (shaped like ``ctx.w``), before the learning rate. Default: ``direction_sum``
        times :meth:`kernel_scale`; override one of the two (overriding this costs the step one pass more)."""
        scale = self.kernel_scale(ctx, coefficient_sum)
        if scale is None:
            raise PluginError(f"aggregation {self.name!r} defines neither kernel_scale nor combine")
        return KernelTerms(direction_sum, scale=scale).direction(ctx.ops, ctx.w)


@dataclass(frozen=True)
class Split:
    """Images ``x`` (float32, ``(N, C, H, W)`` or ``(N, D)``) and integer labels ``y``."""

    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


def check_hflip_inputs(shape: tuple[int, ...], what: str = "sgd.hflip: the SGD phase's inputs") -> None:
    """Raise unless ``shape`` is that of images ``(N, C, H, W)``, the inputs a mirroring (``what``) flips."""
    if len(shape) != 4:
        raise HebbcoreError(f"{what} must be images (N, C, H, W), got shape {tuple(shape)}")


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits of one task. ``val`` and ``test`` may be empty."""

    name: str
    train: Split
    val: Split
    test: Split
    n_classes: int
    class_names: tuple[str, ...] = ()
    #: The frozen layers' output for the left-right mirror image of each training image (same order), when the
    #: splits hold such features rather than images and an SGD phase mirrors its inputs (``sgd.hflip``).
    train_mirrored: Split | None = None
    #: Images without labels (``y`` is -1), which a Hebbian phase with ``data = "unlabeled"`` learns from.
    unlabeled: Split | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    def train_head(self, images: int) -> Split:
        """The first ``images`` training images and labels (all of them when ``images`` is 0)."""
        n = len(self.train) if images <= 0 else min(images, len(self.train))
        return Split(self.train.x[:n], self.train.y[:n])

    def replace(self, **changes: Any) -> Dataset:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class DataInfo:
    """What a data source knows from its options alone, before reading any data."""

    input_shape: tuple[int, ...]  # one sample's shape, (C, H, W) or (D,)
    n_classes: int
    n_samples: int  # train + val + test (+ unlabeled) samples it will hold in memory
    n_unlabeled: int = 0  # images without labels, which only a Hebbian phase can learn from


class DataSource(ABC):
    """A named dataset. Register with ``hebbcore_register_datasets``.

    ``Options`` is a frozen dataclass validated against the spec's
    ``[data.options]`` table. :meth:`check`, :meth:`check_files` and :meth:`describe` run when the spec
    is loaded (so ``hebbcore validate`` and ``hebbcore run`` refuse the same specs):
    with a description the loader also checks the layers' shapes, the rules' group
    sizes and the run's memory before anything is allocated.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    @classmethod
    def check(cls, options: Any) -> list[str]:
        """Problems with these options, each ``"<key>: <what was expected>"`` (key under ``data.options``)."""
        return []

    @classmethod
    def describe(cls, options: Any) -> DataInfo | None:
        """Shapes and sizes of the data these options give, without loading it (None: unknown until loaded).

        May raise :class:`hebbcore.errors.DataError` (a missing file) naming the file."""
        return None

    @classmethod
    def check_files(cls, options: Any) -> list[str]:
        """Why the files these options name cannot be read now (a missing folder or file), each problem one
        line naming the file; empty when they are there or will be made (a download). Run when the spec is
        loaded for validate and run, not when only shapes are needed (``load_run`` of a moved run)."""
        return []

    @abstractmethod
    def load(self, options: Any, seed: int) -> Dataset:
        """Read (or make) the data. Raise :class:`hebbcore.errors.DataError` naming the file on failure."""


class Transform(ABC):
    """A preprocessing step fitted on the training split and applied to every split.

    Register with ``hebbcore_register_transforms``; listed in the spec's
    ``[[data.transforms]]``.
    """

    name: ClassVar[str]
    Options: ClassVar[type] = NoOptions

    @abstractmethod
    def apply(self, dataset: Dataset, options: Any) -> Dataset:
        """Return the transformed dataset (fit on ``dataset.train``)."""


class Logger:
    """An epoch logger, chosen with ``hebbcore run --logger NAME``.

    The class is registered with ``hebbcore_register_loggers``; the run builds one (no
    arguments), registers it as a plugin, and its ``hebbcore_epoch_end`` hook implementation
    is called after every epoch. Raise :class:`hebbcore.errors.HebbcoreError` in ``__init__``
    when something it needs is missing.
    """

    name: ClassVar[str]


class Command(ABC):
    """A ``hebbcore`` subcommand, registered with ``hebbcore_register_commands``.

    ``hebbcore NAME ...`` parses its arguments with :meth:`add_arguments` and calls :meth:`run`.
    The module that registers it should import its heavy parts inside :meth:`run`, so the
    command line stays fast.
    """

    name: ClassVar[str]
    help: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def add_arguments(cls, parser: Any) -> None:
        """Add the command's options to its ``argparse`` parser."""

    @abstractmethod
    def run(self, args: Any, registry: Any) -> int:
        """Run with the parsed ``args`` and the plugin registry; the process's exit status."""
