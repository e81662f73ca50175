"""Logging that an attacker cannot flood: the same line, repeated, is written a few times, then counted.

A hub under attack sees the same event thousands of times a second (a refused
handshake, a client too slow to read). Written each time, that fills disks
and drowns what matters. :class:`RepeatLimiter` lets each kind of line (its
logger, level and message template, so lines that differ only in a client's
address count as one kind) through ``burst`` times per ``window`` seconds,
and then reports how many it held back with the next line of that kind that
passes.

It also writes the lines, in one of two formats (``serve --log-format``):
``text``, a line for a person with the structured fields as ``key=value`` at
the end, or ``json``, one object per line for a log pipeline. Fields are
given with :func:`fields`; neither format ever writes a token (:func:`redact`).
"""

from __future__ import annotations

import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

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
        self._kinds: OrderedDict[tuple[str, int, str, str], _Window] = OrderedDict()

    def filter(self, record: logging.LogRecord) -> bool:
        # The operator lines share a few fixed messages; their ``event`` field keeps a flood
        # of one kind (slow clients) from hiding another (a provider takeover).
        key = (record.name, record.levelno, str(record.msg), str(record_fields(record).get("event", "")))
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


# --- formats -------------------------------------------------------------------

#: The attribute of a log record that holds its structured fields (see :func:`fields`).
FIELDS_ATTRIBUTE: Final = "bridge_fields"
#: The formats ``serve --log-format`` takes.
FORMATS: Final = ("text", "json")
#: Today's text line; :class:`TextFormatter` appends the fields as ``key=value``.
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A JSON Web Token (three base64url parts, the first a JSON object's: ``eyJ``): never written.
_TOKEN = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: Text values written bare; any other is quoted (JSON string syntax), so no value can forge a field or a line.
_BARE = re.compile(r"[A-Za-z0-9_.:/@*+-]+")
_JSON_BASE: Final = ("time", "level", "logger", "message")


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call: structured fields, written as ``key=value`` (text) or keys (JSON).

    ``None`` values are left out of text lines and written as ``null`` in JSON.
    """
    return {FIELDS_ATTRIBUTE: values}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was logged with (empty for a plain line)."""
    found = getattr(record, FIELDS_ATTRIBUTE, None)
    return found if isinstance(found, dict) else {}


def redact(text: str) -> str:
    """``text`` with every JSON Web Token replaced by ``[token]``.

    No line the hub writes should hold a token; this is the net under that
    rule, for messages that quote what a client sent (a library's parse
    error, a schema's complaint).
    """
    return _TOKEN.sub("[token]", text) if "eyJ" in text else text


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if isinstance(value, bool):
        text = "true" if value else "false"
    return text if _BARE.fullmatch(text) else orjson.dumps(text).decode()


class TextFormatter(logging.Formatter):
    """The text line: time, level, logger, message, then the fields as ``key=value``.

    A value with anything but letters, digits and ``_.:/@*+-`` is quoted, so a
    name a client chose cannot start a new line or pass for another field.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={_text_value(value)}" for key, value in record_fields(record).items()
                         if value is not None)
        if extra:
            head, newline, rest = line.partition("\n")  # fields stay on the first line, before a traceback
            line = f"{head} {extra}{newline}{rest}"
        return redact(line)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the fields.

    A field named like one of the four is written as ``field_<name>`` rather
    than replacing it. A traceback, if any, is the ``exception`` string.
    """

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            line[f"field_{key}" if key in _JSON_BASE else key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return redact(orjson.dumps(line, default=str).decode())


def formatter(name: str) -> logging.Formatter:
    """The formatter of a format in :data:`FORMATS`; ``ValueError`` for any other."""
    if name == "text":
        return TextFormatter()
    if name == "json":
        return JsonFormatter()
    raise ValueError(f"unknown log format {name!r}: one of {', '.join(FORMATS)}")


def configure(level: int) -> None:
    """The command line's logging: one stderr handler in the text format, its repeats limited.

    Like :func:`logging.basicConfig`, it changes nothing when the root logger
    has handlers already (a program that embeds the commands keeps its own).
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(TextFormatter())
        root.addHandler(handler)
        root.setLevel(level)
    limit_repeats(root)  # a flood of refused clients must not flood the log


def use_format(name: str, logger: logging.Logger | None = None) -> None:
    """Write in format ``name`` with every handler of ``logger`` (the root by default) that :func:`configure` made.

    Handlers with a formatter of someone else's are left alone. Only the
    formatter changes: each handler keeps its filters, so its
    :class:`RepeatLimiter` still applies.
    """
    chosen = formatter(name)
    for handler in (logger or logging.getLogger()).handlers:
        if isinstance(handler.formatter, TextFormatter | JsonFormatter):
            handler.setFormatter(chosen)
