"""The routing core in memory: no sockets, a fake clock."""

from __future__ import annotations

import orjson
import pytest

from bridge.hub.core.router import Answer, Close, Forward, Joined, Peer, Publish, Refused, Reply, Router
from bridge.protocol import CloseCode, Role
from bridge.protocol.catalog import Catalog
from bridge.protocol.tokens import issue_token

from .helpers import hello, sample_text, seed_event

SECRET = "router-test-secret-of-at-least-32-bytes"
APP = Peer("c-app", "agent1", Role.APP, "crm")
PROVIDER = Peer("c-prov", "agent1", Role.PROVIDER, "ccp")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def router(catalog: Catalog, clock: Clock) -> Router:
    ids = iter(f"h-{n}" for n in range(1000))
    return Router(catalog, secret=SECRET, request_timeout=10, clock=clock, request_ids=lambda: next(ids),
                  connection_ids=lambda: "c-new")


def error_of(output: object) -> dict:
    assert isinstance(output, Reply), output
    return orjson.loads(output.data)


def test_hello_with_a_valid_token_joins_the_tokens_agent(router: Router) -> None:
    result = router.hello(hello("app", token=issue_token(SECRET, agent="agent7", role="app")))
    assert result == Joined(Peer("c-new", "agent7", Role.APP, "test"))


@pytest.mark.parametrize(
    "frame, why",
    [
        ('{"channel":"Amazon","topic":"Agent","subtopic":"SetReady","source":"x"}', "first frame must be"),
        ("not json", "not JSON"),
        (hello("app"), "bad Hello"),
        (hello("app", agent="agent1"), "token is required"),
        (hello("app", token="abc"), "not valid"),
        (hello("app", token=issue_token("another-secret-entirely-32-bytes-long", agent="a", role="app")), "signature"),
        (hello("app", token=issue_token(SECRET, agent="a", role="provider")), "role provider, not app"),
        (hello("app", token=issue_token(SECRET, agent="a", role="app", ttl=-1)), "expired"),
    ],
)
def test_a_bad_hello_is_refused_and_closed(router: Router, frame: str, why: str) -> None:
    result = router.hello(frame)
    assert isinstance(result, Refused)
    reply, close = result.outputs
    err = error_of(reply)
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED"
    assert why in err["data"]["errorMessage"]
    assert close == Close(CloseCode.POLICY_VIOLATION, "Hello refused")


def test_open_mode_takes_the_agent_from_hello(catalog: Catalog) -> None:
    router = Router(catalog, secret=None, open_mode=True, connection_ids=lambda: "c-1")
    assert router.hello(hello("provider", agent="agent2")) == Joined(Peer("c-1", "agent2", Role.PROVIDER, "test"))
    assert isinstance(router.hello(hello("app", token="t")), Refused)


def test_a_request_without_id_is_forwarded_with_one_added(router: Router) -> None:
    [out] = router.receive(APP, sample_text("seed-SetNotReady.request.json"))
    assert isinstance(out, Forward) and out.agent == "agent1" and out.request_id == "h-0"
    forwarded = orjson.loads(out.data)
    assert forwarded["id"] == "h-0" and forwarded["data"] == {"ReasonCodeId": "Not Ready"}
    assert ("agent1", "h-0") in router.pending


def test_a_request_with_id_is_forwarded_byte_for_byte(router: Router) -> None:
    text = sample_text("Mute.request.json")
    [out] = router.receive(APP, text)
    assert isinstance(out, Forward) and out.data == text.encode() and out.request_id == "req-17"


def test_an_id_already_in_flight_for_the_agent_is_refused(router: Router) -> None:
    text = sample_text("Mute.request.json")
    router.receive(APP, text)
    err = error_of(router.receive(Peer("c-2", "agent1", Role.APP, "x"), text)[0])
    assert err["data"]["errorType"] == "DUPLICATE_REQUEST_ID" and err["replyTo"] == "req-17"
    # Another agent may use the same id.
    [out] = router.receive(Peer("c-3", "agent2", Role.APP, "x"), text)
    assert isinstance(out, Forward)


def test_set_agent_state_is_published_and_retained(router: Router) -> None:
    text = sample_text("seed-SetAgentState.event.json")
    [out] = router.receive(PROVIDER, text)
    assert out == Publish("agent1", text.encode(), None, retain=True)


