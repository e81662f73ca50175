"""The command line as a supervisor: ``token --role supervisor``, ``listen`` and ``send``
(and ``call``) with a supervisor token or ``--supervisor`` on an open hub, and the demo's floor.

As in tests/test_cli_apps.py, the hub and the virtual agents run in the test's
event loop and the command runs as ``python -m bridge`` in a subprocess.
"""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator

import orjson
import pytest

from bridge.cli import apps as cli_apps
from bridge.client import BridgeClient
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol.tokens import verify_token
from bridge.sim.agent_model import AgentModel
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST
from .test_cli_apps import ROOT, SECRET, read_line, run, spawn, stop, within

STATE = "Amazon/Agent/SetAgentState"


@pytest.fixture
async def two_agents(hub: HubServer) -> AsyncIterator[dict[str, VirtualAgent]]:
    """agent1 Available and agent2 on Break, virtual, on the open ``hub``."""
    agents = {
        "agent1": VirtualAgent(hub.url, agent="agent1", **FAST),
        "agent2": VirtualAgent(hub.url, model=AgentModel("agent2", initial_state="Break"), agent="agent2", **FAST),
    }
    for va in agents.values():
        await va.start()
    yield agents
    for va in agents.values():
        await va.close()


@pytest.fixture
async def secured() -> AsyncIterator[tuple[HubServer, dict[str, VirtualAgent]]]:
    """A secured hub with agent7 and agent8 as virtual providers (tokens signed with ``SECRET``)."""
    from bridge.protocol.tokens import issue_token

    async with HubServer(HubConfig(host="127.0.0.1", port=0, secret=SECRET, request_timeout=5.0)) as hub:
        agents = {name: VirtualAgent(hub.url, token=issue_token(SECRET, agent=name, role="provider"), **FAST)
                  for name in ("agent7", "agent8")}
        for va in agents.values():
            await va.start()
        yield hub, agents
        for va in agents.values():
            await va.close()


async def supervisor_token(*args: str) -> str:
    status, out, err = await run("token", "--role", "supervisor", *args, BRIDGE_SECRET=SECRET)
    assert status == 0, err
    return out.strip()


# ----- token --------------------------------------------------------------------------------


async def test_token_for_a_supervisor() -> None:
    claims = verify_token(SECRET, await supervisor_token("--name", "lead1", "--agents", "agent1,agent2", "--control"))
    assert (claims.agent, claims.role, claims.agents, claims.control) == (
        "lead1", "supervisor", ("agent1", "agent2"), True)
    every = verify_token(SECRET, await supervisor_token("--agents", "*"))
    assert (every.agent, every.agents, every.control) == ("supervisor", ("*",), False)


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["--role", "supervisor"], "needs --agents"),
        (["--role", "supervisor", "--agents", ""], "non-empty"),
        (["--role", "supervisor", "--agents", " , "], "non-empty"),
        (["--role", "supervisor", "--agents", "*,agent1"], "never mixed"),
        (["--role", "supervisor", "--agents", "x" * 65], "1 to 64"),
        (["--role", "supervisor", "--agent", "agent1", "--agents", "*"], "--agents, itself with --name"),
        (["--agent", "agent1", "--control"], "for --role supervisor"),
        (["--agent", "agent1", "--agents", "a"], "for --role supervisor"),
        (["--role", "provider"], "missing --agent"),
        (["--agent", ""], "'--agent': is empty"),
    ],
)
async def test_token_usage_errors(args: list[str], fault: str) -> None:
    status, out, err = await run("token", *args, BRIDGE_SECRET=SECRET)
    assert status == 2 and not out
    assert fault in err


# ----- listen -------------------------------------------------------------------------------


