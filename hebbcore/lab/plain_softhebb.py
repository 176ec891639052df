"""SoftHebb's CIFAR-10 network and its Hebbian step written the plain way, for the bench to compare against.

This is the straightforward PyTorch code a researcher would write from the published formula (Journé et al.,
ICLR 2023, and the authors' demo.py): NCHW tensors, no autograd, per layer one convolution for the response and
one convolution of the transposed input and output for the weight update. It is not used by the library; the
bench times it beside hebbcore's step of the same network (``experiments/presets/softhebb_cifar10.toml``) and
``tests/test_plain_softhebb.py`` checks that both make the same update.

Per block: affine-free batch norm (batch statistics), reflect padding, ``u = conv(x, w)``, then the update

    y = softmax(u / T) over the kernels, y' = +y for the winner and -y for the others,
    D = Σ_{n,p} y'·patch − (Σ_{n,p} y'·u)·w,   Δw = lr · (|‖w‖ − 1| + 1e-10)^power · D / max|D|,

and the response ``pool(triangle(u))`` goes up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Block:
    """One SoftHebb block: its conv (weights, padding, temperature, rate) and what follows it."""

    padding: int
    temperature: float
    lr: float
    triangle: float
    pool: str  # "max" (kernel 4, stride 2, padding 1) or "avg" (kernel 2, stride 2)


#: The authors' demo network: blocks of 96, 384 and 1536 kernels.
DEMO_BLOCKS = (
    Block(padding=2, temperature=1.0, lr=0.08, triangle=0.7, pool="max"),
    Block(padding=1, temperature=1 / 0.65, lr=0.005, triangle=1.4, pool="max"),
    Block(padding=1, temperature=4.0, lr=0.01, triangle=1.0, pool="avg"),
)


class PlainSoftHebb:
    """The network's weights (``weights[i]``: block i's kernels, ``(K, C, kh, kw)``) and batch-norm statistics."""

    def __init__(self, weights: list[torch.Tensor], blocks=DEMO_BLOCKS, power_lr: float = 0.5):
        self.weights = [w.clone() for w in weights]
        self.blocks, self.power_lr = blocks, power_lr
        self.running = [(torch.zeros(w.shape[1]), torch.ones(w.shape[1])) for w in weights]

    @torch.no_grad()
    def step(self, x: torch.Tensor) -> None:
        """One Hebbian step of every block on the batch ``x`` ``(N, 3, 32, 32)``, bottom-up."""
        for i, (w, block) in enumerate(zip(self.weights, self.blocks, strict=True)):
            mean, var = self.running[i]
            x = F.batch_norm(x, mean, var, training=True, momentum=0.1)  # affine-free, batch statistics
            x = F.pad(x, (block.padding,) * 4, mode="reflect")
            u = F.conv2d(x, w)
            y = torch.softmax(u / block.temperature, dim=1)
            winner = F.one_hot(u.argmax(dim=1), u.shape[1]).permute(0, 3, 1, 2).bool()
            y = torch.where(winner, y, -y)
            yx = F.conv2d(x.transpose(0, 1), y.transpose(0, 1)).transpose(0, 1)  # Σ y'·patch: (K, C, kh, kw)
            yu = (y * u).sum(dim=(0, 2, 3))
            d = yx - yu.view(-1, 1, 1, 1) * w
            d = d / (d.abs().max() + 1e-30)
            rate = (w.flatten(1).norm(dim=1) - 1.0).abs().add(1e-10).pow(self.power_lr)
            w.add_(block.lr * rate.view(-1, 1, 1, 1) * d)
            h = torch.relu(u - u.mean(dim=1, keepdim=True)) ** block.triangle
            if block.pool == "max":
                x = F.max_pool2d(h, 4, 2, padding=1)
            else:
                x = F.avg_pool2d(h, 2, 2)
