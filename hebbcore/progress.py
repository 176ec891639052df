"""The progress bar of an epoch on a terminal (tqdm), silent where stderr is not one (the runner then prints one
line per epoch instead)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Progress(Generic[T]):
    """Wrap the batches of an epoch; on a TTY, tqdm draws ``desc 37%|####  | 231/625 [00:04<00:07, 1234 img/s]``.

    ``postfix`` (a dict) is shown after the bar, e.g. the last epoch's accuracy.
    """

    def __init__(
        self,
        iterable: Iterable[T],
        total: int,
        desc: str = "",
        unit_scale: int = 1,
        enabled: bool | None = None,
        stream: Any = None,
        postfix: dict | None = None,
    ):
        self.iterable, self.total, self.desc, self.unit_scale = iterable, total, desc, unit_scale
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.postfix = postfix or {}

    def __iter__(self) -> Iterator[T]:
        if not self.enabled:
            yield from self.iterable
            return
        from tqdm import tqdm

        bar = tqdm(self.iterable, total=self.total, desc=self.desc, unit="img", unit_scale=self.unit_scale,
                   file=self.stream, leave=False, dynamic_ncols=True, postfix=self.postfix or None)  # fmt: skip
        yield from bar
