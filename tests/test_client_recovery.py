"""Recovery in the Python client and ``listen --since`` (issue 14, item 4), over real sockets.

The hub here is :class:`FakeHub`, a small WebSocket server on loopback that
speaks the wire format of issue 14's design (docs/protocol.md): every event of
an agent carries ``offset`` and ``epoch``; a Hello with ``data.recover`` gets
``Welcome.message.recovered`` and, when true, every later event with
``recovered: true``, else the retained state with its positions. It lets the
client be tested against each answer the real hub can give, including the ones
that are hard to provoke there (a duplicate frame, a trimmed history, a restart
with a new epoch). The last test runs the client against the real hub.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bridge.client import BridgeClient, ConnectionState, Position
from bridge.client.positions import PositionBook
from bridge.protocol.tokens import issue_token

from .helpers import FAST, eventually, within

ROOT = Path(__file__).resolve().parents[1]
SET_AGENT_STATE = "Amazon/Agent/SetAgentState"


@dataclass
class Follower:
    """One connection of the fake hub: its agents and the frames waiting to be written."""

    ws: ServerConnection
    agents: set[str] | None  # None: every agent (a supervisor of "*")
    supervisor: bool
    outbox: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)


class FakeHub:
    """The hub's side of issue 14, just enough of it, with knobs for the faults.

    Everything it sends goes through each connection's outbox in the order it was
    decided, so ``publish`` is synchronous and the replay after Welcome can never be
    overtaken by a live event: the order the real hub promises.
    """

    def __init__(self) -> None:
        self.epoch = "epochA"
        self.top: dict[str, int] = {}
        self.history: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self.retained: dict[str, tuple[int, dict[str, Any]]] = {}
        self.hellos: list[dict[str, Any]] = []
        self.followers: dict[ServerConnection, Follower] = {}
        #: False: refuse connections (close 1013) so that a client stays away.
        self.accepting = True
        self.server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.sockets[0].getsockname()[:2]
        return f"ws://{host}:{port}/ws"

    # ----- the test's controls --------------------------------------------------------

    def publish(self, agent: str, state: str, *, twice: bool = False) -> int:
        """A SetAgentState of ``agent``: the next offset, kept in history and retained, sent live."""
        offset = self.top.get(agent, 0) + 1
        self.top[agent] = offset
        envelope = {"channel": "Amazon", "topic": "Agent", "subtopic": "SetAgentState",
                    "message": {"event": state, "data": {"state": state, "type": "not_routable"}}}
        self.history.setdefault(agent, []).append((offset, envelope))
        self.retained[agent] = (offset, envelope)
        for follower in list(self.followers.values()):
            if follower.agents is None or agent in follower.agents:
                for _ in range(2 if twice else 1):
                    follower.outbox.put_nowait(self.frame(follower, agent, envelope, offset))
        return offset

    def keep_last(self, agent: str, count: int) -> None:
        """Trim the agent's history to its last ``count`` events (the history bound)."""
        self.history[agent] = self.history.get(agent, [])[-count:] if count else []

    def restart(self) -> None:
        """A single node restarted without a store: every stream gets a new epoch and starts again."""
        self.epoch = "epochB"
        self.top.clear()
        self.history.clear()
        self.retained.clear()

    def cut(self) -> None:
        """Every connection drops at once (the network, not a close handshake)."""
        for ws in list(self.followers):
            ws.transport.abort()
        self.followers.clear()

    # ----- the hub --------------------------------------------------------------------

    def frame(self, follower: Follower, agent: str, envelope: dict[str, Any], offset: int,
              **marks: bool) -> bytes:
        body = {**envelope, **({"agent": agent} if follower.supervisor else {}), **marks}
        return orjson.dumps({**body, "offset": offset, "epoch": self.epoch})

    def replay(self, follower: Follower, agent: str, asked: Any) -> tuple[bool, list[bytes]]:
        """What a joining connection gets for ``agent``, and whether it recovered from ``asked``."""
        top = self.top.get(agent, 0)
        kept = self.history.get(agent, [])
        first = kept[0][0] if kept else top + 1
        if (
            isinstance(asked, dict)
            and asked.get("epoch") == self.epoch
            and first - 1 <= asked.get("offset", -1) <= top
        ):
            return True, [self.frame(follower, agent, envelope, offset, recovered=True)
                          for offset, envelope in kept if offset > asked["offset"]]
        status = {"channel": "Bridge", "topic": "Session", "subtopic": "ProviderStatus",
                  "message": {"connected": True}}
        frames = [self.frame(follower, agent, status, top, retained=True)]
        if agent in self.retained:
            offset, envelope = self.retained[agent]
            frames.append(self.frame(follower, agent, envelope, offset, retained=True))
        return False, frames

    async def handler(self, ws: ServerConnection) -> None:
        if not self.accepting:
            await ws.close(1013, "try again later")
            return
        hello = orjson.loads(await ws.recv())
        data = hello["data"]
        self.hellos.append(data)
        # From here to the follower's registration nothing awaits: no live event can
        # come between the replay and the events after it.
        supervisor = data["role"] == "supervisor"
        if "token" in data:  # read, not checked: this hub trusts its tests
            claims = jwt.decode(data["token"], options={"verify_signature": False})
            joined: list[str] = claims["agents"] if supervisor else [claims["sub"]]
        else:
            joined = data["agents"] if supervisor else [data["agent"]]
        follower = Follower(ws, None if joined == ["*"] else set(joined), supervisor)
        connection = f"c{len(self.hellos)}"
        message: dict[str, Any] = (
            {"role": "supervisor", "supervisor": hello["source"], "agents": joined, "control": False,
             "connectionId": connection}
            if supervisor
            else {"agent": joined[0], "role": data["role"], "connectionId": connection, "providerConnected": True}
        )
        recover = data.get("recover")
        answers: dict[str, bool] = {}
        frames: list[bytes] = []
        for agent in sorted(self.top) if follower.agents is None else sorted(follower.agents):
            answers[agent], replay = self.replay(follower, agent, (recover or {}).get(agent) if supervisor
                                                 else recover)
            frames += replay
        if recover is not None:
            message["recovered"] = (
                {agent: answers.get(agent, False) for agent in recover} if supervisor else answers[joined[0]]
            )
        welcome = {"channel": "Bridge", "topic": "Session", "subtopic": "Welcome", "message": message}
        for frame in [orjson.dumps(welcome), *frames]:
            follower.outbox.put_nowait(frame)
        self.followers[ws] = follower
        writer = asyncio.create_task(self.write(follower))
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        finally:
            self.followers.pop(ws, None)
            writer.cancel()

    async def write(self, follower: Follower) -> None:
        while True:
            frame = await follower.outbox.get()
            try:
                await follower.ws.send(frame.decode())
            except ConnectionClosed:
                return


