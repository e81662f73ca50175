"""The sans-I/O core in memory: no sockets, no broker, a fake clock.

Each test feeds the router what a node would (a Hello, a frame, a broker
publication, the passing of time, a departure) and checks the decisions it
returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.hub.core.outputs import (
    Answer,
    Attach,
    Claim,
    Close,
    Deadline,
    Deliver,
    Detach,
    Follow,
    Forget,
    Forward,
    Greet,
    Publish,
    Release,
    Send,
    Unfollow,
    Watch,
)
from bridge.hub.core.positions import At, Kept, Missed
from bridge.hub.core.router import Joined, Limits, Peer, ProviderPublication, Refused, Router, Snapshot
from bridge.protocol import CloseCode, Role
from bridge.protocol.catalog import Catalog
from bridge.protocol.retention import RetainDecision
from bridge.protocol.tokens import issue_token

from .helpers import hello, sample, sample_text, seed_event

SECRET = "router-test-secret-of-at-least-32-bytes"
STATE = "Amazon/Agent/SetAgentState"


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


def make_router(catalog: Catalog, clock: Clock, **kwargs: Any) -> Router:
    ids = iter(f"h-{n}" for n in range(1000))
    return Router(catalog, secret=SECRET, request_timeout=10, clock=clock, request_ids=lambda: next(ids), **kwargs)


@pytest.fixture
def router(catalog: Catalog, clock: Clock) -> Router:
    return make_router(catalog, clock)


def join(router: Router, connection_id: str, role: str, agent: str = "agent1", **snapshot: Any) -> Peer:
    """Join and greet a connection as the node would; return its peer."""
    result = router.hello(connection_id, hello(role, token=issue_token(SECRET, agent=agent, role=role)))
    assert isinstance(result, Joined), result
    router.greet(connection_id, {agent: Snapshot(snapshot.get("provider", False), [Kept(data) for data in snapshot.get("retained", [])])})
    return result.peer


@pytest.fixture
def app(router: Router) -> Peer:
    return join(router, "c-app", "app")


@pytest.fixture
def provider(router: Router) -> Peer:
    return join(router, "c-prov", "provider")


def error_of(output: object) -> dict[str, Any]:
    assert isinstance(output, Send) and output.error_type is not None, output
    return orjson.loads(output.data)


def frames(outputs: list[Any], connection_id: str) -> list[dict[str, Any]]:
    return [orjson.loads(o.data) for o in outputs if isinstance(o, Send) and o.connection_id == connection_id]


# --- joining ----------------------------------------------------------------------


def test_hello_with_a_valid_token_joins_the_tokens_agent(router: Router) -> None:
    result = router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent7", role="app")))
    assert isinstance(result, Joined)
    assert (result.peer.connection_id, result.peer.agents, result.peer.role) == ("c-1", ("agent7",), Role.APP)
    # The first connection of an agent makes the node follow it; then it is greeted.
    # The first connection of an agent makes the node follow it; then it is greeted, and its
    # token's expiry becomes a deadline.
    assert result.outputs == [Follow("agent7"), Greet("c-1", ("agent7",)), Deadline()]


def test_a_second_connection_of_the_agent_waits_for_the_same_follow(router: Router) -> None:
    join(router, "c-1", "app")
    result = router.hello("c-2", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    assert isinstance(result, Joined) and result.outputs == [Greet("c-2", ("agent1",)), Deadline()]


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
    result = router.hello("c-1", frame)
    assert isinstance(result, Refused)
    reply, close = result.outputs
    err = error_of(reply)
    assert err["data"]["errorType"] == "NOT_AUTHENTICATED"
    assert why in err["data"]["errorMessage"]
    assert close == Close("c-1", CloseCode.POLICY_VIOLATION, "Hello refused")
    assert router.peers == {} and len(router.rooms) == 0


def test_open_mode_takes_the_agent_from_hello(catalog: Catalog) -> None:
    router = Router(catalog, secret=None, open_mode=True)
    result = router.hello("c-1", hello("provider", agent="agent2"))
    assert isinstance(result, Joined) and result.peer.agents == ("agent2",) and result.peer.role is Role.PROVIDER
    assert isinstance(router.hello("c-2", hello("app", token="t")), Refused)


def test_an_app_is_greeted_with_welcome_status_and_retained_state_then_attached(router: Router) -> None:
    state = orjson.dumps(seed_event("r-1"))
    router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    outputs = router.greet("c-1", {"agent1": Snapshot(True, [Kept(state)])})
    welcome, status, retained = frames(outputs, "c-1")
    assert welcome["subtopic"] == "Welcome" and welcome["message"]["providerConnected"] is True
    assert status["message"] == {"connected": True} and status["retained"] is True
    assert retained["subtopic"] == "SetAgentState" and retained["retained"] is True and "replyTo" not in retained
    assert outputs[-1] == Attach("c-1", "agent1")


def test_events_published_while_an_app_joins_follow_its_replay(router: Router) -> None:
    """Nothing is lost at join: what arrives before the greeting is held, then sent after the replay."""
    router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    live = orjson.dumps(seed_event())
    # The node followed the agent; an event arrives before the snapshot is read.
    assert router.event("agent1", live, None) == [Deliver("agent1", live)]  # reaches attached apps only
    outputs = router.greet("c-1", {"agent1": Snapshot(False, [])})
    sent = [o.data for o in outputs if isinstance(o, Send)]
    assert sent[-1] == live  # after Welcome and ProviderStatus
    assert outputs[-1] == Attach("c-1", "agent1")
    # Once attached, nothing more is held for it.
    assert router.rooms.get("agent1").joining == {}  # type: ignore[union-attr]


def test_a_connection_that_left_while_being_greeted_gets_nothing(router: Router) -> None:
    router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    assert router.leave("c-1") == [Unfollow("agent1")]
    assert router.greet("c-1", {"agent1": Snapshot(False, [])}) == []


def test_app_connections_per_agent_are_capped_and_the_provider_always_gets_in(catalog: Catalog, clock: Clock) -> None:
    router = make_router(catalog, clock, limits=Limits(connections_per_agent=2))
    join(router, "c-1", "app")
    join(router, "c-2", "app")
    result = router.hello("c-3", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    assert isinstance(result, Refused)
    assert error_of(result.outputs[0])["data"]["errorType"] == "FORBIDDEN"
    join(router, "c-p", "provider")  # the apps never take the provider's place
    join(router, "c-p2", "provider")  # nor a newer provider's, which replaces it
    join(router, "c-4", "app", agent="agent2")  # another agent is not affected


def test_a_providers_answers_to_delivered_requests_skip_its_rate_limit(catalog: Catalog, clock: Clock) -> None:
    router = make_router(catalog, clock, limits=Limits(rate=1, burst=1, flood_close_after=2))
    provider = join(router, "c-p", "provider")
    mute = orjson.loads(sample_text("Mute.request.json"))
    for n in range(20):  # a burst the hub delivers, e.g. after a backplane stall
        mute["id"] = f"r-{n}"
        assert router.request("agent1", f"r-{n}", orjson.dumps(mute)) == [Send("c-p", orjson.dumps(mute))]
    for n in range(20):
        [out] = router.receive(provider, orjson.dumps(seed_event(f"r-{n}")))
        assert isinstance(out, Publish), out
    # Anything else still meets the limit: one frame passes, the next is refused, then the flood is closed.
    assert isinstance(router.receive(provider, orjson.dumps(seed_event()))[0], Publish)
    assert error_of(router.receive(provider, orjson.dumps(seed_event("r-0")))[0])["data"]["errorType"] == "RATE_LIMITED"
    [close] = router.receive(provider, orjson.dumps(seed_event()))
    assert isinstance(close, Close) and close.cause == "flooding"


def test_what_a_provider_is_owed_is_bounded(catalog: Catalog, clock: Clock) -> None:
    router = make_router(catalog, clock, limits=Limits(owed_answers=5))
    provider = join(router, "c-p", "provider")
    for n in range(50):
        router.request("agent1", f"r-{n}", sample_text("Mute.request.json").encode())
    assert provider.delivered is not None and list(provider.delivered) == [f"r-{n}" for n in range(45, 50)]


def test_a_provider_is_welcomed_and_claims_the_agent(router: Router) -> None:
    router.hello("c-p", hello("provider", token=issue_token(SECRET, agent="agent1", role="provider")))
    welcome, claim = router.greet("c-p", {"agent1": Snapshot(False, [])})
    assert isinstance(welcome, Send) and orjson.loads(welcome.data)["message"]["role"] == "provider"
    assert claim == Claim("agent1", "c-p")


def test_a_newer_provider_on_this_node_replaces_the_older_at_once(router: Router, provider: Peer) -> None:
    result = router.hello("c-p2", hello("provider", token=issue_token(SECRET, agent="agent1", role="provider")))
    assert isinstance(result, Joined)
    replaced, close, greet, _ = result.outputs
    assert isinstance(replaced, Send) and replaced.connection_id == "c-prov"
    assert orjson.loads(replaced.data)["message"] == {"connectionId": "c-p2"}
    assert close == Close("c-prov", CloseCode.REPLACED, "replaced by a newer provider")
    assert greet == Greet("c-p2", ("agent1",))
    # The replaced one's departure releases nothing: the agent's provider is the newer one.
    assert router.leave("c-prov") == []


def test_a_newer_provider_on_another_node_replaces_ours(router: Router, app: Peer, provider: Peer) -> None:
    outputs = router.provider_changed("agent1", ProviderPublication("c-elsewhere", up=True))
    assert Close("c-prov", CloseCode.REPLACED, "replaced by a newer provider") in outputs
    [status] = [o for o in outputs if isinstance(o, Deliver)]
    assert orjson.loads(status.data)["message"] == {"connected": True}
    assert router.leave("c-prov") == []  # no longer the agent's provider here


# --- frames from joined connections --------------------------------------------------


def test_a_request_without_id_is_forwarded_with_one_added(router: Router, app: Peer) -> None:
    [out] = router.receive(app, sample_text("seed-SetNotReady.request.json"))
    assert isinstance(out, Forward) and out.agent == "agent1" and out.request_id == "h-0"
    forwarded = orjson.loads(out.data)
    assert forwarded["id"] == "h-0" and forwarded["data"] == {"ReasonCodeId": "Not Ready"}
    assert ("agent1", "h-0") in router.pending


def test_a_request_with_its_own_id_is_forwarded_under_a_bus_id(router: Router, app: Peer) -> None:
    text = sample_text("Mute.request.json")
    [out] = router.receive(app, text)
    assert isinstance(out, Forward) and out.request_id == "h-0"
    assert orjson.loads(out.data) == {**orjson.loads(text), "id": "h-0"}


def test_a_request_no_provider_takes_fails_at_once(router: Router, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    [failure] = router.forwarded("agent1", "h-0", None)
    err = error_of(failure)
    assert err["data"]["errorType"] == "PROVIDER_UNAVAILABLE" and err["replyTo"] == "req-17"
    assert len(router.pending) == 0


def test_ids_are_a_per_connection_matter(router: Router, app: Peer) -> None:
    text = sample_text("Mute.request.json")
    router.receive(app, text)
    # The same connection may not reuse an id still in flight...
    err = error_of(router.receive(app, text)[0])
    assert err["data"]["errorType"] == "DUPLICATE_REQUEST_ID" and err["replyTo"] == "req-17"
    # ...but another app of the agent may pick the same one: it cannot pre-claim the first's.
    [out] = router.receive(join(router, "c-2", "app"), text)
    assert isinstance(out, Forward) and out.request_id == "h-1"
    # Once answered, the id is free again.
    router.event("agent1", orjson.dumps(seed_event("h-0")), "h-0")
    assert isinstance(router.receive(app, text)[0], Forward)


def test_set_agent_state_is_published_and_retained_as_its_schema_declares(router: Router, provider: Peer) -> None:
    text = sample_text("seed-SetAgentState.event.json")
    [out] = router.receive(provider, text)
    assert out == Publish("agent1", orjson.dumps(orjson.loads(text)), None, RetainDecision(STATE, keep=True))


def test_what_moves_on_is_what_was_validated(router: Router, provider: Peer) -> None:
    """A key twice: the schema saw the last value (orjson keeps it); apps get that value only."""
    text = sample_text("seed-SetAgentState.event.json")
    doubled = text.replace('"message"', '"message": {"evil": true}, "message"', 1)
    [out] = router.receive(provider, doubled)
    assert isinstance(out, Publish) and b"evil" not in out.data
    assert orjson.loads(out.data) == orjson.loads(text)


def test_other_events_are_published_not_retained(router: Router, provider: Peer) -> None:
    frame = orjson.dumps({"channel": "Amazon", "topic": "Agent", "subtopic": "GetStates", "replyTo": "r1",
                          "message": {"states": [{"label": "Break", "code": "arn:x", "type": "not_routable"}]}})
    [out] = router.receive(provider, frame)
    assert out == Publish("agent1", frame, "r1", None)


def test_a_provider_error_goes_to_the_requester_only(router: Router, provider: Peer) -> None:
    text = sample_text("ApiError.error.json")
    [out] = router.receive(provider, text)
    assert out == Answer("agent1", "req-18", orjson.dumps(orjson.loads(text)))


def test_a_provider_error_answering_nothing_is_dropped(router: Router, provider: Peer) -> None:
    err = orjson.loads(sample_text("ApiError.error.json"))
    del err["replyTo"]
    assert router.receive(provider, orjson.dumps(err)) == []


@pytest.mark.parametrize(
    "role, frame, error_type",
    [
        ("app", sample_text("seed-SetAgentState.event.json"), "FORBIDDEN"),
        ("app", sample_text("ApiError.error.json"), "FORBIDDEN"),
        ("provider", sample_text("seed-SetNotReady.request.json"), "FORBIDDEN"),
        ("app", sample_text("Welcome.event.json"), "FORBIDDEN"),
        ("app", hello("app", agent="x"), "FORBIDDEN"),
        ("app", '{"channel":"Amazon","topic":"Agent","subtopic":"setnotready","source":"x"}', "UNKNOWN_MESSAGE"),
        ("app", "[1, 2]", "INVALID_ENVELOPE"),
        ("app", '{"channel":"Amazon","topic":5,"subtopic":"SetReady"}', "INVALID_ENVELOPE"),
        ("app", "{", "INVALID_JSON"),
    ],
)
def test_refused_frames_get_the_documented_error(router: Router, role: str, frame: str, error_type: str) -> None:
    peer = join(router, "c-1", role)
    [out] = router.receive(peer, frame)
    assert out.connection_id == "c-1"  # type: ignore[union-attr]
    assert error_of(out)["data"]["errorType"] == error_type
    assert len(router.pending) == 0


def test_a_rate_limited_frame_is_answered_with_its_id_then_a_flood_is_closed(catalog: Catalog, clock: Clock) -> None:
    router = make_router(catalog, clock, limits=Limits(rate=1, burst=1, flood_close_after=4))
    app = join(router, "c-1", "app")
    assert isinstance(router.receive(app, sample_text("SetReady.request.json"))[0], Forward)
    for _ in range(2):
        err = error_of(router.receive(app, sample_text("Mute.request.json"))[0])
        assert err["data"]["errorType"] == "RATE_LIMITED" and err["replyTo"] == "req-17"
    assert "replyTo" not in error_of(router.receive(app, b"\xff not json")[0])
    assert router.receive(app, "{}") == [Close("c-1", CloseCode.POLICY_VIOLATION, "flooding", cause="flooding")]
    clock.now += 1  # the bucket refills: the connection is usable again
    assert error_of(router.receive(app, "{")[0])["data"]["errorType"] == "INVALID_JSON"


def test_a_binary_frame_is_refused_then_closed(router: Router, app: Peer) -> None:
    reply, close = router.binary_frame("c-app")
    assert error_of(reply)["data"]["errorType"] == "INVALID_ENVELOPE"
    assert isinstance(close, Close) and (close.connection_id, close.code) == ("c-app", CloseCode.POLICY_VIOLATION)
    assert close.cause == "binary_frame"


# --- the broker's deliveries -----------------------------------------------------------------


def test_an_answering_event_settles_its_request_and_reaches_the_apps(router: Router, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    data = orjson.dumps(seed_event("h-0"))
    # The requester gets the answer under its own id; the other apps under the bus id.
    assert router.event("agent1", data, "h-0") == [
        Deliver("agent1", data, skip="c-app"),
        Send("c-app", orjson.dumps(seed_event("req-17"))),
    ]
    assert len(router.pending) == 0


def test_a_provider_error_reaches_its_requester_only(router: Router, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    error = orjson.loads(sample_text("ApiError.error.json"))
    [out] = router.error("agent1", "h-0", orjson.dumps({**error, "replyTo": "h-0"}))
    assert out == Send("c-app", orjson.dumps({**error, "replyTo": "req-17"}), "AGENT_STATE_NOT_FOUND")
    assert router.error("agent1", "h-0", orjson.dumps(error)) == []  # answered once


def test_a_request_for_a_provider_that_just_left_is_answered_on_the_bus(router: Router) -> None:
    [out] = router.request("agent1", "req-1", sample_text("Mute.request.json").encode())
    assert isinstance(out, Answer) and out.reply_to == "req-1"
    assert orjson.loads(out.data)["data"]["errorType"] == "PROVIDER_UNAVAILABLE"


def test_a_request_for_our_provider_is_sent_to_it(router: Router, provider: Peer) -> None:
    data = sample_text("Mute.request.json").encode()
    assert router.request("agent1", "req-17", data) == [Send("c-prov", data)]


def test_a_vanished_provider_fails_what_was_handed_to_it(router: Router, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    router.forwarded("agent1", "h-0", "c-prov")
    outputs = router.provider_changed("agent1", ProviderPublication("c-prov", up=True))
    assert not [o for o in outputs if isinstance(o, Send)]  # the same provider: nothing lost
    outputs = router.provider_changed("agent1", ProviderPublication("c-prov", up=False))
    [failure] = [o for o in outputs if isinstance(o, Send)]
    assert error_of(failure)["data"]["errorType"] == "PROVIDER_UNAVAILABLE"


def test_the_resync_reclaims_this_nodes_providers(router: Router, provider: Peer) -> None:
    join(router, "c-p2", "provider", agent="agent2")
    assert router.resync() == [Claim("agent1", "c-prov"), Claim("agent2", "c-p2")]


# --- time and departures -------------------------------------------------------------------------


def test_requests_time_out_on_the_clock(router: Router, clock: Clock, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    clock.now += 9.9
    assert router.timeouts() == []
    clock.now += 0.2
    [out] = router.timeouts()
    err = error_of(out)
    assert out.connection_id == "c-app"  # type: ignore[union-attr]
    assert err["data"]["errorType"] == "REQUEST_TIMEOUT" and err["replyTo"] == "req-17"
    assert err["data"]["request"] == {"channel": "Amazon", "topic": "Agent", "subtopic": "Mute"}
    assert len(router.pending) == 0


def test_an_answered_request_does_not_time_out(router: Router, clock: Clock, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    router.event("agent1", orjson.dumps(seed_event("h-0")), "h-0")
    clock.now += 60
    assert router.timeouts() == []


def test_leaving_detaches_releases_and_unfollows(router: Router, app: Peer, provider: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    assert router.leave("c-app") == [Detach("c-app", "agent1")]
    assert len(router.pending) == 0  # a late answer is simply dropped
    assert router.leave("c-prov") == [Release("agent1", "c-prov"), Unfollow("agent1")]
    assert router.leave("c-prov") == []


# --- behaviour declared in schema files ------------------------------------------------------------


CALL_EVENT = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:test:Test/Call/CallChanged:event",
    "x-bridge": {
        "shape": "event",
        "senders": ["provider"],
        "retain": {"key": "/message/call/id", "dropWhen": {"/message/call/event": ["Dropped"]},
                   "resetOnProviderJoin": True},
    },
    "type": "object",
    "properties": {
        "channel": {"const": "Test"},
        "topic": {"const": "Call"},
        "subtopic": {"const": "CallChanged"},
        "message": {"type": "object"},
        "replyTo": {"type": "string"},
    },
    "required": ["channel", "topic", "subtopic", "message"],
    "additionalProperties": False,
}
SLOW_REQUEST = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "urn:test:Test/Call/Dial:request",
    "x-bridge": {"shape": "request", "senders": ["app"], "timeout": 30, "errors": {"DIAL_FAILED": "The call failed."}},
    "type": "object",
    "properties": {
        "channel": {"const": "Test"},
        "topic": {"const": "Call"},
        "subtopic": {"const": "Dial"},
        "source": {"type": "string"},
        "id": {"type": "string"},
    },
    "required": ["channel", "topic", "subtopic", "source"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def extended(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    folder: Path = tmp_path_factory.mktemp("schemas")
    (folder / "Test.Call.CallChanged.event.json").write_bytes(orjson.dumps(CALL_EVENT))
    (folder / "Test.Call.Dial.request.json").write_bytes(orjson.dumps(SLOW_REQUEST))
    return Catalog.load([folder])


def call(contact: str, state: str) -> bytes:
    return orjson.dumps({"channel": "Test", "topic": "Call", "subtopic": "CallChanged",
                         "message": {"call": {"id": contact, "event": state}}})


def test_keyed_retention_keeps_one_frame_per_key_and_drops_it_when_the_schema_says(
    extended: Catalog, clock: Clock
) -> None:
    router = make_router(extended, clock)
    provider = join(router, "c-p", "provider")
    slot = "Test/Call/CallChanged#c1"
    assert router.receive(provider, call("c1", "connecting")) == [
        Publish("agent1", call("c1", "connecting"), None, RetainDecision(slot, keep=True))
    ]
    [dropped] = router.receive(provider, call("c1", "Dropped"))
    assert dropped.retain == RetainDecision(slot, keep=False)  # type: ignore[union-attr]
    [other] = router.receive(provider, call("c2", "connected"))
    assert other.retain == RetainDecision("Test/Call/CallChanged#c2", keep=True)  # type: ignore[union-attr]


def test_a_joining_provider_resets_what_its_kind_declares_before_its_welcome(extended: Catalog, clock: Clock) -> None:
    """Calls retained from before are forgotten when a provider joins; the agent's state is kept."""
    router = make_router(extended, clock)
    router.hello("c-p", hello("provider", token=issue_token(SECRET, agent="agent1", role="provider")))
    retained = [orjson.dumps(seed_event()), call("c1", "connected"), call("c2", "hold")]
    forget, welcome, claim = router.greet("c-p", {"agent1": Snapshot(False, [Kept(data) for data in retained])})
    assert forget == Forget("agent1", ("Test/Call/CallChanged#c1", "Test/Call/CallChanged#c2"))
    assert isinstance(welcome, Send) and orjson.loads(welcome.data)["subtopic"] == "Welcome"
    assert claim == Claim("agent1", "c-p")


