"""The virtual agent's contacts with no I/O: its events look like the contract's samples, and
any sequence of requests and simulated parties produces only valid envelopes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import protocol
from bridge.protocol import Kind
from bridge.protocol.catalog import Catalog
from bridge.sim.agent_model import AgentModel, Answer, Failure
from bridge.sim.contacts import CALL_REQUESTS, QuickConnect, Switchboard

from .helpers import SAMPLES

CATALOG = Catalog.load()
CONTACT = "9b1f3a52-7c44-4f0e-b0a1-3d2e8c6f5a10"
START = datetime(2026, 11, 28, 10, 0, 0, 120_000, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def at(self, text: str) -> None:
        self.now = datetime.fromisoformat(text)


def sample(name: str) -> dict[str, Any]:
    return orjson.loads((SAMPLES / "calls" / name).read_bytes())


def switchboard(clock: Clock) -> Switchboard:
    board = Switchboard(AgentModel("agent1", clock=clock), ids=lambda: CONTACT)
    board.queue = sample("01-ringing.event.json")["message"]["call"]["queue"]
    return board


def envelope(answer: Answer, reply_to: str | None = None) -> dict[str, Any]:
    return protocol.event(answer.kind, answer.message, reply_to=reply_to)


def like_sample(ours: dict[str, Any], name: str) -> None:
    """Equal to the sample, but for each connection's ``since`` (the samples stamp every
    connection with the contact's time; ours is when that connection's status changed)."""
    theirs = sample(name)
    for event in (ours, theirs):
        for connection in event["message"]["call"]["connections"]:
            connection.pop("since")
    assert ours == theirs


def test_one_inbound_call_looks_like_the_samples() -> None:
    clock = Clock()
    board = switchboard(clock)
    rung = board.ring("+15555550123", {"CustomerId": "C-20411", "Reason": "billing"})
    assert rung is not None
    like_sample(envelope(rung[0]), "01-ringing.event.json")
    assert rung[1].message["event"] == "PendingBusy"

    clock.at("2026-11-28T10:00:04.310Z")
    answered = board.handle(protocol.ANSWER)
    assert isinstance(answered, list)
    like_sample(envelope(answered[0], "a-1"), "03-connected.event.json")
    assert answered[1].message["event"] == "Busy"

    clock.at("2026-11-28T10:01:10.004Z")
    held = board.handle(protocol.HOLD, sample("04-Hold.request.json")["data"])
    assert isinstance(held, list) and len(held) == 1
    like_sample(envelope(held[0], "h-1"), "05-hold.event.json")

    clock.at("2026-11-28T10:02:00.000Z")
    assert isinstance(board.handle(protocol.RESUME, sample("06-Resume.request.json")["data"]), list)
    assert isinstance(board.handle(protocol.SEND_DTMF, "1234#"), list)

    clock.at("2026-11-28T10:03:00.500Z")
    acw = board.handle(protocol.DISCONNECT)
    assert isinstance(acw, list)
    like_sample(envelope(acw[0], "x-1"), "09-acw.event.json")
    assert acw[1].message["event"] == "AfterCallWork"

    clock.at("2026-11-28T10:03:20.000Z")
    dropped = board.handle(protocol.CLEAR_CONTACT)
    assert isinstance(dropped, list)
    like_sample(envelope(dropped[0], "c-1"), "11-dropped.event.json")
    assert dropped[1].message["event"] == "Available"
    assert board.contacts == {}


def test_state_sync_and_quick_connects_look_like_the_samples() -> None:
    clock = Clock()
    board = switchboard(clock)
    board.ring("+15555550123", {"CustomerId": "C-20411", "Reason": "billing"})
    clock.at("2026-11-28T10:00:04.310Z")
    board.handle(protocol.ANSWER)
    synced = board.handle(protocol.INBOUND_CALL_STATE_SYNC)
    assert isinstance(synced, list)
    ours = envelope(synced[0], "s-1")
    theirs = sample("16-StateSync.event.json")
    for event in (ours, theirs):
        for connection in event["message"]["calls"][0]["connections"]:
            connection.pop("since")
    assert ours == theirs

    board.quick_connects = (
        QuickConnect("Billing queue", "queue", f"{'/'.join(theirs_arn().split('/')[:-1])}/aa11"),
        QuickConnect("Front desk", "phone_number", theirs_arn(), "+18005550111"),
    )
    listed = board.handle(protocol.GET_QUICK_CONNECTS)
    assert isinstance(listed, list)
    assert envelope(listed[0], "q-1") == sample("17-GetQuickConnects.event.json")


def theirs_arn() -> str:
    return str(sample("17-GetQuickConnects.event.json")["message"]["endpoints"][1]["endpointARN"])


def test_quick_connects_from_the_command_line() -> None:
    desk = QuickConnect.parse("Front desk=+18005550111")
    assert (desk.type, desk.phone_number) == ("phone_number", "+18005550111")
    assert desk.endpoint_arn == QuickConnect.parse("Front desk=+18005550111").endpoint_arn  # stable
    assert QuickConnect.parse("Billing=queue").type == "queue"
    for bad in ("nobody", "=queue", "Desk=555"):
        with pytest.raises(ValueError):
            QuickConnect.parse(bad)


# ----- any sequence ------------------------------------------------------------------------------

DATA: dict[str, list[Any]] = {
    "Answer": [None], "Reject": [None], "Hold": [None], "Resume": [None], "Disconnect": [None],
    "SetMakeCall": ["+16013261548"], "SendDTMF": ["12#"], "ClearContact": [None],
    "Consult": ["+18005550111"], "Conference": [None], "Swap": [None], "Transfer": ["+18005550111"],
    "GetQuickConnects": [None], "StateSync": [None],
}
STEPS = st.lists(
    st.one_of(
        st.sampled_from(CALL_REQUESTS).map(lambda kind: ("request", kind)),
        st.sampled_from(["ring", "customer", "third", "timers", "not_ready", "tick"]).map(lambda s: (s, None)),
    ),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(STEPS)
def test_any_sequence_produces_only_valid_envelopes(steps: list[tuple[str, Kind | None]]) -> None:
    clock = Clock()
    board = Switchboard(AgentModel("agent1", clock=clock))
    for step, kind in steps:
        events: list[Answer] = []
        if step == "request" and kind is not None:
            outcome = board.handle(kind, DATA[kind.subtopic][0])
            if isinstance(outcome, Failure):
                error = protocol.error(outcome.error_type, outcome.error_message, channel="Amazon",
                                       request=kind, reply_to="r")
                assert CATALOG.validate(error) is None
            else:
                events = outcome
        elif step == "ring":
            events = board.ring() or []
        elif step == "customer":
            events = board.customer_hangs_up()
        elif step == "third":
            events = board.third_party_hangs_up()
        elif step == "timers":
            for timer in sorted(board.timers()):
                events += board.timer_fired(timer)
        elif step == "not_ready":
            answer = board.model.set_not_ready("Break")
            assert isinstance(answer, Answer)
            events = [answer]
        else:
            clock.now += timedelta(seconds=1.5)
        for answer in events:
            assert CATALOG.validate(orjson.loads(orjson.dumps(envelope(answer)))) is None
        # The agent shows a system state exactly while it has contacts; every contact it
        # still has is live (a contact's last event, Dropped, removes it).
        assert board.model.on_call == bool(board.contacts)
        assert all(c.event != "Dropped" for c in board.contacts.values())
