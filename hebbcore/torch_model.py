"""PyTorch interop: the layer graph as a ``torch.nn.Module``, and the SGD phase.

Imported only when an SGD phase runs or a user asks for it: the SGD phase
always trains through torch autograd, whatever the array backend of the
Hebbian phase. :class:`HebbianConv2d` and :class:`HebbianLinear` respond with
clamped cosine similarity, exactly as :class:`hebbcore.network.Network` does,
and take a Hebbian step with the same rule plugins (:meth:`hebbian_step`), so
they can sit inside a user's own model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import HebbcoreError, SpecError, TrainingDiverged
from .interfaces import HebbianContext
from .layers import COS_EPS, WeightLayer
from .network import Network, Node
from .step import hebbian_terms

#: Hebbian steps between NaN/inf checks of a module's weights (the first step is checked too).
CHECK_EVERY = 50


class _HebbianMixin:
    """Cosine response and a rule-driven Hebbian step (shared by the conv and linear modules)."""

    rule: Any = None
    aggregation: Any = None
    lr: float = 0.0
    n_classes: int = 0
    rule_state: dict | None = None  # the rule's state, made on the first step
    steps: int = 0
    weight: nn.Parameter  # the module's kernels, (K, C, kh, kw) or (K, D)

    def _similarity(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(dot, cosine)`` of every kernel with every input patch."""
        raise NotImplementedError

    def _stride(self) -> int:
        raise NotImplementedError

    def attach_rule(self, rule, aggregation, lr: float, n_classes: int) -> _HebbianMixin:
        """Give the module a learning rule (a LearningRule and an Aggregation instance)."""
        self.rule, self.aggregation, self.lr, self.n_classes = rule, aggregation, lr, n_classes
        self.rule_state = None
        return self

    def use_rule(
        self, rule: str, lr: float = 0.1, aggregation: str | None = None, n_classes: int = 0, registry=None, **options
    ) -> _HebbianMixin:
        """Learn with the registered rule ``rule`` (any plugin's), e.g. ``HebbianConv2d(3, 32, 5).use_rule("wta")``.

        ``options`` are the rule's options, validated as in a spec (SpecError on a bad one);
        ``aggregation``: by default the rule's own (``LearningRule.aggregation``); one wrong for the
        rule's coefficients is refused, as in a spec.
        """
        from .errors import SpecError
        from .interfaces import LayerInfo
        from .plugin_manager import default_registry
        from .settings import parse_table
        from .spec import HebbianLayerSpec, parse_options

        registry = registry or default_registry()
        rule_cls = registry.get("rule", rule)
        problems: list[str] = []
        checked = parse_table(HebbianLayerSpec, {"rule": rule, "lr": lr}, "", problems)  # lr as a spec checks it
        if checked is not None and not problems and not checked.lr > 0:
            problems.append(f"lr: expected > 0, got {checked.lr}")
        opts = parse_options(rule_cls.Options, options, "options", problems)
        kind = "conv" if self.weight.ndim == 4 else "linear"
        shape = tuple(self.weight.shape)
        info = LayerInfo(type(self).__name__, kind, shape[0], n_classes, int(np.prod(shape[1:])), "cosine")
        if opts is not None:
            problems += rule_cls.check(opts, info)
        agg_cls = registry.get("aggregation", aggregation or rule_cls.aggregation)
        problems += [f"aggregation: {p}" for p in agg_cls.check(rule_cls)]
        if rule_cls.aggregation_only and agg_cls.name != rule_cls.aggregation:
            problems.append(f"aggregation: rule {rule!r} means aggregation = {rule_cls.aggregation!r} only")
        if any("response" in p for p in problems):  # the modules answer the cosine; a spec's layer can be linear
            problems.append("the torch modules answer cosine responses: a rule that needs a linear one runs in a spec")
        if problems:
            raise SpecError(problems, f"{type(self).__name__}.use_rule({rule!r})")
        return self.attach_rule(rule_cls(opts, info), agg_cls(), checked.lr, n_classes)

    @torch.no_grad()
    def hebbian_step(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Update the weights from input ``x`` with the attached rule; returns the pre-update response.

        The same step as :class:`hebbcore.network.Network`'s (:func:`hebbcore.step.hebbian_terms`);
        the rule's state lives in :attr:`rule_state`.
        """
        if self.rule is None:
            raise HebbcoreError(f"{type(self).__name__}.hebbian_step: no rule attached; call use_rule('wta') first")
        ops = _ops_for(x.device)
        dot, cos = self._similarity(x)
        kind = "conv" if self.weight.ndim == 4 else "linear"
        ctx = HebbianContext(ops, kind, x, self.weight, dot, cos, labels, self.n_classes, self._stride())
        if self.rule_state is None:
            self.rule_state = dict(self.rule.init_state(ops))
        terms, self.rule_state = hebbian_terms(ctx, self.rule, self.aggregation, self.rule_state)
        terms.applied(ops, self.weight, self.lr, out=self.weight)  # in place, one pass where the backend can
        self.steps += 1
        if self.steps % CHECK_EVERY == 1 and not ops.isfinite_all(self.weight):  # a host sync: not every step
            raise TrainingDiverged(
                f"{type(self).__name__}: the weights became NaN or inf at Hebbian step "
                f"{self.steps}; lower the learning rate or check the input"
            )
        return torch.relu(cos)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self._similarity(x)[1])


_OPS_CACHE: dict[str, Any] = {}


def _ops_for(device: torch.device):
    """The registered ``torch`` backend on ``device`` (one per device), found like any plugin's."""
    key = str(device)
    if key not in _OPS_CACHE:
        from .plugin_manager import default_registry

        _OPS_CACHE[key] = default_registry().get("backend", "torch")(key)
    return _OPS_CACHE[key]


def _cosine(dot: torch.Tensor, w_norm: torch.Tensor, x_norm: torch.Tensor) -> torch.Tensor:
    """``Ops.cosine``'s formula, written for autograd (the torch backend's writes in place)."""
    return dot / (w_norm * x_norm + COS_EPS)


class HebbianConv2d(_HebbianMixin, nn.Module):
    """A conv layer without bias whose response is ``max(0, cos(w_k, patch))``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1):
        super().__init__()
        self.stride = stride
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        bound = 1 / math.sqrt(in_channels * kh * kw)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kh, kw).uniform_(-bound, bound))

    def _stride(self) -> int:
        return self.stride

    def _similarity(self, x):
        w = self.weight
        dot = F.conv2d(x, w, stride=self.stride)
        kh, kw = w.shape[2:]
        xn = torch.sqrt(F.avg_pool2d((x * x).sum(1, keepdim=True), (kh, kw), stride=self.stride) * (kh * kw))
        wn = torch.sqrt((w * w).sum((1, 2, 3))).view(1, -1, 1, 1)
        return dot, _cosine(dot, wn, xn)


class HebbianLinear(_HebbianMixin, nn.Module):
    """A dense layer without bias whose response is ``max(0, cos(w_k, x))``."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))

    def _stride(self) -> int:
        return 1

    def _similarity(self, x):
        w = self.weight
        dot = x @ w.T
        xn = x.norm(dim=1, keepdim=True)
        wn = w.norm(dim=1).view(1, -1)
        return dot, _cosine(dot, wn, xn)


def build_module(net: Network) -> nn.Sequential:
    """A ``torch.nn.Sequential`` with the network's layers and current weights (on the CPU).

    Module names are the layer names; parameters of layers not in ``sgd`` mode
    (and batch-norms not in ``sgd`` mode) have ``requires_grad = False``, and the
    SGD phase keeps those batch-norms in eval mode (their running statistics).
    """
    mods = nn.Sequential()
    state = net.state_dict()
    for node in net.nodes:
        mods.add_module(node.name, _module_for(node, net))
    sd = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}
    mods.load_state_dict(sd, strict=False)
    for node in net.nodes:
        train = _trains_by_sgd(node, net)
        for p in getattr(mods, node.name).parameters():
            p.requires_grad_(train)
    return mods


