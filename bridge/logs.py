"""Logging that an attacker cannot flood: the same line, repeated, is written a few times, then counted.

A hub under attack sees the same event thousands of times a second (a refused
handshake, a client too slow to read). Written each time, that fills disks
and drowns what matters. :class:`RepeatLimiter` lets each kind of line (its
logger, level and message template, so lines that differ only in a client's
address count as one kind) through ``burst`` times per ``window`` seconds,
and then reports how many it held back with the next line of that kind that
passes.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

#: Lines of one kind written per window before the rest are counted instead.
BURST: Final = 10
#: Seconds in a window.
WINDOW: Final = 60.0
#: Kinds of line remembered at once (the least recently seen is forgotten first).
MAX_KINDS: Final = 1024


@dataclass(slots=True)
class _Window:
    started: float
    passed: int = 0
    held: int = 0


class RepeatLimiter(logging.Filter):
    """A filter for a log handler: at most ``burst`` lines of a kind per ``window`` seconds."""

    def __init__(
        self,
        burst: int = BURST,
        window: float = WINDOW,
        *,
        max_kinds: int = MAX_KINDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.max_kinds = max_kinds
        self.clock = clock
        self._kinds: OrderedDict[tuple[str, int, str], _Window] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        window = self._kinds.get(key)
        if window is None:
            window = self._kinds[key] = _Window(now)
            if len(self._kinds) > self.max_kinds:
                self._kinds.popitem(last=False)
        else:
            self._kinds.move_to_end(key)
            if now - window.started >= self.window:
                if window.held:
                    # Said once, with the next line of its kind: how much was held back.
                    record.msg = f"{record.msg} [{window.held} more like this in the last {self.window:g} s]"
                window.started, window.passed, window.held = now, 0, 0
        if window.passed < self.burst:
            window.passed += 1
            return True
        window.held += 1
        return False


def limit_repeats(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RepeatLimiter` on every handler of ``logger`` (the root logger by default)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RepeatLimiter) for f in handler.filters):
            handler.addFilter(RepeatLimiter())
