"""The log under attack: the same line repeated is written a few times per minute, then counted."""

from __future__ import annotations

import logging

from bridge.logs import RepeatLimiter, limit_repeats


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(msg: str, *args: object, name: str = "websockets.server", level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_a_repeated_line_is_written_a_few_times_then_counted() -> None:
    clock = Clock()
    limiter = RepeatLimiter(burst=3, window=60, clock=clock)
    # 1,000 refused handshakes from as many addresses: one kind of line.
    passed = [limiter.filter(record("opening handshake failed from %s", f"10.0.0.{n}")) for n in range(1000)]
    assert passed.count(True) == 3 and passed[:3] == [True] * 3
    # Another kind of line is not held back by the first.
    assert limiter.filter(record("closing %s: too slow to read", "c-1", name="bridge.server", level=logging.WARNING))
    # A minute later the next one passes and says how many were held back.
    clock.now = 60
    line = record("opening handshake failed from %s", "10.0.0.1")
    assert limiter.filter(line)
    assert line.getMessage() == "opening handshake failed from 10.0.0.1 [997 more like this in the last 60 s]"


def test_the_kinds_remembered_are_bounded() -> None:
    limiter = RepeatLimiter(burst=1, max_kinds=100)
    for n in range(10_000):  # made-up templates, as a client could never cause, still bounded
        limiter.filter(record(f"line {n}"))
    assert len(limiter._kinds) == 100


def test_limit_repeats_is_put_on_every_handler_once() -> None:
    logger = logging.getLogger("bridge.test_logs")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        limit_repeats(logger)
        limit_repeats(logger)
        assert [type(f) for f in handler.filters] == [RepeatLimiter]
    finally:
        logger.removeHandler(handler)