def test_other_events_are_published_not_retained(router: Router) -> None:
    frame = orjson.dumps({"channel": "Amazon", "topic": "Agent", "subtopic": "GetStates", "replyTo": "r1",
                          "message": {"states": [{"label": "Break", "code": "arn:x", "type": "not_routable"}]}})
    [out] = router.receive(PROVIDER, frame)
    assert out == Publish("agent1", frame, "r1", retain=False)


def test_a_provider_error_goes_to_the_requester_only(router: Router) -> None:
    text = sample_text("ApiError.error.json")
    [out] = router.receive(PROVIDER, text)
    assert out == Answer("agent1", "req-18", text.encode())


def test_a_provider_error_answering_nothing_is_dropped(router: Router) -> None:
    err = orjson.loads(sample_text("ApiError.error.json"))
    del err["replyTo"]
    assert router.receive(PROVIDER, orjson.dumps(err)) == []


@pytest.mark.parametrize(
    "peer, frame, error_type",
    [
        (APP, sample_text("seed-SetAgentState.event.json"), "FORBIDDEN"),
        (APP, sample_text("ApiError.error.json"), "FORBIDDEN"),
        (PROVIDER, sample_text("seed-SetNotReady.request.json"), "FORBIDDEN"),
        (APP, sample_text("Welcome.event.json"), "FORBIDDEN"),
        (APP, hello("app", agent="x"), "FORBIDDEN"),
        (APP, '{"channel":"Amazon","topic":"Agent","subtopic":"setnotready","source":"x"}', "UNKNOWN_MESSAGE"),
        (APP, "[1, 2]", "INVALID_ENVELOPE"),
        (APP, '{"channel":"Amazon","topic":5,"subtopic":"SetReady"}', "INVALID_ENVELOPE"),
        (APP, "{", "INVALID_JSON"),
    ],
)
def test_refused_frames_get_the_documented_error(router: Router, peer: Peer, frame: str, error_type: str) -> None:
    [out] = router.receive(peer, frame)
    assert error_of(out)["data"]["errorType"] == error_type
    assert len(router.pending) == 0


def test_requests_time_out_on_the_clock(router: Router, clock: Clock) -> None:
    router.receive(APP, sample_text("Mute.request.json"))
    clock.now += 9.9
    assert router.timeouts() == []
    clock.now += 0.2
    [(connection_id, data)] = router.timeouts()
    err = orjson.loads(data)
    assert connection_id == "c-app"
    assert err["data"]["errorType"] == "REQUEST_TIMEOUT" and err["replyTo"] == "req-17"
    assert err["data"]["request"] == {"channel": "Amazon", "topic": "Agent", "subtopic": "Mute"}
    assert len(router.pending) == 0


def test_an_answered_request_does_not_time_out(router: Router, clock: Clock) -> None:
    router.receive(APP, sample_text("Mute.request.json"))
    assert router.pending.pop("agent1", "req-17") is not None
    clock.now += 60
    assert router.timeouts() == []


def test_a_vanished_provider_fails_what_was_handed_to_it(router: Router) -> None:
    router.receive(APP, sample_text("Mute.request.json"))
    router.pending.get("agent1", "req-17").provider = "c-prov"  # type: ignore[union-attr]
    assert router.provider_changed("agent1", "c-prov") == []  # the same provider: nothing lost
    [(_, data)] = router.provider_changed("agent1", None)
    assert orjson.loads(data)["data"]["errorType"] == "PROVIDER_UNAVAILABLE"


def test_the_events_replyto_is_an_answer_not_part_of_routing(router: Router) -> None:
    [out] = router.receive(PROVIDER, orjson.dumps(seed_event("nobody-asked")))
    assert isinstance(out, Publish) and out.reply_to == "nobody-asked"


def test_a_rate_limited_frame_is_answered_with_its_id(router: Router) -> None:
    err = error_of(router.rate_limited(sample_text("Mute.request.json"), "50 frames/s"))
    assert err["data"]["errorType"] == "RATE_LIMITED" and err["replyTo"] == "req-17"
    assert "replyTo" not in error_of(router.rate_limited(b"\xff not json", "50 frames/s"))


def test_a_binary_frame_is_refused_then_closed(router: Router) -> None:
    reply, close = router.binary_frame()
    assert error_of(reply)["data"]["errorType"] == "INVALID_ENVELOPE"
    assert isinstance(close, Close) and close.code == CloseCode.POLICY_VIOLATION