@pytest.fixture
async def hub() -> AsyncIterator[FakeHub]:
    fake = FakeHub()
    async with serve(fake.handler, "127.0.0.1", 0) as server:
        fake.server = server
        yield fake


async def states(stream: Any, count: int) -> list[dict[str, Any]]:
    """The next ``count`` SetAgentState events of a stream."""
    got: list[dict[str, Any]] = []
    while len(got) < count:
        envelope = await within(stream.get())
        if envelope.get("subtopic") == "SetAgentState":
            got.append(envelope)
    return got


async def dropped_and_back(hub: FakeHub, bus: BridgeClient, publish: Any) -> None:
    """Cut every connection, run ``publish`` while the client cannot come back, then let it."""
    hub.accepting = False
    hub.cut()
    await within(bus.wait_for_state(ConnectionState.RECONNECTING))
    publish()
    hub.accepting = True
    await within(bus.wait_for_state(ConnectionState.OPEN))


# ----- positions -----------------------------------------------------------------------------


def test_a_position_reads_and_prints_as_epoch_colon_offset() -> None:
    position = Position.parse("k3v9Xq2bT0c:12")
    assert position == Position("k3v9Xq2bT0c", 12)
    assert str(position) == "k3v9Xq2bT0c:12"
    assert Position.parse("a:b:0") == Position("a:b", 0)  # the offset is after the last colon
    for bad in ("12", ":12", "abc:", "abc:-1", "abc:1.5", "abc:x", "x" * 65 + ":1"):
        with pytest.raises(ValueError):
            Position.parse(bad)


