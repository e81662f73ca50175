"""The log: under attack, the same line repeated is written a few times per minute, then counted; the
text and JSON formats, their fields, and no token in either."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from bridge.logs import (
    JsonFormatter,
    RepeatLimiter,
    TextFormatter,
    configure,
    fields,
    limit_repeats,
    redact,
    use_format,
)


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


def test_a_flood_of_one_event_does_not_hide_another_with_the_same_message() -> None:
    limiter = RepeatLimiter(burst=2, window=60, clock=Clock())

    def closed(event: str) -> logging.LogRecord:
        line = record("closed a connection", name="bridge.events", level=logging.WARNING)
        line.__dict__.update(fields(event=event, remote="10.0.0.1"))
        return line

    assert [limiter.filter(closed("slow_consumer_close")) for _ in range(100)].count(True) == 2
    # The provider takeover after a storm of slow clients is still written.
    assert limiter.filter(closed("provider_replaced"))


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


# ----- the two formats --------------------------------------------------------------------------

TOKEN = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudDEifQ.c2lnbmF0dXJlLW9mLWEtdG9rZW4"


def event_record(text: str = "refused a Hello", **values: object) -> logging.LogRecord:
    return logging.getLogger("bridge.events").makeRecord(
        "bridge.events", logging.WARNING, __file__, 1, text, (), None, extra=fields(**values)
    )


def test_text_is_todays_line_with_the_fields_as_key_value() -> None:
    line = TextFormatter().format(event_record(event="hello_refused", agent="agent1", role=None, code=1008,
                                               reason="token expired", public=True))
    head, fields_part = line.split(" WARNING bridge.events: refused a Hello ")
    assert head.count(":") == 2  # today's time stamp first
    assert fields_part == 'event=hello_refused agent=agent1 code=1008 reason="token expired" public=true'


def test_a_value_a_client_chose_cannot_forge_a_line_or_a_field() -> None:
    line = TextFormatter().format(event_record(source="tab\n2026-01-01 00:00:00 ERROR x: y", agent="a b=c"))
    assert "\n" not in line
    assert 'source="tab\\n2026-01-01 00:00:00 ERROR x: y"' in line and 'agent="a b=c"' in line


def test_json_is_one_object_per_line_with_time_level_logger_message_and_the_fields() -> None:
    line = JsonFormatter().format(event_record(event="flood_close", agent="agent1", role=None, code=1008,
                                               message="a field named like a key"))
    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["time"].endswith("Z") and "T" in parsed["time"]
    assert (parsed["level"], parsed["logger"], parsed["message"]) == ("WARNING", "bridge.events", "refused a Hello")
    assert (parsed["event"], parsed["agent"], parsed["role"], parsed["code"]) == ("flood_close", "agent1", None, 1008)
    assert parsed["field_message"] == "a field named like a key"  # never replaces the line's own


def test_json_writes_a_traceback_as_one_string() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("bridge.node", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    parsed = orjson.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in parsed["exception"] and parsed["message"] == "failed"


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()])
def test_no_format_writes_a_token(formatter: logging.Formatter) -> None:
    record = event_record(f"a library quoted {TOKEN}", reason=f"bad: {TOKEN}", agent="agent1")
    line = formatter.format(record)
    assert TOKEN not in line and TOKEN.split(".")[2] not in line
    assert "[token]" in line and "agent1" in line
    assert redact("no token here: eyJ alone") == "no token here: eyJ alone"


def test_use_format_keeps_the_repeat_limiter_and_leaves_foreign_handlers_alone() -> None:
    logger = logging.getLogger("bridge.test_logs.formats")
    ours = logging.StreamHandler()
    ours.setFormatter(TextFormatter())
    ours.addFilter(RepeatLimiter())
    foreign = logging.NullHandler()
    theirs = logging.Formatter("%(message)s")
    foreign.setFormatter(theirs)
    logger.addHandler(ours)
    logger.addHandler(foreign)
    try:
        use_format("json", logger)
        assert isinstance(ours.formatter, JsonFormatter) and foreign.formatter is theirs
        assert [type(f) for f in ours.filters] == [RepeatLimiter]
        with pytest.raises(ValueError, match="unknown log format 'xml'"):
            use_format("xml", logger)
    finally:
        logger.removeHandler(ours)
        logger.removeHandler(foreign)


def test_configure_keeps_a_programs_own_handlers() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    assert before  # pytest's own, here
    configure(logging.WARNING)
    assert root.handlers == before


@pytest.mark.parametrize(("args", "env"), [(["--log-format", "xml"], {}), ([], {"BRIDGE_LOG_FORMAT": "xml"})])
def test_serve_takes_only_the_two_formats(args: list[str], env: dict[str, str]) -> None:
    from click.testing import CliRunner

    from bridge.cli.main import main

    result = CliRunner().invoke(main, ["serve", "--open", *args], env=env)
    assert result.exit_code == 2, result.output
    assert "'--log-format'" in result.output and "'xml' is not one of 'text', 'json'" in result.output


def test_a_refused_hello_is_described_by_its_claims_whatever_it_holds() -> None:
    from bridge.hub.events import claimed
    from bridge.protocol.tokens import issue_token

    signed = issue_token("some-other-hubs-secret-long-enough-for-hs256", agent="agent7", role="provider")

    def hello_with(data: object, source: object = "crm") -> bytes:
        return orjson.dumps({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": source,
                             "data": data})

    assert claimed(hello_with({"role": "app", "token": signed})) == {"agent": "agent7", "role": "app",
                                                                      "source": "crm"}
    assert claimed(hello_with({"role": "app", "agent": "agent2"}))["agent"] == "agent2"
    for token in ("", "x", "a.b.c", "a.!!!.c", "a.W10.c", "e30.eyJzdWIiOjF9.c", signed + "." + signed):
        assert claimed(hello_with({"role": "app", "token": token}))["agent"] is None, token
    assert claimed(b"not JSON") == {"agent": None, "role": None}
    assert claimed(hello_with([1, 2], source=["x"])) == {"agent": None, "role": None, "source": None}
    assert len(claimed(hello_with({"role": "r" * 10_000}))["role"]) == 200
