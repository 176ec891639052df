"""The SGD phase: the ``sgd`` layers trained by torch autograd (cross-entropy on the network's output).

Whatever the array backend of the Hebbian phase, this phase runs on torch, on the backend's CUDA device if it
has one, else on the CPU; it is resumable from its :meth:`SgdPhase.state` at any batch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import HebbcoreError, TrainingDiverged
from .interfaces import check_hflip_inputs
from .network import Network
from .ops import inference_batch
from .progress import Progress
from .spec import epoch_splits
from .torch_model import _trains_by_sgd, build_module, copy_back, scores, torch_device_for


def _layout(x: torch.Tensor) -> torch.Tensor:
    """Images channels-last on the CPU, where torch's convolutions and pools run 2-3x faster in that layout
    (the torch backend's Hebbian phase uses it too); as they are elsewhere."""
    if x.ndim == 4 and x.device.type == "cpu":
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray, device) -> float | None:
    if len(x) == 0:
        return None
    module.eval()
    correct, batch = 0, inference_batch(str(device))
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = _layout(torch.from_numpy(x[i : i + batch]).to(device))
            correct += int((scores(module, xb).argmax(1).cpu().numpy() == y[i : i + batch]).sum())
    return correct / len(x)


def make_optimizer(cfg, params):
    """The torch optimizer the ``[sgd]`` section names (``optimizer``: ``"sgd"`` or ``"adam"``)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params,
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.nesterov and cfg.momentum > 0,
        weight_decay=cfg.weight_decay,
    )


class SgdPhase:
    """The SGD phase: cross-entropy on the network output, the ``[sgd]`` optimizer on the ``sgd`` layers.

    Resumable: :meth:`state` captures model, optimizer, RNG states, the best
    epoch so far and the position in the current epoch; :meth:`run` continues
    from a state. With ``keep_best`` the weights of the best validation epoch
    are copied back into the network at the end.
    """

    def __init__(self, net: Network, data, seed: int, rank: int = 0, world: int = 1):
        self.net, self.data, self.cfg = net, data, net.spec.sgd
        self.device = torch_device_for(net)
        self.rank, self.world = rank, world
        self.module = build_module(net).to(self.device)  # its initial draws are replaced by the network's weights
        torch.manual_seed(seed)  # dropout's masks start from the seed, however many modules were built above
        if self.device.type == "cpu":
            # as _layout gives the inputs; torch's stubs lack the memory_format overload that Module.to accepts
            self.module = self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.params = [p for p in self.module.parameters() if p.requires_grad]
        self.train_module: nn.Module = self.module
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.train_module = DistributedDataParallel(self.module)
        cfg = self.cfg
        self.opt: Any = make_optimizer(cfg, self.params) if self.params else None  # None: nothing to train
        self.gen = torch.Generator().manual_seed(seed)
        self.epoch, self.batch = 1, 0
        self.gen_at_epoch_start = self.gen.get_state()
        self.best: dict | None = None
        self.best_state: dict | None = None
        self.loss_sum = 0.0
        self.seconds = 0.0

    # resumable state ---------------------------------------------------------------
    def state(self) -> dict:
        return {
            "module": _cpu(self.module.state_dict()),
            "opt": self.opt.state_dict() if self.opt else None,
            "gen_at_epoch_start": self.gen_at_epoch_start,
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None,
            "epoch": self.epoch,
            "batch": self.batch,
            "best": self.best,
            "best_state": self.best_state,
            "loss_sum": self.loss_sum,
            "seconds": self.seconds,
        }

    def load_state(self, st: dict) -> None:
        self.module.load_state_dict(st["module"])
        if self.opt and st["opt"]:
            self.opt.load_state_dict(st["opt"])
        self.gen_at_epoch_start = st["gen_at_epoch_start"]
        self.gen.set_state(st["gen_at_epoch_start"])
        torch.set_rng_state(st["torch_rng"])
        if st["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(st["cuda_rng"])
        self.epoch, self.batch = st["epoch"], st["batch"]
        self.best, self.best_state = st["best"], st["best_state"]
        self.loss_sum, self.seconds = st["loss_sum"], st["seconds"]

    # training ---------------------------------------------------------------------
    def run(
        self,
        on_epoch: Callable[[dict], None] | None = None,
        checkpoint: Callable[[], None] | None = None,
        checkpoint_every: int = 0,
        progress: bool | None = None,
    ) -> dict:
        """Train from the current position to the last epoch; returns the best epoch's record.

        ``on_epoch`` receives each epoch's record; ``checkpoint`` is called every ``checkpoint_every``
        batches within an epoch (the caller saves :meth:`state`)."""
        if not self.params:
            return {}
        batches = _Batches(self.data, self.cfg, self.device)
        while self.epoch <= self.cfg.epochs:
            record = self._epoch(batches, checkpoint, checkpoint_every, progress)
            if on_epoch:
                on_epoch(record)
        if self.cfg.keep_best and self.best_state is not None:
            self.module.load_state_dict(self.best_state)
            copy_back(self.module, self.net)
        return self.best or {}

    def _epoch(
        self, batches: _Batches, checkpoint: Callable[[], None] | None, checkpoint_every: int, progress: bool | None
    ) -> dict:
        cfg, epoch = self.cfg, self.epoch
        lr = cfg.lr_at(epoch)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.gen.set_state(self.gen_at_epoch_start)
        draws = batches.draw(self.gen)
        starts = list(range(0, batches.n, cfg.batch_size))
        self.train_module.train()
        for node in self.net.nodes:  # a batch-norm SGD does not train keeps its statistics, as at inference
            if node.layer.running_stats and not _trains_by_sgd(node, self.net):
                getattr(self.module, node.name).eval()
        t0 = time.perf_counter()
        shown = Progress(range(self.batch, len(starts)), len(starts) - self.batch, f"sgd epoch {epoch}/{cfg.epochs}",
                         cfg.batch_size, progress)  # fmt: skip
        acc = torch.zeros((), device=self.device)  # summed loss, read back only at checkpoints
        for b in shown:
            idx = draws.order[starts[b] : starts[b] + cfg.batch_size][self.rank :: self.world]
            loss = F.cross_entropy(self.train_module(batches.inputs(draws, idx)), batches.y[idx])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            acc += loss.detach() * len(idx)
            self.batch = b + 1
            if checkpoint and checkpoint_every and self.batch % checkpoint_every == 0 and self.batch < len(starts):
                self.loss_sum += float(acc)
                acc.zero_()
                self._check_loss(self.loss_sum, f"epoch {epoch}, batch {self.batch}")
                self.seconds += time.perf_counter() - t0
                checkpoint()
                t0 = time.perf_counter()
        self.loss_sum += float(acc)
        self.seconds += time.perf_counter() - t0
        record = self._record(epoch, lr, self.loss_sum * self.world / batches.n, batches.n)
        copy_back(self.module, self.net)
        self.epoch, self.batch, self.loss_sum, self.seconds = epoch + 1, 0, 0.0, 0.0
        self.gen_at_epoch_start = self.gen.get_state()
        return record

    @staticmethod
    def _check_loss(loss: float, where: str) -> None:
        if not math.isfinite(loss):
            raise TrainingDiverged(f"SGD phase: the loss became NaN or inf in {where}; lower sgd.lr")

    def _record(self, epoch: int, lr: float, loss: float, n: int) -> dict:
        """The epoch's record (accuracies on rank 0 only); keeps the best epoch's weights."""
        self._check_loss(loss, f"epoch {epoch}")
        cfg, device, data = self.cfg, self.device, self.data
        measure = epoch_splits(cfg.evaluate, bool(len(data.val))) if self.rank == 0 else frozenset()
        head = data.train_head(cfg.train_acc_images)
        record = {
            "phase": "sgd",
            "epoch": epoch,
            "lr": lr,
            "loss": loss,
            "train_acc": _accuracy(self.module, head.x, head.y, device) if "train" in measure else None,
            "val_acc": _accuracy(self.module, data.val.x, data.val.y, device) if "val" in measure else None,
            "test_acc": _accuracy(self.module, data.test.x, data.test.y, device) if "test" in measure else None,
            "seconds": self.seconds,
            "images_per_s": n / self.seconds,
        }
        if cfg.train_acc_images:
            record["train_acc_images"] = len(head)
        score, best = _score(record), None if self.best is None else _score(self.best)
        if score is not None and (best is None or score > best):
            self.best, self.best_state = record, _cpu(self.module.state_dict())
        return record


def _score(record: dict) -> float | None:
    """What keep_best ranks epochs by: the validation accuracy, else the training accuracy."""
    return record["val_acc"] if record["val_acc"] is not None else record["train_acc"]


class _Batches:
    """The training inputs on the device and the per-epoch draws: order, mirror flips, crop offsets."""

    def __init__(self, data, cfg, device: torch.device):
        self.cfg = cfg
        self.x = torch.from_numpy(data.train.x).to(device)
        self.y = torch.from_numpy(data.train.y).to(device)
        self.n, self.device = len(self.x), device
        self.x_mirrored = None  # with hflip: the inputs of the mirrored images (None: flip the images themselves)
        if cfg.crop_padding and (self.x.ndim != 4 or data.train_mirrored is not None):
            raise HebbcoreError(
                f"sgd.crop_padding: the SGD phase's inputs must be images (N, C, H, W), not features of frozen "
                f"layers (shape {tuple(self.x.shape)[1:]}); crop before those layers or set crop_padding = 0"
            )
        if cfg.hflip:
            if data.train_mirrored is not None:
                self.x_mirrored = torch.from_numpy(data.train_mirrored.x).to(device)
            else:
                check_hflip_inputs(tuple(self.x.shape))

    def draw(self, gen: torch.Generator) -> _Draws:
        """One epoch's random draws, in a fixed order from ``gen`` (so a resumed epoch draws the same)."""
        n, pad, dev = self.n, self.cfg.crop_padding, self.device
        order = torch.randperm(n, generator=gen).to(dev)
        mirror = (torch.rand(n, generator=gen) < 0.5).to(dev) if self.cfg.hflip else None
        crop = torch.randint(0, 2 * pad + 1, (n, 2), generator=gen).to(dev) if pad else None
        return _Draws(order, mirror, crop)

    def inputs(self, draws: _Draws, idx: torch.Tensor) -> torch.Tensor:
        """The batch ``idx``, mirrored and cropped as drawn."""
        xb = self.x[idx]
        if draws.mirror is not None:
            flip = draws.mirror[idx].view((-1,) + (1,) * (xb.ndim - 1))
            xb = torch.where(flip, self.x_mirrored[idx] if self.x_mirrored is not None else xb.flip(-1), xb)
        if draws.crop is not None:
            xb = random_crops(xb, draws.crop[idx], self.cfg.crop_padding)
        return _layout(xb)


@dataclass(frozen=True)
class _Draws:
    order: torch.Tensor
    mirror: torch.Tensor | None
    crop: torch.Tensor | None


def random_crops(x: torch.Tensor, offsets: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image of ``x`` ``(N, C, H, W)``, zero-padded by ``padding``, cropped back to ``H × W`` at its
    ``offsets[i] = (top, left)`` in ``[0, 2·padding]``."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding,) * 4)
    rows = offsets[:, :1] + torch.arange(h, device=x.device)
    cols = offsets[:, 1:] + torch.arange(w, device=x.device)
    i, ch = torch.arange(n, device=x.device), torch.arange(c, device=x.device)
    return padded[i[:, None, None, None], ch[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]


def _cpu(state: dict) -> dict:
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def train_sgd(
    net: Network, data, seed: int, on_epoch: Callable[[dict], None] | None = None, progress: bool | None = None
) -> dict:
    """Run a whole SGD phase (no checkpoints); returns the best epoch's record."""
    return SgdPhase(net, data, seed).run(on_epoch=on_epoch, progress=progress)