async def test_listen_as_a_supervisor_on_an_open_hub(hub: HubServer, two_agents: dict[str, VirtualAgent]) -> None:
    process = await spawn("listen", "--supervisor", "--agents", "*", "--url", hub.url, "--quiet")
    frames = [orjson.loads(await read_line(process.stdout)) for _ in range(4)]
    by_agent = {(f["agent"], f["subtopic"]) for f in frames}
    assert by_agent == {(a, k) for a in ("agent1", "agent2") for k in ("ProviderStatus", "SetAgentState")}
    assert all(f["retained"] is True and next(iter(f)) == "agent" for f in frames)
    await two_agents["agent2"].start_call()
    live = orjson.loads(await read_line(process.stdout))
    assert (live["agent"], live["subtopic"]) in {("agent2", "SetAgentState"), ("agent2", "InboundCallStateChange")}
    assert "retained" not in live
    status, _, _ = await stop(process)
    assert status == 0


async def test_listen_with_a_supervisor_token_and_one_agent_shown(
    secured: tuple[HubServer, dict[str, VirtualAgent]]
) -> None:
    hub, _ = secured
    token = await supervisor_token("--name", "lead1", "--agents", "agent7,agent8")
    status, out, err = await run("listen", "--url", hub.url, "--token", token, "--kind", STATE, "--count", "2",
                                 "--quiet")
    assert status == 0, err
    assert sorted(orjson.loads(line)["agent"] for line in out.splitlines()) == ["agent7", "agent8"]
    # --agent with a supervisor token shows that agent only.
    status, out, err = await run("listen", "--url", hub.url, "--agent", "agent8", "--kind", STATE, "--count", "1",
                                 "--quiet", BRIDGE_TOKEN=token)
    assert status == 0, err
    assert orjson.loads(out)["agent"] == "agent8"


async def test_listen_pretty_names_each_agent(hub: HubServer, two_agents: dict[str, VirtualAgent]) -> None:
    status, out, err = await run("listen", "--supervisor", "--url", hub.url, "--pretty", "--count", "4", "--quiet")
    assert status == 0, err
    lines = out.splitlines()
    assert any(re.search(r"  agent2  SetAgentState \(retained\): Break", line) for line in lines), out
    assert any(re.search(r"  agent1  ProviderStatus \(retained\): provider connected", line) for line in lines), out


async def test_listen_usage_errors_for_supervisors(hub: HubServer) -> None:
    status, _, err = await run("listen", "--agents", "*", "--url", hub.url)
    assert status == 2 and "add --supervisor" in err
    status, _, err = await run("listen", "--supervisor", "--agents", "*,a", "--url", hub.url)
    assert status == 2 and "never mixed" in err
    status, _, err = await run("listen", "--supervisor", "--token", "app-token", "--url", hub.url)
    assert status == 2 and "supervisor token" in err


async def test_listen_with_a_refused_supervisor_token(
    secured: tuple[HubServer, dict[str, VirtualAgent]]
) -> None:
    hub, _ = secured
    from bridge.protocol.tokens import issue_token

    token = issue_token("another-secret-0123456789abcdef0123", agent="lead1", role="supervisor", agents=["*"])
    status, _, err = await run("listen", "--url", hub.url, "--token", token)
    assert status == 4 and "NOT_AUTHENTICATED" in err


# ----- send and call ------------------------------------------------------------------------


async def test_send_for_an_agent_with_a_supervisor_token(
    secured: tuple[HubServer, dict[str, VirtualAgent]]
) -> None:
    hub, agents = secured
    token = await supervisor_token("--name", "lead1", "--agents", "agent7,agent8", "--control")
    status, out, err = await run("send", "SetNotReady", "--reason", "Break", "--agent", "agent7",
                                 "--url", hub.url, "--token", token)
    assert status == 0, err
    answer = orjson.loads(out)
    assert answer["agent"] == "agent7" and answer["message"]["event"] == "Break"
    assert agents["agent7"].model.state.name == "Break"
    assert agents["agent8"].model.state.name == "Available"