def _trains_by_sgd(node: Node, net: Network) -> bool:
    if node.spec.trainable:
        return node.mode == "sgd"
    if node.layer.running_stats:  # a batch norm: as given, else as the layer with weights below it
        if node.mode:
            return node.mode == "sgd"
        below = [n for n in net.nodes[: net.nodes.index(node)] if n.spec.trainable]
        return bool(below) and below[-1].mode == "sgd"
    return False


def _module_for(node: Node, net: Network) -> nn.Module:
    """The layer's own module, or a Hebbian module for a layer that responds with its cosine similarity."""
    layer = node.layer
    if not (isinstance(layer, WeightLayer) and layer.cosine):
        return layer.torch_module()
    m: nn.Module | None = layer.cosine_torch_module()
    if m is None and layer.kind == "conv":
        kh, kw = (int(k) for k in layer.weight_shape[2:])
        m = HebbianConv2d(layer.in_shape[0], layer.n_kernels, (kh, kw), layer.stride)
    elif m is None:
        m = HebbianLinear(layer.in_shape[0], layer.n_kernels)
    elif not isinstance(m, _HebbianMixin) or set(m.state_dict()) != set(node.params):
        got, want = sorted(m.state_dict()), sorted(node.params)
        raise SpecError(
            [f"layers ({node.name}): cosine_torch_module() gave a {type(m).__name__} with parameters {got}; "
             f"expected a HebbianConv2d or HebbianLinear subclass with {want}"],
            "torch module",
        )  # fmt: skip
    if node.rule is not None:
        lr = node.spec.hebbian.lr if node.spec.hebbian is not None else 0.0
        m.attach_rule(node.rule, node.aggregation, lr, net.n_classes)
    return m