def test_the_book_keeps_the_highest_offset_per_epoch_and_guards_against_repeats() -> None:
    book = PositionBook()
    assert book.admit("a", {"offset": 3, "epoch": "e"})
    assert book.admit("a", {"offset": 4, "epoch": "e"})
    assert not book.admit("a", {"offset": 4, "epoch": "e"})  # delivered already
    assert not book.admit("a", {"offset": 2, "epoch": "e", "recovered": True})
    assert book.duplicates == 2
    assert book.admit("a", {"offset": 1, "epoch": "f"})  # a new epoch replaces the entry
    assert book.get("a") == Position("f", 1)
    # A retained replay is the state, not the stream: always delivered, never lowers the entry.
    assert book.admit("a", {"offset": 9, "epoch": "f", "retained": True})
    assert book.admit("a", {"offset": 5, "epoch": "f", "retained": True})
    assert book.admit("a", {"offset": 5, "epoch": "old", "retained": True})
    assert book.get("a") == Position("f", 9)
    assert book.admit("a", {"no": "position"})
    assert book.duplicates == 2


def test_recover_is_checked_before_connecting() -> None:
    url = "ws://127.0.0.1:1/ws"
    with pytest.raises(ValueError, match="Position"):
        BridgeClient(url, agent="a", recover={"a": Position("e", 1)})
    with pytest.raises(ValueError, match="maps agent names"):
        BridgeClient(url, role="supervisor", agents=["*"], recover=Position("e", 1))
    with pytest.raises(ValueError, match="provider"):
        BridgeClient(url, agent="a", role="provider", recover=Position("e", 1))
    with pytest.raises(ValueError):
        Position("e", -1)


# ----- an app ----------------------------------------------------------------------------------


async def test_an_app_that_reconnects_gets_every_missed_event_in_order_once(hub: FakeHub) -> None:
    for state in ("Available", "Break"):
        hub.publish("agent1", state)
    async with BridgeClient(hub.url, agent="agent1", source="test", **FAST) as bus:
        assert bus.recovered is None  # nothing to recover from on a first connection
        assert "recover" not in hub.hellos[0]
        stream = bus.events(SET_AGENT_STATE, current=True)
        (retained,) = await states(stream, 1)
        assert retained["retained"] is True and (retained["offset"], retained["epoch"]) == (2, "epochA")
        assert bus.positions == {"agent1": Position("epochA", 2)}
        hub.publish("agent1", "Lunch")
        assert (await states(stream, 1))[0]["offset"] == 3

        await dropped_and_back(hub, bus, lambda: [hub.publish("agent1", f"S{n}") for n in range(200)])

        assert hub.hellos[-1]["recover"] == {"epoch": "epochA", "offset": 3}
        assert bus.recovered is True
        missed = await states(stream, 200)
        assert [e["message"]["event"] for e in missed] == [f"S{n}" for n in range(200)]
        assert [e["offset"] for e in missed] == list(range(4, 204))
        assert all(e["recovered"] is True and "retained" not in e for e in missed)
        hub.publish("agent1", "Live")
        (live,) = await states(stream, 1)
        assert (live["message"]["event"], live["offset"]) == ("Live", 204) and "recovered" not in live
        assert bus.positions["agent1"] == Position("epochA", 204)
        # No state was replayed after the recovery: what was seen stays current.
        last = bus.last(SET_AGENT_STATE)
        assert last is not None and last["offset"] == 204
        assert bus.duplicates_dropped == 0
        stream.close()