def test_replay_sends_one_per_kind_state_before_keyed_frames(extended: Catalog, clock: Clock) -> None:
    router = make_router(extended, clock)
    router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    state = orjson.dumps(seed_event())
    outputs = router.greet("c-1", {"agent1": Snapshot(True, [Kept(call("c1", "connected")), Kept(state)])})
    subtopics = [f["subtopic"] for f in frames(outputs, "c-1")]
    assert subtopics == ["Welcome", "ProviderStatus", "SetAgentState", "CallChanged"]


def test_a_kind_declares_its_own_request_deadline(extended: Catalog, clock: Clock) -> None:
    router = make_router(extended, clock)
    app = join(router, "c-1", "app")
    router.receive(app, orjson.dumps({"channel": "Test", "topic": "Call", "subtopic": "Dial", "source": "t", "id": "d"}))
    router.receive(app, sample_text("Mute.request.json"))  # the hub's default: 10 s
    clock.now += 10.5
    assert [error_of(o)["replyTo"] for o in router.timeouts()] == ["req-17"]
    clock.now += 20
    [late] = router.timeouts()
    assert error_of(late)["replyTo"] == "d" and "30 s" in error_of(late)["data"]["errorMessage"]
    assert extended.spec(extended_kind("Dial"), "request").errors == (("DIAL_FAILED", "The call failed."),)  # type: ignore[union-attr]