def load_run(run_dir: str, registry: Any = None) -> nn.Sequential:
    """The network a finished (or checkpointed) run trained, as a ``torch.nn.Sequential`` to fine-tune or embed.

    Built from the run's ``spec.toml`` and ``weights.npz``; Hebbian layers keep their rules (``hebbian_step``).
    """
    from pathlib import Path

    from .io import read_npz
    from .plugin_manager import default_registry
    from .runner import load_dataset
    from .spec import load_spec

    registry = registry or default_registry()
    spec = load_spec(Path(run_dir) / "spec.toml", registry, against_data=False)
    info = registry.get("dataset", spec.data.source).describe(spec.data.options)
    if info is None:  # a source that only knows its shapes once loaded
        data = load_dataset(spec, registry)
        shape, n_classes = data.input_shape, data.n_classes
    else:
        shape, n_classes = info.input_shape, info.n_classes
    net = Network(spec, shape, n_classes, default_registry().get("backend", "numpy")(), registry)
    net.load_state_dict(read_npz(Path(run_dir) / "weights.npz", "weights of the run"), strict=True,
                        source=str(Path(run_dir) / "weights.npz"))  # fmt: skip
    return build_module(net)


def copy_back(module: nn.Module, net: Network) -> None:
    """Copy the module's parameters and buffers back into the network."""
    state = module.state_dict()
    kept = [k for k in state if not k.endswith("num_batches_tracked")]
    arrays = {k: state[k].detach().cpu().contiguous().numpy() for k in kept}  # channels-last weights made C-order
    net.load_state_dict(arrays, source="torch module")


def torch_device_for(net: Network) -> torch.device:
    """The device of the SGD phase: the backend's CUDA device if it has one, else the CPU."""
    dev = str(net.ops.device)
    if dev.startswith("cuda") and torch.cuda.is_available():
        return torch.device(dev if ":" in dev else "cuda")
    return torch.device("cpu")


def scores(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's class scores; a Hebbian (cosine) output layer answers unclamped, as
    :meth:`hebbcore.network.Network.scores` does."""
    last = module[-1] if isinstance(module, nn.Sequential) and len(module) else None
    if isinstance(last, _HebbianMixin):
        return last._similarity(module[:-1](x))[1]
    return module(x)
