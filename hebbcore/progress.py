"""A dependency-free progress bar that stays silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Progress(Generic[T]):
    """Wrap an iterable; draws ``desc  37/625 [####    ]  1234 img/s`` on a TTY."""

    def __init__(
        self,
        iterable: Iterable[T],
        total: int,
        desc: str = "",
        unit_scale: int = 1,
        enabled: bool | None = None,
        stream=None,
    ):
        self.iterable = iterable
        self.total = total
        self.desc = desc
        self.unit_scale = unit_scale
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.postfix = ""

    def __iter__(self) -> Iterator[T]:
        start = last = time.perf_counter()
        for i, item in enumerate(self.iterable, 1):
            yield item
            now = time.perf_counter()
            if self.enabled and (now - last > 0.2 or i == self.total):
                last = now
                rate = i * self.unit_scale / max(now - start, 1e-9)
                width = 24
                filled = int(width * i / max(self.total, 1))
                self.stream.write(
                    f"\r{self.desc} {i}/{self.total} [{'#' * filled}{' ' * (width - filled)}]"
                    f" {rate:,.0f} img/s {self.postfix}\x1b[K"
                )
                self.stream.flush()
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