async def test_nothing_missed_still_recovers_and_keeps_the_last_state(hub: FakeHub) -> None:
    hub.publish("agent1", "Break")
    async with BridgeClient(hub.url, agent="agent1", source="test", **FAST) as bus:
        await within(bus.wait_for(SET_AGENT_STATE))
        await dropped_and_back(hub, bus, lambda: None)
        assert hub.hellos[-1]["recover"] == {"epoch": "epochA", "offset": 1}
        assert bus.recovered is True
        state = bus.last(SET_AGENT_STATE)
        assert state is not None and state["message"]["event"] == "Break"  # from before: still current
        assert bus.positions == {"agent1": Position("epochA", 1)}


async def test_a_duplicate_frame_is_dropped_and_counted(hub: FakeHub) -> None:
    async with BridgeClient(hub.url, agent="agent1", source="test", **FAST) as bus:
        stream = bus.events(SET_AGENT_STATE)
        hub.publish("agent1", "Break", twice=True)
        hub.publish("agent1", "Lunch")
        got = await states(stream, 2)
        assert [(e["message"]["event"], e["offset"]) for e in got] == [("Break", 1), ("Lunch", 2)]
        assert bus.duplicates_dropped == 1


async def test_history_too_old_gives_recovered_false_and_the_current_state(hub: FakeHub) -> None:
    hub.publish("agent1", "Available")
    async with BridgeClient(hub.url, agent="agent1", source="test", **FAST) as bus:
        stream = bus.events(SET_AGENT_STATE, current=True)
        await states(stream, 1)

        def many() -> None:
            for n in range(50):
                hub.publish("agent1", f"S{n}")
            hub.keep_last("agent1", 10)  # offsets 2..41 are gone

        await dropped_and_back(hub, bus, many)
        assert hub.hellos[-1]["recover"] == {"epoch": "epochA", "offset": 1}
        assert bus.recovered is False
        (state,) = await states(stream, 1)
        assert state["retained"] is True and state["message"]["event"] == "S49" and state["offset"] == 51
        assert bus.positions == {"agent1": Position("epochA", 51)}


async def test_a_restarted_hub_gives_recovered_false_and_a_new_epoch(hub: FakeHub) -> None:
    for n in range(5):
        hub.publish("agent1", f"S{n}")
    async with BridgeClient(hub.url, agent="agent1", source="test", **FAST) as bus:
        stream = bus.events(SET_AGENT_STATE, current=True)
        await states(stream, 1)

        def restart() -> None:
            hub.restart()
            hub.publish("agent1", "Fresh")  # offset 1 of the new epoch: below the client's 5

        await dropped_and_back(hub, bus, restart)
        assert hub.hellos[-1]["recover"] == {"epoch": "epochA", "offset": 5}
        assert bus.recovered is False
        (state,) = await states(stream, 1)
        assert (state["message"]["event"], state["epoch"], state["offset"]) == ("Fresh", "epochB", 1)
        hub.publish("agent1", "Next")
        assert (await states(stream, 1))[0]["offset"] == 2
        assert bus.positions == {"agent1": Position("epochB", 2)}


async def test_an_app_can_start_from_a_position_kept_from_an_earlier_run(hub: FakeHub) -> None:
    for n in range(6):
        hub.publish("agent1", f"S{n}")
    start = Position("epochA", 3)
    bus = BridgeClient(hub.url, agent="agent1", source="test", recover=start, **FAST)
    stream = bus.events(SET_AGENT_STATE)
    async with bus:
        assert hub.hellos[0]["recover"] == {"epoch": "epochA", "offset": 3}
        assert bus.recovered is True
        got = await states(stream, 3)
        assert [(e["message"]["event"], e["offset"], e["recovered"]) for e in got] == [
            ("S3", 4, True), ("S4", 5, True), ("S5", 6, True)]
        assert bus.positions == {"agent1": Position("epochA", 6)}