def extended_kind(subtopic: str) -> Any:
    from bridge.protocol import Kind

    return Kind("Test", "Call", subtopic)


# --- late backplane replies, tokens ------------------------------------------------------------


def test_a_request_delivered_twice_reaches_the_provider_once(router: Router, provider: Peer) -> None:
    """A backplane whose reply came late may hand the same request over twice."""
    data = sample_text("Mute.request.json").encode()
    assert router.request("agent1", "h-9", data) == [Send("c-prov", data)]
    assert router.request("agent1", "h-9", data) == []


def test_an_unconfirmed_routing_waits_for_the_answer(router: Router, clock: Clock, app: Peer) -> None:
    router.receive(app, sample_text("Mute.request.json"))
    assert router.forwarded("agent1", "h-0", "") == []  # the broker could not tell: no error yet
    [out] = router.event("agent1", orjson.dumps(seed_event("h-0")), "h-0")[1:]
    assert orjson.loads(out.data)["replyTo"] == "req-17"  # type: ignore[union-attr]


def test_a_request_routed_to_a_provider_that_left_meanwhile_fails(router: Router, app: Peer) -> None:
    router.provider_changed("agent1", ProviderPublication("c-far", up=True))
    router.receive(app, sample_text("Mute.request.json"))
    # The provider leaves while the routing is under way: nothing to fail yet...
    outputs = router.provider_changed("agent1", ProviderPublication("c-far", up=False))
    assert not [o for o in outputs if isinstance(o, Send)]
    # ...then the routing says where it went: to the one that left.
    [failure] = router.forwarded("agent1", "h-0", "c-far")
    assert error_of(failure)["data"]["errorType"] == "PROVIDER_UNAVAILABLE"