async def test_send_refusals_keep_the_exit_statuses(secured: tuple[HubServer, dict[str, VirtualAgent]]) -> None:
    hub, agents = secured
    watcher = await supervisor_token("--agents", "agent7")
    lead = await supervisor_token("--agents", "agent7,agent9", "--control")

    async def send(token: str, *args: str) -> tuple[int, str]:
        status, out, err = await run("send", "SetReady", "--url", hub.url, "--token", token, *args)
        assert not out
        return status, err

    status, err = await send(watcher, "--agent", "agent7")  # no control
    assert status == 4 and "FORBIDDEN" in err
    status, err = await send(lead, "--agent", "agent8")  # outside the scope
    assert status == 4 and "FORBIDDEN" in err
    status, err = await send(lead, "--agent", "agent9")  # in scope, no provider
    assert status == 5 and "PROVIDER_UNAVAILABLE" in err
    status, err = await send(lead)  # no --agent: said before connecting
    assert status == 2 and "--agent names the agent to send for" in err
    assert agents["agent7"].model.state.name == "Available"


async def test_send_and_call_as_a_supervisor_on_an_open_hub(
    hub: HubServer, two_agents: dict[str, VirtualAgent]
) -> None:
    status, out, err = await run("send", "SetNotReady", "--reason", "Lunch", "--supervisor", "--agent", "agent1",
                                 "--url", hub.url)
    assert status == 0, err
    assert orjson.loads(out)["agent"] == "agent1"
    assert two_agents["agent1"].model.state.name == "Lunch"
    await two_agents["agent2"].start_call()
    status, out, err = await run("call", "list", "--supervisor", "--agent", "agent2", "--url", hub.url)
    assert status == 0, err
    assert [orjson.loads(line)["event"] for line in out.splitlines()] == ["connected"]


# ----- the demo -----------------------------------------------------------------------------


def test_demo_links_the_wallboard() -> None:
    out = io.StringIO()
    cli_apps._print_demo(8765, "http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws", 8, True, out, 45.0, wallboard=True)
    text = out.getvalue()
    assert "http://127.0.0.1:8765/wallboard.html?agents=*&control=1" in text
    assert "connect-bridge listen --supervisor --agents '*'" in text
    assert "connect-bridge send SetNotReady --reason Break --supervisor --agent agent2\n" in text


async def test_demo_shows_a_floor_at_work() -> None:
    """Several agents in different states, one on a call, and the floor moving agents by itself."""
    process = await spawn("demo", "--port", "0", "--agents", "6", "--floor-every", "0.5", "--call-every", "0")
    lines: list[str] = []
    while not any("Ctrl-C stops the demo." in line for line in lines):
        lines.append(await read_line(process.stdout))
    text = "\n".join(lines)
    url = re.search(r"hub\s+(ws://127\.0\.0\.1:\d+/ws)", text)
    assert url is not None, text
    if (ROOT / "static" / "wallboard.html").is_file():
        assert re.search(r"http://127\.0\.0\.1:\d+/wallboard\.html\?agents=\*&control=1", text), text
    async with BridgeClient(url.group(1), role="supervisor", agents=["*"], **FAST) as bus:
        starts = {}
        for number in range(1, 7):
            event = await within(bus.wait_for(STATE, agent=f"agent{number}"))
            starts[f"agent{number}"] = event["message"]["event"]
        assert starts["agent1"] == starts["agent2"] == "Available"
        assert starts["agent3"] == "Break" and starts["agent4"] == "Busy" and starts["agent5"] == "Lunch"
        # The floor changes agent3..6 by itself (through its own supervisor, over the bus).
        moved = await within(bus.wait_for(STATE, lambda e: e["agent"] in ("agent3", "agent5", "agent6")
                                          and "retained" not in e, current=False))
        assert moved["agent"] in ("agent3", "agent5", "agent6")
    status, out, _ = await stop(process)
    assert status == 0 and "demo stopped" in out