async def test_a_start_position_past_the_top_gets_the_retained_state_undropped(hub: FakeHub) -> None:
    hub.publish("agent1", "Break")
    async with BridgeClient(hub.url, agent="agent1", source="test", recover=Position("epochA", 99),
                            **FAST) as bus:
        assert bus.recovered is False
        state = await within(bus.wait_for(SET_AGENT_STATE))
        assert state["retained"] is True and state["offset"] == 1  # not taken for a repeat of 99
        assert bus.positions == {"agent1": Position("epochA", 1)}


async def test_a_token_apps_start_position_is_sent_before_its_agent_is_known(hub: FakeHub) -> None:
    """With a token the agent is known only from Welcome: the start position goes out all the same."""
    hub.publish("agent1", "Break")
    hub.publish("agent1", "Lunch")
    token = issue_token("recovery-tests-secret-0123456789abcdef", agent="agent1", role="app")
    async with BridgeClient(hub.url, token=token, source="test", recover=Position("epochA", 1), **FAST) as bus:
        assert hub.hellos[0]["recover"] == {"epoch": "epochA", "offset": 1}
        assert bus.recovered is True
        state = await within(bus.wait_for(SET_AGENT_STATE, lambda e: e["offset"] == 2))
        assert state["recovered"] is True
        assert bus.positions == {"agent1": Position("epochA", 2)}
        await dropped_and_back(hub, bus, lambda: hub.publish("agent1", "Missed"))
        assert hub.hellos[-1]["recover"] == {"epoch": "epochA", "offset": 2}
        state = await within(bus.wait_for(SET_AGENT_STATE, lambda e: e["offset"] == 3))
        assert state["recovered"] is True


# ----- a supervisor ----------------------------------------------------------------------------


async def test_a_supervisor_recovers_each_agent_it_has_a_position_for(hub: FakeHub) -> None:
    for agent in ("agent1", "agent2", "agent3"):
        hub.publish(agent, "Available")
    async with BridgeClient(hub.url, role="supervisor", agents=["agent1", "agent2"], source="lead",
                            **FAST) as bus:
        stream = bus.events(SET_AGENT_STATE, current=True)
        await states(stream, 2)
        assert bus.positions == {"agent1": Position("epochA", 1), "agent2": Position("epochA", 1)}
        assert bus.recovered is None

        def meanwhile() -> None:
            for n in range(3):
                hub.publish("agent1", f"A{n}")
                hub.publish("agent2", f"B{n}")
            hub.keep_last("agent2", 1)  # agent2's missed events are gone but its last

        await dropped_and_back(hub, bus, meanwhile)
        assert hub.hellos[-1]["recover"] == {"agent1": {"epoch": "epochA", "offset": 1},
                                             "agent2": {"epoch": "epochA", "offset": 1}}
        assert bus.recovered == {"agent1": True, "agent2": False}
        got = await states(stream, 4)
        one = [(e["message"]["event"], e["offset"]) for e in got if e["agent"] == "agent1"]
        two = [e for e in got if e["agent"] == "agent2"]
        assert one == [("A0", 2), ("A1", 3), ("A2", 4)]
        assert all(e["recovered"] is True for e in got if e["agent"] == "agent1")
        assert [(e["message"]["event"], e["offset"], e["retained"]) for e in two] == [("B2", 4, True)]
        assert bus.positions == {"agent1": Position("epochA", 4), "agent2": Position("epochA", 4)}
        assert set(bus.seen_agents) == {"agent1", "agent2"}


async def test_a_supervisor_asks_only_within_its_scope(hub: FakeHub) -> None:
    hub.publish("agent1", "Available")
    start = {"agent1": Position("epochA", 0), "agent9": Position("epochA", 4)}
    async with BridgeClient(hub.url, role="supervisor", agents=["agent1"], source="lead", recover=start,
                            **FAST) as bus:
        assert hub.hellos[0]["recover"] == {"agent1": {"epoch": "epochA", "offset": 0}}
        assert bus.recovered == {"agent1": True}
        state = await within(bus.wait_for(SET_AGENT_STATE, agent="agent1"))
        assert state["recovered"] is True and state["offset"] == 1