def test_the_same_provider_status_said_twice_is_passed_on_once(router: Router, app: Peer) -> None:
    up = ProviderPublication("c-far", up=True)
    assert [type(o) for o in router.provider_changed("agent1", up)] == [Deliver]
    assert router.provider_changed("agent1", up) == []  # a re-claim, a late reply
    down = ProviderPublication("c-far", up=False)
    assert [type(o) for o in router.provider_changed("agent1", down)] == [Deliver]
    assert router.provider_changed("agent1", down) == []
    # A replaced provider's departure after its successor arrived changes nothing.
    router.provider_changed("agent1", ProviderPublication("c-new", up=True))
    assert router.provider_changed("agent1", ProviderPublication("c-old", up=False)) == []


def token_router(catalog: Catalog, clock: Clock, wall: list[float]) -> Router:
    ids = iter(f"h-{n}" for n in range(1000))
    return Router(catalog, secret=SECRET, clock=clock, wall_clock=lambda: wall[0], request_ids=lambda: next(ids))


def test_a_connection_ends_with_its_token(catalog: Catalog, clock: Clock) -> None:
    import time

    wall = [time.time()]
    router = token_router(catalog, clock, wall)
    token = issue_token(SECRET, agent="agent1", role="app", ttl=60)
    router.hello("c-1", hello("app", token=token))
    expires_at = wall[0] + 60
    deadline = router.next_deadline()
    assert deadline is not None and abs(deadline - (clock.now + expires_at // 1 - wall[0])) <= 1
    clock.now = deadline - 0.01
    assert router.timeouts() == []
    clock.now = deadline
    err, close = router.timeouts()
    assert error_of(err)["data"]["errorType"] == "NOT_AUTHENTICATED"
    assert close == Close("c-1", CloseCode.TOKEN_EXPIRED, "token expired", cause="token_expired")


def test_a_fresh_token_moves_the_end(catalog: Catalog, clock: Clock) -> None:
    import time

    wall = [time.time()]
    router = token_router(catalog, clock, wall)
    result = router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent1", role="app", ttl=60)))
    assert isinstance(result, Joined)
    peer = result.peer
    first = router.next_deadline()

    def refresh(token: str) -> list[Any]:
        frame = {"channel": "Bridge", "topic": "Session", "subtopic": "Refresh", "source": "t", "id": "r1",
                 "data": {"token": token}}
        return router.receive(peer, orjson.dumps(frame))

    # Another agent's or role's token, or a bad one, is refused; the current one still applies.
    for bad in (issue_token(SECRET, agent="agent2", role="app"), issue_token(SECRET, agent="agent1", role="provider"),
                issue_token("another-secret-of-at-least-32-bytes!!", agent="agent1", role="app"), "x.y.z"):
        err = error_of(refresh(bad)[0])
        assert err["data"]["errorType"] == "NOT_AUTHENTICATED" and err["replyTo"] == "r1"
    assert router.next_deadline() == first
    sent, deadline = refresh(issue_token(SECRET, agent="agent1", role="app", ttl=3600))
    answer = orjson.loads(sent.data)
    assert answer["subtopic"] == "Refreshed" and answer["replyTo"] == "r1"
    assert answer["message"]["expiresAt"].endswith("Z") and deadline == Deadline()
    later = router.next_deadline()
    assert first is not None and later is not None and later > first + 3000
    clock.now = first + 1
    assert router.timeouts() == []  # the old expiry no longer closes it


def test_an_open_hub_has_no_token_to_refresh(catalog: Catalog, clock: Clock) -> None:
    router = Router(catalog, secret=None, open_mode=True, clock=clock)
    result = router.hello("c-1", hello("app", agent="agent1"))
    assert isinstance(result, Joined) and result.peer.expires is None
    frame = {"channel": "Bridge", "topic": "Session", "subtopic": "Refresh", "source": "t", "data": {"token": "x"}}
    assert error_of(router.receive(result.peer, orjson.dumps(frame))[0])["data"]["errorType"] == "FORBIDDEN"


# --- supervisors (protocol 1.2) ---------------------------------------------------------------------


def supervisor(router: Router, cid: str, agents: list[str], *, control: bool = False,
               snapshots: dict[str, Snapshot] | None = None) -> tuple[Peer, list[Any], list[Any]]:
    token = issue_token(SECRET, agent="lead1", role="supervisor", agents=agents, control=control)
    result = router.hello(cid, hello("supervisor", token=token))
    assert isinstance(result, Joined), result
    greeted = router.greet(cid, snapshots or {})
    return result.peer, result.outputs, greeted


def test_a_supervisor_follows_its_agents_and_is_replayed_each_with_its_name(router: Router) -> None:
    state = orjson.dumps(seed_event())
    _, joined, greeted = supervisor(router, "c-s", ["agent1", "agent2", "agent3"], snapshots={
        "agent1": Snapshot(True, [Kept(state)], "c-p1"),
        "agent2": Snapshot(False, []),  # unknown to the hub: not replayed
        "agent3": Snapshot(False, [Kept(state)]),
    })
    assert joined == [Follow("agent1"), Follow("agent2"), Follow("agent3"), Greet("c-s", ("agent1", "agent2", "agent3")),
                      Deadline()]
    welcome, *replay = frames(greeted, "c-s")
    assert welcome["message"] == {"role": "supervisor", "supervisor": "lead1", "control": False,
                                  "agents": ["agent1", "agent2", "agent3"], "connectionId": "c-s"}
    assert [(f["agent"], f["subtopic"], f["retained"]) for f in replay] == [
        ("agent1", "ProviderStatus", True), ("agent1", "SetAgentState", True),
        ("agent3", "ProviderStatus", True), ("agent3", "SetAgentState", True),
    ]
    assert [o for o in greeted if isinstance(o, Attach)] == [Attach("c-s", a, watch=True) for a in
                                                             ("agent1", "agent2", "agent3")]
    # The tagged frame is the app's frame with "agent" first.
    data = orjson.dumps(seed_event())
    deliver, watch = router.event("agent1", data, None)
    assert deliver == Deliver("agent1", data) and isinstance(watch, Watch)
    assert watch.data.startswith(b'{"agent":"agent1",') and orjson.loads(watch.data) == {"agent": "agent1",
                                                                                         **orjson.loads(data)}
    assert router.event("agent9", data, None) == []  # outside every scope here


def test_a_supervisor_of_every_agent_follows_all_and_hears_new_agents(router: Router) -> None:
    _, joined, greeted = supervisor(router, "c-s", ["*"], snapshots={"agent1": Snapshot(True, [], "c-p")})
    assert joined[0] == Follow("*") and Attach("c-s", "*", watch=True) in greeted
    [watch] = router.provider_changed("agent7", ProviderPublication("c-new", up=True))
    assert isinstance(watch, Watch) and orjson.loads(watch.data) == {
        "agent": "agent7", "channel": "Bridge", "topic": "Session", "subtopic": "ProviderStatus",
        "message": {"connected": True}}
    assert router.leave("c-s") == [Detach("c-s", "*", watch=True), Unfollow("*")]


def test_a_supervisor_with_control_asks_for_an_agent_in_scope(router: Router, app: Peer) -> None:
    peer, _, _ = supervisor(router, "c-s", ["agent1"], control=True)
    request = {**sample("Mute.request.json"), "agent": "agent1"}
    [forward] = router.receive(peer, orjson.dumps(request))
    assert isinstance(forward, Forward) and forward.agent == "agent1"
    sent = orjson.loads(forward.data)
    assert "agent" not in sent and sent["id"] == forward.request_id  # the provider sees an app's request
    # The answer: apps get it under the bus id, the supervisor under its own id, with the agent.
    answer = orjson.dumps(seed_event(forward.request_id))
    outputs = router.event("agent1", answer, forward.request_id)
    assert Deliver("agent1", answer) in outputs
    [own] = [o for o in outputs if isinstance(o, Send) and o.connection_id == "c-s"]
    assert orjson.loads(own.data)["replyTo"] == "req-17" and orjson.loads(own.data)["agent"] == "agent1"
    [watch] = [o for o in outputs if isinstance(o, Watch)]
    assert watch.skip == "c-s"


@pytest.mark.parametrize(
    "control, agent, why",
    [
        (False, "agent1", "grants no control"),
        (True, None, 'top-level "agent" key'),
        (True, "agent2", "outside this supervisor's scope"),
        (True, 7, '"agent" must be'),
    ],
)
def test_a_supervisor_request_is_forbidden_without_control_scope_or_agent(
    router: Router, control: bool, agent: Any, why: str
) -> None:
    peer, _, _ = supervisor(router, "c-s", ["agent1"], control=control)
    request = sample("Mute.request.json") if agent is None else {**sample("Mute.request.json"), "agent": agent}
    [refused] = router.receive(peer, orjson.dumps(request))
    err = error_of(refused)
    assert err["data"]["errorType"] == "FORBIDDEN" and why in err["data"]["errorMessage"]
    assert err["replyTo"] == "req-17"
    assert err.get("agent") == (agent if isinstance(agent, str) else None)


def test_a_supervisor_sends_no_events(router: Router) -> None:
    peer, _, _ = supervisor(router, "c-s", ["agent1"], control=True)
    [refused] = router.receive(peer, orjson.dumps({**seed_event(), "agent": "agent1"}))
    assert error_of(refused)["data"]["errorType"] == "FORBIDDEN"


@pytest.mark.parametrize("claims", [{}, {"agents": []}, {"agents": "agent1"}, {"agents": ["*", "agent1"]},
                                    {"agents": ["a"], "control": "yes"}])
def test_a_supervisor_token_with_a_bad_scope_is_refused(router: Router, claims: dict[str, Any]) -> None:
    import time

    import jwt

    token = jwt.encode({"sub": "lead1", "role": "supervisor", "exp": int(time.time()) + 60, **claims}, SECRET,
                       algorithm="HS256")
    result = router.hello("c-s", hello("supervisor", token=token))
    assert isinstance(result, Refused)
    assert error_of(result.outputs[0])["data"]["errorType"] == "NOT_AUTHENTICATED"
    assert isinstance(result.outputs[1], Close) and result.outputs[1].code == CloseCode.POLICY_VIOLATION


# --- positions and recovery (issue 14) ----------------------------------------------------------


def recovering_hello(role: str, recover: Any, **data: Any) -> bytes:
    return orjson.dumps({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "test",
                         "data": {"role": role, "recover": recover, **data}})


def test_a_live_event_carries_its_position_appended_once_for_apps_and_supervisors(router: Router) -> None:
    join(router, "c-1", "app")
    supervisor(router, "c-s", ["agent1"])
    state = orjson.dumps(seed_event())
    deliver, watch = router.event("agent1", state, None, At("ep", 7))
    assert isinstance(deliver, Deliver) and isinstance(watch, Watch)
    assert deliver.data == state[:-1] + b',"offset":7,"epoch":"ep"}'
    assert watch.data == b'{"agent":"agent1",' + deliver.data[1:]
    [status, *_] = router.provider_changed("agent1", ProviderPublication("c-p", True, At("ep", 8)))
    assert isinstance(status, Deliver) and orjson.loads(status.data)["offset"] == 8


def test_a_joiner_gets_the_state_as_of_the_top_then_only_what_came_after(router: Router) -> None:
    """Held live frames at or before the top are in the replay: dropped; a frame retained after
    the top is left to the live path, which brings it in order."""
    router.hello("c-1", hello("app", token=issue_token(SECRET, agent="agent1", role="app")))
    old, newer = orjson.dumps(seed_event("r-1")), orjson.dumps(seed_event("r-2"))
    router.event("agent1", old, None, At("ep", 5))  # held: published before the top was read
    router.event("agent1", newer, None, At("ep", 6))  # held: after it
    snapshot = Snapshot(True, [Kept(old, At("ep", 5)), Kept(newer, At("ep", 6))], "c-p", At("ep", 5))
    sent = frames(router.greet("c-1", {"agent1": snapshot}), "c-1")
    assert [(f["subtopic"], f.get("retained"), f["offset"]) for f in sent[1:]] == [
        ("ProviderStatus", True, 5), ("SetAgentState", True, 5), ("SetAgentState", None, 6)]
    assert "recovered" not in sent[0]["message"]  # nothing was asked


def test_a_recovering_app_gets_what_it_missed_then_the_held_frames_not_in_it(router: Router) -> None:
    token = issue_token(SECRET, agent="agent1", role="app")
    result = router.hello("c-1", recovering_hello("app", {"epoch": "ep", "offset": 3}, token=token))
    assert isinstance(result, Joined)
    assert result.outputs[1] == Greet("c-1", ("agent1",), {"agent1": At("ep", 3)})
    event = orjson.dumps(seed_event())
    router.event("agent1", event, None, At("ep", 5))  # held, and in the history too
    router.event("agent1", event, None, At("ep", 6))  # held only
    missed = [Missed(At("ep", 4), None, connected=True), Missed(At("ep", 5), event)]
    snapshot = Snapshot(True, [], "c-p", At("ep", 5), True, missed)
    outputs = router.greet("c-1", {"agent1": snapshot})
    sent = frames(outputs, "c-1")
    assert sent[0]["message"]["recovered"] is True
    assert [(f["subtopic"], f.get("recovered"), f["offset"]) for f in sent[1:]] == [
        ("ProviderStatus", True, 4), ("SetAgentState", True, 5), ("SetAgentState", None, 6)]
    assert outputs[-1] == Attach("c-1", "agent1")


def test_a_supervisor_is_told_per_agent_and_its_out_of_scope_agents_are_ignored(router: Router) -> None:
    token = issue_token(SECRET, agent="lead1", role="supervisor", agents=["agent1", "agent2"])
    recover = {"agent1": {"epoch": "ep", "offset": 1}, "agent2": {"epoch": "old", "offset": 1},
               "agent9": {"epoch": "ep", "offset": 1}}
    result = router.hello("c-s", recovering_hello("supervisor", recover, token=token))
    assert isinstance(result, Joined)
    greet = next(o for o in result.outputs if isinstance(o, Greet))
    assert greet.recover == {"agent1": At("ep", 1), "agent2": At("old", 1)}
    snapshots = {"agent1": Snapshot(True, [], "c-p", At("ep", 1), True, []),
                 "agent2": Snapshot(False, [], None, At("new", 0), False)}
    sent = frames(router.greet("c-s", snapshots), "c-s")
    assert sent[0]["message"]["recovered"] == {"agent1": True, "agent2": False}
    # agent1 missed nothing; agent2 has no state at all: nothing is replayed of either.
    assert len(sent) == 1


def test_a_provider_may_not_send_hub_keys(router: Router) -> None:
    provider = join(router, "c-p", "provider")
    for key, value in (("offset", 1), ("epoch", "mine"), ("recovered", True)):  # each valid per the schema
        [error] = router.receive(provider, orjson.dumps({**seed_event(), key: value}))
        assert isinstance(error, Send) and error.error_type == "INVALID_ENVELOPE"
