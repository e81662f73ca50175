"""The Python client against a real hub on loopback, over real sockets."""

from __future__ import annotations

import asyncio
import inspect
import random
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bridge.client import (
    AgentStateNotFound,
    BridgeClient,
    BridgeError,
    CallFailed,
    CallNotFound,
    ClientClosed,
    ConnectFailed,
    ConnectionLost,
    ConnectionState,
    DuplicateRequestId,
    Forbidden,
    InvalidRequest,
    MuteFailed,
    NotAuthenticated,
    ProviderUnavailable,
    RateLimited,
    Replaced,
    RequestFailed,
    RequestTimeout,
    Stream,
    UpdateAgentStateFailed,
    backoff_delay,
    error_from_envelope,
)
from bridge.client.client import CALL_FAILURES
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol import ErrorType, Kind, error
from bridge.protocol.tokens import issue_token
from bridge.sim.virtual_agent import VirtualAgent

from . import helpers
from .helpers import free_port, within

#: The browser client, which must keep the same names and defaults as this one.
JS_CLIENT = Path(__file__).resolve().parents[1] / "static" / "js" / "lib" / "client.js"

SECRET = "client-tests-secret-0123456789abcdef"
SET_AGENT_STATE = "Amazon/Agent/SetAgentState"
#: Reconnect quickly in tests; the behaviour, not the delay, is under test.
FAST = {**helpers.FAST, "connect_timeout": 2.0}
T = TypeVar("T")


@asynccontextmanager
async def running_hub(**options: Any) -> AsyncIterator[HubServer]:
    config = HubConfig(
        host="127.0.0.1", **{"port": 0, "open_mode": True, "request_timeout": 5.0, **options}
    )
    async with HubServer(config) as hub:
        yield hub


@pytest.fixture
async def agent(hub: HubServer) -> AsyncIterator[VirtualAgent]:
    async with VirtualAgent(hub.url, agent="agent1", **FAST) as va:
        yield va


def app(url: str, **options: Any) -> BridgeClient:
    return BridgeClient(url, **{"agent": "agent1", "source": "test-app", **FAST, **options})


# ----- requests and answers -----------------------------------------------------------------


async def test_request_returns_the_answering_event(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        assert bus.state is ConnectionState.OPEN
        assert bus.welcome is not None and bus.welcome["role"] == "app"
        assert (bus.agent, bus.provider_connected) == ("agent1", True)
        answer = await within(
            bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}, timeout=5)
        )
        assert answer["subtopic"] == "SetAgentState"
        assert answer["message"]["data"]["reasonCode"] == {"id": "Break"}
        assert isinstance(answer["replyTo"], str) and len(answer["replyTo"]) == 32
        # The answer is also the agent's current state.
        assert bus.last(SET_AGENT_STATE) == answer
        assert bus.last(Kind("Amazon", "Agent", "SetAgentState")) == answer