def test_a_supervisors_recover_fits_in_a_hello() -> None:
    book = PositionBook()
    for n in range(6000):
        book.set(f"agent{n}", Position("k3v9Xq2bT0c", 100_000 + n))
    asked = book.supervisor_recover(("*",))
    assert 0 < len(asked) < 6000
    assert len(orjson.dumps({a: p.wire() for a, p in asked.items()})) <= 48 * 1024
    assert "agent5999" in asked and "agent0" not in asked  # the most recently updated first


# ----- listen --since ---------------------------------------------------------------------------


async def listen(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "listen", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
    )
    out, err = await within(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["--agent", "agent1", "--since", "12"], "is not EPOCH:OFFSET"),
        (["--agent", "agent1", "--since", "abc:-3"], "not a whole number"),
        (["--agent", "agent1", "--since", "a:1", "--since", "b:2"], "an app gives one EPOCH:OFFSET"),
        (["--agent", "agent1", "--since", "agent1=a:1"], "an app gives one EPOCH:OFFSET"),
        (["--supervisor", "--agents", "agent1", "--since", "a:1"], "a supervisor gives AGENT=EPOCH:OFFSET"),
        (["--supervisor", "--agents", "agent1", "--since", "agent2=a:1"], "agent2 is not one of --agents"),
        (["--supervisor", "--since", "agent1=a:1", "--since", "agent1=a:2"], "agent1 is given twice"),
    ],
)
async def test_bad_since_is_a_usage_error(args: list[str], fault: str) -> None:
    status, out, err = await listen("--url", "ws://127.0.0.1:1/ws", *args)
    assert status == 2
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and fault in errors[0], err


async def test_listen_since_prints_the_missed_events_with_their_positions(hub: FakeHub) -> None:
    for n in range(5):
        hub.publish("agent1", f"S{n}")
    task = asyncio.ensure_future(listen("--agent", "agent1", "--url", hub.url, "--since", "epochA:2",
                                        "--count", "4"))
    await eventually(lambda: hub.followers, every=0.01)
    hub.publish("agent1", "Live")
    status, out, err = await task
    assert status == 0, err
    lines = [orjson.loads(line) for line in out.splitlines()]
    assert [(e["message"]["event"], e["offset"], e["epoch"], e.get("recovered")) for e in lines] == [
        ("S2", 3, "epochA", True), ("S3", 4, "epochA", True), ("S4", 5, "epochA", True),
        ("Live", 6, "epochA", None)]
    assert list(lines[-1])[-2:] == ["offset", "epoch"]  # printed as received
    assert hub.hellos[0]["recover"] == {"epoch": "epochA", "offset": 2}
    assert "recovered 3 events from epochA:2\n" in err


async def test_listen_since_says_when_it_could_not_recover(hub: FakeHub) -> None:
    hub.publish("agent1", "Break")
    status, out, err = await listen("--agent", "agent1", "--url", hub.url, "--since", "old:7", "--count", "2",
                                    "--pretty")
    assert status == 0, err
    assert ("could not recover from old:7 (history too old or the hub restarted): showing the current state\n"
            in err)
    first, second = out.splitlines()
    assert " @epochA:1  ProviderStatus (retained): provider connected" in first
    assert " @epochA:1  SetAgentState (retained): Break" in second


