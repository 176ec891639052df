"""``synthetic``: oriented colour gratings, a small labelled image task made on the fly.

Class ``c`` is a grating at orientation ``c·π/n_classes`` with a class-specific
colour mix, random phase and additive Gaussian noise. Nothing is downloaded, so
it serves the README's first command and the end-to-end tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hebbcore.interfaces import DataInfo, Dataset, DataSource, Split


@dataclass(frozen=True)
class SyntheticOptions:
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 500
    n_classes: int = 10
    size: int = 16
    channels: int = 3
    noise: float = 0.5


def make_gratings(n: int, opts: SyntheticOptions, rng: np.random.Generator) -> Split:
    labels = rng.integers(0, opts.n_classes, size=n)
    theta = labels * np.pi / opts.n_classes
    phase = rng.uniform(0, 2 * np.pi, size=n)
    freq = 0.15 + 0.1 * (labels % 3) / 2
    yy, xx = np.mgrid[0 : opts.size, 0 : opts.size].astype(np.float32)
    arg = xx[None] * np.cos(theta)[:, None, None] + yy[None] * np.sin(theta)[:, None, None]
    wave = np.sin(2 * np.pi * freq[:, None, None] * arg + phase[:, None, None])
    colour_table = np.random.default_rng(1234).uniform(0.3, 1.0, size=(opts.n_classes, opts.channels))
    x = wave[:, None] * colour_table[labels][:, :, None, None]
    x = x + opts.noise * rng.standard_normal(x.shape)
    return Split(x.astype(np.float32), labels.astype(np.int64))


class SyntheticGratings(DataSource):
    name = "synthetic"
    Options = SyntheticOptions

    @classmethod
    def check(cls, options: SyntheticOptions) -> list[str]:
        problems = [
            f"{k}: expected >= {lo}, got {getattr(options, k)}"
            for k, lo in (("n_train", 1), ("n_val", 0), ("n_test", 0), ("n_classes", 1), ("size", 1), ("channels", 1))
            if getattr(options, k) < lo
        ]
        if options.noise < 0:
            problems.append(f"noise: expected >= 0, got {options.noise}")
        return problems

    @classmethod
    def describe(cls, options: SyntheticOptions) -> DataInfo:
        return DataInfo(
            (options.channels, options.size, options.size),
            options.n_classes,
            options.n_train + options.n_val + options.n_test,
        )

    def load(self, options: SyntheticOptions, seed: int) -> Dataset:
        rng = np.random.default_rng(seed)
        return Dataset(
            name="synthetic",
            train=make_gratings(options.n_train, options, rng),
            val=make_gratings(options.n_val, options, rng),
            test=make_gratings(options.n_test, options, rng),
            n_classes=options.n_classes,
            class_names=tuple(f"orientation{c}" for c in range(options.n_classes)),
        )