async def test_request_by_kind_string_kind_or_three_names(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        by_string = await within(bus.request("Amazon/Agent/GetStates", timeout=5))
        by_kind = await within(bus.request(Kind("Amazon", "Agent", "GetStates"), None, timeout=5))
        by_names = await within(bus.request("Amazon", "Agent", "SetNotReady", {"ReasonCodeId": "Break"}))
        assert by_string["message"] == by_kind["message"]
        assert by_names["message"]["event"] == "Break"
        with pytest.raises(ValueError):
            await bus.request("Amazon/Agent")
        with pytest.raises(TypeError):
            await bus.request("Amazon/Agent/GetStates", "not a dict")  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            await bus.request("Amazon", "Agent")  # type: ignore[call-overload]


async def test_last_is_the_latest_event_of_the_current_connection() -> None:
    # No history (--history-size 0): a reconnect cannot recover, and gets the retained state.
    async with running_hub(history_size=0) as hub, VirtualAgent(hub.url, agent="agent1", **FAST), \
            app(hub.url) as bus:
        stream = bus.events(SET_AGENT_STATE)
        assert (await within(stream.get()))["retained"] is True
        states = await within(bus.request("Amazon/Agent/GetStates"))
        assert bus.last("Amazon/Agent/GetStates") == states
        assert bus.last("Bridge/Session/Welcome") is None  # Welcome is bus.welcome, not an event
        assert bus._ws is not None
        bus._ws.transport.abort()
        replayed = await within(stream.get())
        assert replayed["retained"] is True and bus.connections == 2
        assert bus.recovered is False
        assert bus.last(SET_AGENT_STATE) == replayed
        # GetStates answers are not retained: the new connection has not seen one.
        assert bus.last("Amazon/Agent/GetStates") is None


async def test_last_survives_a_reconnect_that_recovered(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        state = await within(bus.wait_for(SET_AGENT_STATE))
        states = await within(bus.request("Amazon/Agent/GetStates"))
        assert bus._ws is not None
        bus._ws.transport.abort()
        await within(bus.wait_for_state(ConnectionState.RECONNECTING))
        await within(bus.wait_for_state(ConnectionState.OPEN))
        assert bus.recovered is True and bus.connections == 2
        # Nothing was missed and nothing replayed: what the last connection saw is still current.
        assert bus.last(SET_AGENT_STATE) == state
        assert bus.last("Amazon/Agent/GetStates") == states


async def test_request_ids_are_unique(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        answers = await within(
            asyncio.gather(
                *(bus.request("Amazon/Agent/GetStates", timeout=5) for _ in range(20))
            )
        )
        assert len({a["replyTo"] for a in answers}) == 20


async def test_retained_state_is_there_after_joining(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        state = await within(bus.wait_for(SET_AGENT_STATE))
        assert state["retained"] is True
        assert state["message"]["event"] == "Available"
        status = await within(bus.wait_for("Bridge/Session/ProviderStatus"))
        assert status["message"] == {"connected": True}


async def test_token_hello_on_a_secured_hub() -> None:
    async with running_hub(open_mode=False, secret=SECRET) as hub:
        provider_token = issue_token(SECRET, agent="agent7", role="provider")
        async with VirtualAgent(hub.url, token=provider_token, **FAST):
            calls = 0

            def token() -> str:
                nonlocal calls
                calls += 1
                return issue_token(SECRET, agent="agent7", role="app")

            async with BridgeClient(hub.url, token=token, source="test", **FAST) as bus:
                assert bus.agent == "agent7" and calls == 1
                answer = await within(bus.request("Amazon/Agent/Logout", timeout=5))
                assert answer["message"]["data"]["state"] == "Logout"


# ----- typed errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subtopic", "data", "setup", "expected", "error_type"),
    [
        (
            "SetNotReady",
            {"ReasonCodeId": "Coffee"},
            None,
            AgentStateNotFound,
            "AGENT_STATE_NOT_FOUND",
        ),
        ("SetReady", None, "fail", UpdateAgentStateFailed, "UPDATE_AGENT_STATE_FAILED"),
        ("Logout", None, "fail", UpdateAgentStateFailed, "UPDATE_AGENT_STATE_FAILED"),
        ("Mute", None, None, MuteFailed, "MUTE_FAILED"),
        ("Unmute", None, None, MuteFailed, "MUTE_FAILED"),
        ("SetNotReady", {"ReasonCodeId": 5}, None, InvalidRequest, "SCHEMA_VIOLATION"),
        ("SetNotReady", None, None, InvalidRequest, "SCHEMA_VIOLATION"),
        ("Dance", None, None, InvalidRequest, "UNKNOWN_MESSAGE"),
    ],
)
async def test_errors_raise_their_own_exception(
    hub: HubServer,
    agent: VirtualAgent,
    subtopic: str,
    data: dict[str, Any] | None,
    setup: str | None,
    expected: type[RequestFailed],
    error_type: str,
) -> None:
    if setup == "fail":
        await agent.set_fail_updates(True)
    async with app(hub.url) as bus:
        with pytest.raises(expected) as caught:
            await within(bus.request(f"Amazon/Agent/{subtopic}", data, timeout=5))
    failure = caught.value
    assert failure.error_type == error_type
    assert failure.msg and failure.error_message
    assert failure.request == Kind("Amazon", "Agent", subtopic)
    assert failure.envelope is not None and failure.envelope["data"]["errorType"] == error_type


async def test_no_provider_is_provider_unavailable(hub: HubServer) -> None:
    async with app(hub.url) as bus:
        assert bus.provider_connected is False
        with pytest.raises(ProviderUnavailable) as caught:
            await within(bus.request("Amazon/Agent/GetStates", timeout=5))
        assert caught.value.msg == "The agent's softphone is not connected."


async def test_a_provider_may_not_send_requests(hub: HubServer) -> None:
    async with BridgeClient(hub.url, agent="agent1", role="provider", **FAST) as provider:
        with pytest.raises(Forbidden):
            await within(provider.request("Amazon/Agent/GetStates", timeout=5))


async def test_flooding_is_rate_limited() -> None:
    async with running_hub(rate_limit=0.5, rate_burst=3) as hub, app(hub.url) as bus:
        with pytest.raises(RateLimited):
            for _ in range(10):
                with pytest.raises(ProviderUnavailable):
                    await within(bus.request("Amazon/Agent/GetStates", timeout=5))


async def test_hub_timeout_is_request_timeout() -> None:
    async with (
        running_hub(request_timeout=0.2) as hub,
        BridgeClient(hub.url, agent="agent1", role="provider", **FAST),  # never answers
        app(hub.url) as bus,
    ):
        with pytest.raises(RequestTimeout) as caught:
            await within(bus.request("Amazon/Agent/GetStates", timeout=5))
    assert caught.value.local is False
    assert caught.value.error_type == "REQUEST_TIMEOUT"
    assert isinstance(caught.value, TimeoutError)


async def test_client_timeout_is_request_timeout(hub: HubServer) -> None:
    async with (
        BridgeClient(hub.url, agent="agent1", role="provider", **FAST),  # never answers
        app(hub.url) as bus,
    ):
        with pytest.raises(RequestTimeout) as caught:
            await within(bus.request("Amazon/Agent/GetStates", timeout=0.05))
        assert caught.value.local is True
        assert caught.value.request == Kind("Amazon", "Agent", "GetStates")
        assert bus.state is ConnectionState.OPEN  # a timeout costs only that request


@pytest.mark.parametrize("fault", ["forged", "expired", "wrong-role"])
async def test_refused_token_is_not_authenticated(fault: str) -> None:
    token = {
        "forged": issue_token("another-secret-0123456789abcdef0123", agent="agent1", role="app"),
        "expired": issue_token(SECRET, agent="agent1", role="app", ttl=-10),
        "wrong-role": issue_token(SECRET, agent="agent1", role="provider"),
    }[fault]
    async with running_hub(open_mode=False, secret=SECRET) as hub:
        bus = BridgeClient(hub.url, token=token, **FAST)
        with pytest.raises(NotAuthenticated) as caught:
            await within(bus.start())
        assert bus.state is ConnectionState.CLOSED
        assert caught.value.error_type == "NOT_AUTHENTICATED"


async def test_unreachable_hub_is_connect_failed() -> None:
    bus = app(f"ws://127.0.0.1:{free_port()}/ws")
    with pytest.raises(ConnectFailed) as caught:
        await within(bus.start())
    assert isinstance(caught.value, ConnectionError)
    assert bus.state is ConnectionState.CLOSED


def test_every_error_type_has_its_class() -> None:
    expected = {
        ErrorType.INVALID_JSON: InvalidRequest,
        ErrorType.INVALID_ENVELOPE: InvalidRequest,
        ErrorType.UNKNOWN_MESSAGE: InvalidRequest,
        ErrorType.SCHEMA_VIOLATION: InvalidRequest,
        ErrorType.NOT_AUTHENTICATED: NotAuthenticated,
        ErrorType.FORBIDDEN: Forbidden,
        ErrorType.PROVIDER_UNAVAILABLE: ProviderUnavailable,
        ErrorType.REQUEST_TIMEOUT: RequestTimeout,
        ErrorType.RATE_LIMITED: RateLimited,
        ErrorType.DUPLICATE_REQUEST_ID: DuplicateRequestId,
        ErrorType.AGENT_STATE_NOT_FOUND: AgentStateNotFound,
        ErrorType.UPDATE_AGENT_STATE_FAILED: UpdateAgentStateFailed,
        ErrorType.MUTE_FAILED: MuteFailed,
        ErrorType.CALL_NOT_FOUND: CallNotFound,
        **dict.fromkeys(CALL_FAILURES, CallFailed),
    }
    assert set(expected) == set(ErrorType)
    for error_type, cls in expected.items():
        raised = error_from_envelope(error(error_type, "why", channel="Amazon", reply_to="r1"))
        assert type(raised) is cls
        assert (raised.error_type, raised.error_message) == (error_type, "why")
    other = error_from_envelope(error("SOMETHING_NEW", "why", msg="Nope."))
    assert type(other) is RequestFailed and other.msg == "Nope."


# ----- connection loss and reconnect --------------------------------------------------------


async def test_in_flight_request_fails_when_the_hub_stops() -> None:
    async with running_hub() as hub:
        provider = BridgeClient(hub.url, agent="agent1", role="provider", reconnect=False, **FAST)
        await provider.start()
        bus = app(hub.url)
        await bus.start()
        pending = asyncio.create_task(bus.request("Amazon/Agent/GetStates", timeout=30))
        await within(provider.requests().get())  # it reached the provider, which keeps it
    # Leaving the block stopped the hub.
    with pytest.raises(ConnectionLost) as caught:
        await within(pending)
    assert not isinstance(caught.value, ClientClosed)
    assert "Amazon/Agent/GetStates was in flight" in caught.value.error_message
    assert caught.value.request == Kind("Amazon", "Agent", "GetStates")
    await bus.close()
    await provider.close()


async def test_reconnects_after_hub_restart_and_gets_retained_state_again() -> None:
    port = free_port()
    secured = {"port": port, "open_mode": False, "secret": SECRET}
    # The app's token function waits on this gate: it lets the test hold the app
    # back until the provider has republished, so "retained" is certain.
    gate = asyncio.Event()
    gate.set()

    async def app_token() -> str:
        await gate.wait()
        return issue_token(SECRET, agent="agent1", role="app")

    provider_token = issue_token(SECRET, agent="agent1", role="provider")
    states: list[ConnectionState] = []
    async with running_hub(**secured) as first:
        va = VirtualAgent(first.url, token=provider_token, **FAST)
        await va.start()
        bus = BridgeClient(first.url, token=app_token, source="test-app", **FAST)
        bus.add_state_listener(states.append)
        await bus.start()
        stream = bus.events(SET_AGENT_STATE)
        assert (await within(stream.get()))["retained"] is True
        await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Lunch"}))
        assert (await within(stream.get()))["message"]["event"] == "Lunch"
        gate.clear()
    # The hub is gone: both clients try again and again.
    await within(bus.wait_for_state(ConnectionState.RECONNECTING))
    with pytest.raises(ConnectionLost):
        await bus.request("Amazon/Agent/GetStates")
    async with running_hub(**secured) as second:
        await within(va.client.wait_for_state(ConnectionState.OPEN))
        async with BridgeClient(
            second.url, token=issue_token(SECRET, agent="agent1", role="app"), **FAST
        ) as probe:
            seen = await within(probe.wait_for(SET_AGENT_STATE))
            assert seen["retained"] is True  # the provider has republished
        gate.set()
        await within(bus.wait_for_state(ConnectionState.OPEN))
        again = await within(stream.get())
        assert again["retained"] is True
        assert again["message"]["event"] == "Lunch"  # the virtual agent kept its state
        assert bus.connections == 2
        answer = await within(bus.request("Amazon/Agent/SetReady"))
        assert answer["message"]["data"]["state"] == "Ready"
        await bus.close()
        await va.close()
    assert states[:3] == [
        ConnectionState.CONNECTING,
        ConnectionState.OPEN,
        ConnectionState.RECONNECTING,
    ]
    assert states[-2:] == [ConnectionState.OPEN, ConnectionState.CLOSED]


async def test_reconnects_after_a_network_drop(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        stream = bus.events(SET_AGENT_STATE)
        assert (await within(stream.get()))["retained"] is True
        first_connection = bus.connection_id
        # Cut the TCP connection without a closing handshake, as a dead network would.
        assert bus._ws is not None
        bus._ws.transport.abort()
        await within(bus.wait_for_state(ConnectionState.RECONNECTING))
        await within(bus.wait_for_state(ConnectionState.OPEN))
        assert bus.connection_id != first_connection and bus.connections == 2
        assert bus.recovered is True  # nothing missed; tests/test_client_recovery.py has the rest
        answer = await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}))
        assert await within(stream.get()) == answer  # the next event is the live one: nothing replayed


async def test_two_clients_see_the_same_events(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url, source="one") as one, app(hub.url, source="two") as two:
        for bus in (one, two):
            assert (await within(bus.wait_for(SET_AGENT_STATE)))["retained"] is True
        streams = [one.events(SET_AGENT_STATE), two.events(SET_AGENT_STATE)]
        answer = await within(
            one.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Training"})
        )
        # The requester sees the answer under its own id, the other app under the hub's.
        seen = [await within(stream.get()) for stream in streams]
        assert seen[0] == answer
        assert {**seen[1], "replyTo": answer["replyTo"]} == answer and seen[1]["replyTo"].startswith("h-")
        await agent.start_call()
        busy = [await within(stream.get()) for stream in streams]
        assert busy[0] == busy[1]
        assert busy[0]["message"]["event"] == "Busy" and "replyTo" not in busy[0]
        assert two.last(SET_AGENT_STATE) == busy[1]


async def test_events_can_start_with_the_current_state(hub: HubServer, agent: VirtualAgent) -> None:
    async with app(hub.url) as bus:
        await within(bus.wait_for(SET_AGENT_STATE))
        stream = bus.events(SET_AGENT_STATE, current=True)
        assert (await within(stream.get()))["message"]["event"] == "Available"
        await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Lunch"}))
        assert (await within(stream.get()))["message"]["event"] == "Lunch"
        everything = bus.events(current=True)
        assert {(await within(everything.get()))["subtopic"] for _ in range(2)} == {
            "ProviderStatus",
            "SetAgentState",
        }


async def test_events_of_all_kinds_or_some(hub: HubServer) -> None:
    async with app(hub.url) as bus:
        everything = bus.events()
        only_state = bus.events(SET_AGENT_STATE)
        status = await within(everything.get())
        assert status["subtopic"] == "ProviderStatus" and status["retained"] is True
        async with VirtualAgent(hub.url, agent="agent1", **FAST):
            kinds = {(await within(everything.get()))["subtopic"] for _ in range(2)}
            assert kinds == {"ProviderStatus", "SetAgentState"}
            assert (await within(only_state.get()))["subtopic"] == "SetAgentState"
            assert bus.provider_connected is True
        gone = await within(everything.get())
        assert gone["message"] == {"connected": False}
        assert bus.provider_connected is False


async def test_close_ends_streams_and_pending_requests(hub: HubServer) -> None:
    async with BridgeClient(hub.url, agent="agent1", role="provider", **FAST):  # never answers
        bus = app(hub.url)
        await bus.start()
        events = bus.events()
        pending = asyncio.create_task(bus.request("Amazon/Agent/GetStates", timeout=30))
        await asyncio.sleep(0)
        await bus.close()
        with pytest.raises(ClientClosed):
            await within(pending)
        assert [e["subtopic"] async for e in events] == ["ProviderStatus"]
        assert bus.state is ConnectionState.CLOSED
        with pytest.raises(ClientClosed):
            await bus.request("Amazon/Agent/GetStates")
        await bus.close()  # twice is fine


async def test_a_replaced_provider_stops(hub: HubServer) -> None:
    first = BridgeClient(hub.url, agent="agent1", role="provider", **FAST)
    await first.start()
    requests = first.requests()
    async with BridgeClient(hub.url, agent="agent1", role="provider", **FAST) as second:
        await within(first.wait_for_state(ConnectionState.CLOSED))
        assert isinstance(first.close_error, Replaced)
        assert first.last("Bridge/Session/Replaced") is not None
        with pytest.raises(Replaced):
            await within(requests.get())
        assert second.state is ConnectionState.OPEN
    await first.close()


async def test_provider_sees_errors_that_answer_nothing(hub: HubServer) -> None:
    async with BridgeClient(hub.url, agent="agent1", role="provider", **FAST) as provider:
        errors = provider.errors()
        await provider.publish(SET_AGENT_STATE, {"event": "Broken"})
        refused = await within(errors.get())
        assert isinstance(refused, InvalidRequest) and refused.error_type == "SCHEMA_VIOLATION"


async def test_publish_without_connection_is_connection_lost(hub: HubServer) -> None:
    provider = BridgeClient(hub.url, agent="agent1", role="provider", **FAST)
    assert provider.state is ConnectionState.IDLE
    with pytest.raises(ConnectionLost) as caught:
        await provider.publish(SET_AGENT_STATE, {})
    assert not isinstance(caught.value, ClientClosed)
    await provider.close()
    with pytest.raises(ClientClosed):
        await provider.publish(SET_AGENT_STATE, {})
    with pytest.raises(RuntimeError):
        app(hub.url).requests()


async def test_a_failing_token_function_is_connect_failed(hub: HubServer) -> None:
    def token() -> str:
        raise OSError("the token service is down")

    bus = BridgeClient(hub.url, token=token, **FAST)
    with pytest.raises(ConnectFailed) as caught:
        await within(bus.start())
    assert "token service is down" in caught.value.error_message
    assert bus.state is ConnectionState.CLOSED


async def test_retry_first_connect_waits_for_the_hub() -> None:
    port = free_port()
    bus = app(f"ws://127.0.0.1:{port}/ws", retry_first_connect=True)
    await bus.start()
    assert bus.state is ConnectionState.CONNECTING
    async with running_hub(port=port):
        await within(bus.wait_for_state(ConnectionState.OPEN))
        await bus.close()


# ----- pieces -------------------------------------------------------------------------------


async def test_stream_drops_the_oldest_when_full() -> None:
    stream: Stream[int] = Stream(lambda n: n % 2 == 0, maxsize=2, on_close=lambda _: None)
    for number in range(8):
        stream._offer(number)
    assert stream.dropped == 2
    stream.close()
    assert [n async for n in stream] == [4, 6]


async def test_starts_idle_and_once(hub: HubServer) -> None:
    bus = app(hub.url)
    assert bus.state is ConnectionState.IDLE
    await bus.start()
    with pytest.raises(RuntimeError):
        await bus.start()
    await bus.close()
    unstarted = app(hub.url)
    await unstarted.close()
    assert unstarted.state is ConnectionState.CLOSED
    with pytest.raises(RuntimeError):
        await unstarted.start()


def test_backoff_is_full_jitter() -> None:
    class Fixed(random.Random):
        def random(self) -> float:
            return 0.5

    assert backoff_delay(0, 0.5, 30.0, Fixed()) == 0.25
    assert backoff_delay(3, 0.5, 30.0, Fixed()) == 2.0
    assert backoff_delay(10, 0.5, 30.0, Fixed()) == 15.0  # capped at the maximum
    assert backoff_delay(2, rng=Fixed()) == 1.0  # the defaults: 0.5 s, 30 s
    for _ in range(100):
        assert 0 <= backoff_delay(4) < 8.0


def _js_object(name: str) -> dict[str, str]:
    """The members of ``export const NAME = Object.freeze({...})`` in the browser client."""
    block = re.search(rf"export const {name} = Object\.freeze\(\{{(.*?)\}}\);", JS_CLIENT.read_text(), re.S)
    assert block is not None, name
    return dict(re.findall(r"^\s*(\w+): \"?([\w.]+)\"?,", block.group(1), re.M))


def test_the_browser_client_has_the_same_states_errors_and_defaults() -> None:
    assert _js_object("ConnectionState") == {state.name: state.value for state in ConnectionState}
    client_errors = {"CONNECTION_LOST", "CONNECT_FAILED", "CLIENT_CLOSED", "REPLACED"}
    assert _js_object("ClientErrorType") == {name: name for name in client_errors}
    defaults = inspect.signature(BridgeClient).parameters
    seconds = {
        "requestTimeout": "request_timeout",
        "connectTimeout": "connect_timeout",
        "backoffInitial": "backoff_initial",
        "backoffMax": "backoff_max",
        "stableAfter": "stable_after",
    }
    js = _js_object("DEFAULTS")
    assert set(js) == set(seconds)
    for js_name, py_name in seconds.items():
        assert float(js[js_name]) == defaults[py_name].default * 1000, js_name


def test_client_needs_one_way_to_say_who_it_is() -> None:
    with pytest.raises(ValueError):
        BridgeClient("ws://127.0.0.1:1/ws")
    with pytest.raises(ValueError):
        BridgeClient("ws://127.0.0.1:1/ws", agent="a", token="t")
    with pytest.raises(ValueError):
        BridgeClient("ws://127.0.0.1:1/ws", agent="a", source="")


def test_errors_are_bridge_errors() -> None:
    for cls in (
        RequestFailed,
        RequestTimeout,
        ConnectionLost,
        ConnectFailed,
        ClientClosed,
        Replaced,
    ):
        assert issubclass(cls, BridgeError)


async def test_wait_for_state_sees_every_change(hub: HubServer) -> None:
    bus = app(hub.url)
    opened = asyncio.create_task(bus.wait_for_state(ConnectionState.OPEN))
    closing = asyncio.create_task(bus.wait_for_state(ConnectionState.RECONNECTING))
    await asyncio.sleep(0)  # both wait before the client even starts
    await bus.start()
    assert await within(opened) is ConnectionState.OPEN
    await bus.close()
    with pytest.raises(ClientClosed):
        await within(closing)  # closed for good: what it waited for will never come
    with pytest.raises(ClientClosed):
        await bus.wait_for_state(ConnectionState.OPEN)
    assert await bus.wait_for_state(ConnectionState.CLOSED) is ConnectionState.CLOSED