async def test_a_supervisor_listens_since_a_position_per_agent(hub: FakeHub) -> None:
    for n in range(3):
        hub.publish("agent1", f"A{n}")
        hub.publish("agent2", f"B{n}")
    status, out, err = await listen("--supervisor", "--agents", "agent1,agent2", "--url", hub.url,
                                    "--since", "agent1=epochA:1", "--since", "agent2=epochB:1",
                                    "--count", "4", "--pretty")
    assert status == 0, err
    assert hub.hellos[0]["recover"] == {"agent1": {"epoch": "epochA", "offset": 1},
                                        "agent2": {"epoch": "epochB", "offset": 1}}
    assert "agent2: could not recover from epochB:1" in err
    assert "agent1: recovered 2 events from epochA:1\n" in err
    lines = out.splitlines()
    assert any(" @epochA:3  agent1  SetAgentState (recovered): A2" in line for line in lines), out
    assert any(" @epochA:3  agent2  SetAgentState (retained): B2" in line for line in lines), out


async def test_listen_recovers_across_its_own_reconnects_and_says_so(hub: FakeHub) -> None:
    hub.publish("agent1", "Break")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "listen", "--agent", "agent1", "--url", hub.url, "--count", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")},
    )
    assert process.stdout is not None
    first = [orjson.loads(await within(process.stdout.readline(), 30)) for _ in range(2)]
    assert [e["retained"] for e in first] == [True, True]
    hub.cut()
    hub.publish("agent1", "Missed")  # nobody connected: only in the history
    out, err = await within(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    (missed,) = [orjson.loads(line) for line in out.decode().splitlines()]
    assert (missed["message"]["event"], missed["offset"], missed["recovered"]) == ("Missed", 2, True)
    assert hub.hellos[-1]["recover"] == {"epoch": "epochA", "offset": 1}
    assert f"# open: {hub.url} (recovered the missed events)" in err.decode()


# ----- against the real hub (H-core's hub side of issue 14) ------------------------------------


async def test_end_to_end_the_real_hub_replays_what_a_cut_off_client_missed() -> None:
    """END TO END, the real hub (HubServer in-process, open mode, memory broker): an app whose
    socket is cut while 200 events of its agent are published gets all 200 on its reconnect,
    in order, none twice, marked recovered, then the live stream."""
    from bridge.hub.config import HubConfig
    from bridge.hub.server import HubServer
    from bridge.sim.virtual_agent import VirtualAgent

    config = HubConfig(host="127.0.0.1", port=0, open_mode=True, rate_limit=10_000, rate_burst=1000)
    async with HubServer(config) as real, VirtualAgent(real.url, agent="agent1", **FAST), \
            BridgeClient(real.url, agent="agent1", source="recorder", **FAST) as bus, \
            BridgeClient(real.url, agent="agent1", source="driver", **FAST) as driver:
        stream = bus.events(SET_AGENT_STATE)
        seen = await within(bus.wait_for(SET_AGENT_STATE))
        # Keep the recorder away until the events are published: its reconnects wait on a gate.
        gate = asyncio.Event()
        reopen = bus._open

        async def gated() -> Any:
            await gate.wait()
            return await reopen()

        bus._open = gated  # type: ignore[method-assign]
        assert bus._ws is not None
        bus._ws.transport.abort()  # cut, not closed
        await within(bus.wait_for_state(ConnectionState.RECONNECTING))
        answers = []
        for n in range(200):
            reason = ("Break", "Lunch")[n % 2]
            answers.append(await within(driver.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": reason})))
        gate.set()
        await within(bus.wait_for_state(ConnectionState.OPEN))
        assert bus.recovered is True
        missed: list[dict[str, Any]] = []
        while len(missed) < 200:  # the stream may or may not have caught the first retained replay
            envelope = await within(stream.get())
            if envelope["offset"] > seen["offset"]:
                missed.append(envelope)
        assert [e["offset"] for e in missed] == [a["offset"] for a in answers]
        assert [e["offset"] for e in missed] == list(range(missed[0]["offset"], missed[0]["offset"] + 200))
        assert all(e["recovered"] is True and e["epoch"] == seen["epoch"] for e in missed)
        live = await within(driver.request("Amazon/Agent/SetReady"))
        after = await within(stream.get())
        assert after["offset"] == live["offset"] == missed[-1]["offset"] + 1 and "recovered" not in after
        assert bus.duplicates_dropped == 0
