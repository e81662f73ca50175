"""``connect-bridge send``, ``listen``, ``virtual-agent`` and ``demo``, end to end in subprocesses.

The hub (and, for send and listen, the virtual agent) runs in the test's own
event loop; the command under test runs as ``python -m bridge`` (the same entry
point as the ``connect-bridge`` script) in a subprocess.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson
import pytest

from bridge.cli import apps as cli_apps
from bridge.client import (
    AgentStateNotFound,
    BridgeClient,
    Calls,
    ClientClosed,
    ConnectFailed,
    Forbidden,
    InvalidRequest,
    MuteFailed,
    NotAuthenticated,
    ProviderUnavailable,
    RateLimited,
    RequestTimeout,
    UpdateAgentStateFailed,
)
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol.catalog import Catalog
from bridge.protocol.tokens import issue_token
from bridge.sim.virtual_agent import VirtualAgent

from . import helpers
from .helpers import FAST, free_port

ROOT = Path(__file__).resolve().parents[1]
SECRET = "cli-tests-secret-0123456789abcdef0123"
CATALOG = Catalog.load()
T = TypeVar("T")


def within(awaitable: Awaitable[T], seconds: float = 20.0) -> Awaitable[T]:
    """The shared safety net, with room for subprocesses on a loaded machine."""
    return helpers.within(awaitable, seconds)


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


async def spawn(*args: str, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env=environment(**env),
    )


async def run(*args: str, **env: str) -> tuple[int, str, str]:
    """Run a command to its end: exit status, stdout, stderr."""
    process = await spawn(*args, **env)
    out, err = await within(process.communicate())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def read_line(stream: asyncio.StreamReader | None) -> str:
    assert stream is not None
    line = await within(stream.readline())
    assert line, "the command ended before printing the expected line"
    return line.decode().rstrip("\n")


async def stop(process: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Ctrl-C, then collect what the command printed."""
    process.send_signal(signal.SIGINT)
    out, err = await within(process.communicate())
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# ----- send ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "event", "subtopic"),
    [
        (["SetNotReady", "--reason", "Break"], "Break", "SetAgentState"),
        (["setnotready", "--reason", "Lunch"], "Lunch", "SetAgentState"),
        (["SetReady"], "Available", "SetAgentState"),
        (["SetReady", "--reason", "Available"], "Available", "SetAgentState"),
        (["Logout"], "Offline", "SetAgentState"),
        (["GetStates"], None, "GetStates"),
        (["StateSync"], None, "StateSync"),
        (
            ["Amazon/Agent/SetNotReady", "--data", '{"ReasonCodeId": "Training"}'],
            "Training",
            "SetAgentState",
        ),
    ],
)
async def test_send_prints_the_answering_event(
    hub: HubServer, va: VirtualAgent, args: list[str], event: str | None, subtopic: str
) -> None:
    status, out, err = await run("send", *args, "--agent", "agent1", "--url", hub.url)
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 1  # one compact JSON line
    answer = orjson.loads(lines[0])
    assert answer["subtopic"] == subtopic
    assert "replyTo" in answer
    assert CATALOG.validate(answer) is None
    if event is not None:
        assert answer["message"]["event"] == event


async def test_send_mute_and_unmute_on_a_call(hub: HubServer, va: VirtualAgent) -> None:
    await va.start_call()
    status, out, _ = await run("send", "Mute", "--agent", "agent1", "--url", hub.url, "--pretty")
    assert status == 0
    assert orjson.loads(out)["message"]["data"]["muted"] is True
    assert out.startswith("{\n  ")  # --pretty indents
    status, out, _ = await run("send", "Unmute", "--agent", "agent1", "--url", hub.url)
    assert (status, orjson.loads(out)["message"]["data"]["muted"]) == (0, False)


@pytest.mark.parametrize(
    ("args", "code", "error_type", "msg"),
    [
        (
            ["SetNotReady", "--reason", "Coffee"],
            1,
            "AGENT_STATE_NOT_FOUND",
            "Specified Agent State not found.",
        ),
        (["Mute"], 1, "MUTE_FAILED", "Mute could not be changed."),
        (
            ["SetNotReady", "--data", '{"ReasonCodeId": 5}'],
            7,
            "SCHEMA_VIOLATION",
            "The message is not valid for its kind.",
        ),
        (["Amazon/Agent/Dance"], 7, "UNKNOWN_MESSAGE", "This kind of message is not known."),
    ],
)
async def test_send_reports_errors(
    hub: HubServer, va: VirtualAgent, args: list[str], code: int, error_type: str, msg: str
) -> None:
    status, out, err = await run("send", *args, "--agent", "agent1", "--url", hub.url)
    assert status == code
    assert out == ""
    assert f"error: {msg} [{error_type}]" in err


async def test_send_fail_updates(hub: HubServer, va: VirtualAgent) -> None:
    await va.set_fail_updates(True)
    status, _, err = await run(
        "send", "SetNotReady", "--reason", "Break", "--agent", "agent1", "--url", hub.url
    )
    assert status == 1 and "[UPDATE_AGENT_STATE_FAILED]" in err


async def test_send_without_provider(hub: HubServer) -> None:
    status, _, err = await run("send", "GetStates", "--agent", "nobody", "--url", hub.url)
    assert status == cli_apps.EXIT_NO_PROVIDER == 5
    assert "[PROVIDER_UNAVAILABLE]" in err


async def test_send_times_out(hub: HubServer) -> None:
    async with BridgeClient(hub.url, agent="agent1", role="provider", **FAST):  # never answers
        status, _, err = await run(
            "send", "GetStates", "--agent", "agent1", "--url", hub.url, "--timeout", "0.2"
        )
    assert status == cli_apps.EXIT_TIMEOUT == 6
    assert "[REQUEST_TIMEOUT]" in err


async def test_send_to_nothing() -> None:
    status, _, err = await run(
        "send", "GetStates", "--agent", "agent1", "--url", f"ws://127.0.0.1:{free_port()}/ws"
    )
    assert status == cli_apps.EXIT_CONNECTION == 3
    assert "[CONNECT_FAILED]" in err


async def test_send_with_tokens() -> None:
    async with HubServer(HubConfig(host="127.0.0.1", port=0, secret=SECRET)) as hub:
        provider = issue_token(SECRET, agent="agent1", role="provider")
        async with VirtualAgent(hub.url, token=provider, **FAST):
            good = issue_token(SECRET, agent="agent1", role="app")
            status, out, err = await run("send", "GetStates", "--url", hub.url, BRIDGE_TOKEN=good)
            assert status == 0, err
            assert orjson.loads(out)["subtopic"] == "GetStates"
            status, _, err = await run(
                "send", "GetStates", "--url", hub.url, "--token", provider
            )  # wrong role
            assert status == cli_apps.EXIT_AUTH == 4
            assert "[NOT_AUTHENTICATED]" in err


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["SetNotReady", "--agent", "a"], "SetNotReady needs --reason"),
        (["Dance", "--agent", "a"], "'Dance' is not one of"),
        (
            ["Logout", "--reason", "Break", "--agent", "a"],
            "--reason applies to SetNotReady and SetReady",
        ),
        (["GetStates"], "give --token"),
        (["GetStates", "--agent", "a", "--token", "t"], "not both"),
        (["SetReady", "--agent", "a", "--data", "[1]"], "must be a JSON object"),
        (["GetStates", "--agent", "a", "--timeout", "-1"], "Invalid value for '--timeout'"),
        (["GetStates", "--agent", "a", "--timeout", "0"], "Invalid value for '--timeout'"),
        (["GetStates", "--agent", ""], "Invalid value for '--agent': is empty"),
        (["GetStates", "--agent", "  "], "Invalid value for '--agent': is empty"),
        (["GetStates", "--token", ""], "Invalid value for '--token' (env var: 'BRIDGE_TOKEN'): is empty"),
    ],
)
async def test_send_usage_errors(args: list[str], fault: str) -> None:
    status, _, err = await run("send", *args)
    assert status == cli_apps.EXIT_USAGE == 2
    assert fault in err


@pytest.mark.parametrize("command", [["send", "GetStates"], ["listen"]])
async def test_a_url_without_the_hub_path_is_named_not_dumped(hub: HubServer, command: list[str]) -> None:
    """ws://host:port answers with the landing page: one line that names the right URL, no HTML."""
    page = hub.url.removesuffix("/ws")
    status, _, err = await run(*command, "--agent", "agent1", "--url", page)
    assert status == cli_apps.EXIT_CONNECTION == 3
    assert "html" not in err.lower()  # listen's own connection notes aside, nothing of the page
    assert [line for line in err.splitlines() if not line.startswith("# ")] == [
        f"error: {page} is not a WebSocket endpoint (HTTP 200); did you mean {hub.url}? [CONNECT_FAILED]"
    ]


@pytest.mark.parametrize(
    ("url", "fault"),
    [
        ("http://127.0.0.1:8765/ws", "has http://; the hub's URL is ws:// or wss://, e.g. ws://127.0.0.1:8765/ws"),
        ("https://hub.example.com/ws", "has https://"),
        ("127.0.0.1:8765", "has no scheme"),
        ("ws:///ws", "names no host"),
        ("ws://127.0.0.1:port/ws", "is not a URL"),
    ],
)
async def test_a_url_that_is_not_ws_is_a_usage_error(url: str, fault: str) -> None:
    status, _, err = await run("send", "GetStates", "--agent", "agent1", "--url", url)
    assert status == cli_apps.EXIT_USAGE == 2
    assert fault in err and "cannot be reached" not in err


# ----- listen -------------------------------------------------------------------------------


async def test_listen_streams_json_lines(hub: HubServer, va: VirtualAgent) -> None:
    process = await spawn("listen", "--agent", "agent1", "--url", hub.url, "--count", "4")
    first = [orjson.loads(await read_line(process.stdout)) for _ in range(2)]
    assert [(e["subtopic"], e["retained"]) for e in first] == [
        ("ProviderStatus", True),
        ("SetAgentState", True),
    ]
    async with BridgeClient(hub.url, agent="agent1", **FAST) as bus:
        await within(bus.request("Amazon", "Agent", "SetNotReady", {"ReasonCodeId": "Break"}))
        await within(bus.request("Amazon", "Agent", "GetStates"))  # another app's question: not shown
        await within(bus.request("Amazon", "Agent", "SetReady"))
    out, err = await within(process.communicate())
    assert process.returncode == 0, err
    later = [orjson.loads(line) for line in out.decode().splitlines()]
    assert [(e["subtopic"], e["message"]["event"]) for e in later] == [
        ("SetAgentState", "Break"), ("SetAgentState", "Available")]
    assert "# open" in err.decode()


@pytest.mark.parametrize("option", [["--answers"], ["--kind", "Amazon/Agent/GetStates"]])
async def test_listen_shows_other_apps_answers_when_asked(
    hub: HubServer, va: VirtualAgent, option: list[str]
) -> None:
    process = await spawn("listen", "--agent", "agent1", "--url", hub.url, *option)
    while not (await read_line(process.stderr)).startswith("# open"):
        pass  # joined: the answer below reaches it
    async with BridgeClient(hub.url, agent="agent1", **FAST) as bus:
        asked = await within(bus.request("Amazon", "Agent", "GetStates"))
    while (shown := orjson.loads(await read_line(process.stdout)))["subtopic"] != "GetStates":
        assert shown.get("retained"), shown  # only the replay comes before it
    assert shown["message"] == asked["message"]
    status, _, err = await stop(process)
    assert status == 0, err


async def test_listen_filters_kinds(hub: HubServer, va: VirtualAgent) -> None:
    process = await spawn(
        "listen",
        "--agent",
        "agent1",
        "--url",
        hub.url,
        "--kind",
        "Amazon/Agent/SetAgentState",
        "--count",
        "2",
        "--quiet",
    )
    assert orjson.loads(await read_line(process.stdout))["retained"] is True
    await va.start_call()
    out, err = await within(process.communicate())
    assert process.returncode == 0
    assert orjson.loads(out)["message"]["event"] == "Busy"
    assert err == b""


async def test_listen_pretty(hub: HubServer, va: VirtualAgent) -> None:
    process = await spawn(
        "listen", "--agent", "agent1", "--url", hub.url, "--pretty", "--count", "4"
    )
    assert "ProviderStatus (retained): provider connected" in await read_line(process.stdout)
    assert "SetAgentState (retained): Available (routable) · " in await read_line(process.stdout)
    await va.start_call()  # an answered call: its call event, then the agent's Busy
    out, _ = await within(process.communicate())
    assert re.search(r"InboundCallStateChange: call \w{8} inbound connected · \+15555550123 → ", out.decode())
    assert re.search(
        r"SetAgentState: Busy \(system\) · \d+:\d\d in state · muted: no", out.decode()
    )


async def test_listen_stops_after_duration_and_on_ctrl_c(hub: HubServer) -> None:
    status, out, _ = await run("listen", "--agent", "agent1", "--url", hub.url, "--duration", "0.2")
    assert status == 0
    assert orjson.loads(out.splitlines()[0])["message"] == {"connected": False}
    process = await spawn("listen", "--agent", "agent1", "--url", hub.url)
    await read_line(process.stdout)
    status, _, _ = await stop(process)
    assert status == 0


async def test_listen_cannot_connect() -> None:
    status, _, err = await run(
        "listen", "--agent", "agent1", "--url", f"ws://127.0.0.1:{free_port()}/ws"
    )
    assert status == 3 and "[CONNECT_FAILED]" in err


# ----- virtual-agent ------------------------------------------------------------------------


async def test_virtual_agent_command(hub: HubServer, tmp_path: Path) -> None:
    states = tmp_path / "states.toml"
    states.write_text(
        '[[states]]\nname = "Ready"\ntype = "routable"\n'
        '[[states]]\nname = "Coaching"\ntype = "not_routable"\n'
        '[[states]]\nname = "Gone"\ntype = "offline"\n'
    )
    process = await spawn(
        "virtual-agent",
        "--agent",
        "agent6",
        "--url",
        hub.url,
        "--states-file",
        str(states),
        "--name",
        "Sam",
    )
    async with BridgeClient(hub.url, agent="agent6", **FAST) as bus:
        state = await within(bus.wait_for("Amazon/Agent/SetAgentState"))
        assert (state["message"]["event"], state["message"]["data"]["name"]) == ("Ready", "Sam")
        listing = await within(bus.request("Amazon", "Agent", "GetStates"))
        assert [s["label"] for s in listing["message"]["states"]] == ["Ready", "Coaching", "Gone"]
        with pytest.raises(AgentStateNotFound):
            await within(bus.request("Amazon", "Agent", "SetNotReady", {"ReasonCodeId": "Break"}))
        # SIGUSR1 rings a call; once answered, Mute works.
        with pytest.raises(MuteFailed):
            await within(bus.request("Amazon", "Agent", "Mute"))
        process.send_signal(signal.SIGUSR1)
        ringing = await within(bus.wait_for("Amazon/InboundCall/InboundCallStateChange"))
        assert ringing["message"]["call"]["CallVariables"]["ANI"] == "+15555550123"
        await within(Calls(bus).answer())
        await within(
            bus.wait_for("Amazon/Agent/SetAgentState", lambda e: e["message"]["event"] == "Busy")
        )
        muted = await within(bus.request("Amazon", "Agent", "Mute"))
        assert muted["message"]["data"]["muted"] is True
    status, _, err = await stop(process)
    assert status == 0
    assert "agent6: open" in err and "Mute" in err and "AGENT_STATE_NOT_FOUND" in err


async def test_virtual_agent_flags(hub: HubServer) -> None:
    process = await spawn(
        "virtual-agent",
        "--agent",
        "agent7",
        "--url",
        hub.url,
        "--fail-updates",
        "--on-call",
        "--state",
        "Open=routable",
        "--state",
        "Rest=not_routable",
        "--state",
        "Off=offline",
        "--initial-state",
        "Rest",
        "--quiet",
    )
    async with BridgeClient(hub.url, agent="agent7", **FAST) as bus:
        state = await within(bus.wait_for("Amazon/Agent/SetAgentState"))
        assert state["message"]["event"] == "Busy"
        with pytest.raises(UpdateAgentStateFailed):
            await within(bus.request("Amazon", "Agent", "SetReady"))
    status, _, err = await stop(process)
    assert status == 0 and err == ""


async def test_virtual_agent_waits_for_the_hub() -> None:
    port = free_port()
    process = await spawn(
        "virtual-agent", "--agent", "agent1", "--url", f"ws://127.0.0.1:{port}/ws"
    )
    try:
        assert "agent1: connecting" in await read_line(process.stderr)
        async with (
            HubServer(HubConfig(host="127.0.0.1", port=port, open_mode=True)) as hub,
            BridgeClient(hub.url, agent="agent1", **FAST) as bus,
        ):
            await within(bus.wait_for("Amazon/Agent/SetAgentState"))
    finally:
        status, _, _ = await stop(process)
    assert status == 0


async def test_virtual_agent_with_a_refused_token_exits() -> None:
    async with HubServer(HubConfig(host="127.0.0.1", port=0, secret=SECRET)) as hub:
        app_token = issue_token(SECRET, agent="agent1", role="app")  # not a provider's
        status, _, err = await run("virtual-agent", "--url", hub.url, "--token", app_token)
    assert status == cli_apps.EXIT_AUTH
    assert "[NOT_AUTHENTICATED]" in err


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["--agent", "a", "--state", "Break"], "NAME=TYPE"),
        (
            ["--agent", "a", "--state", "Break=not_routable", "--state", "Off=offline"],
            "at least one routable",
        ),
        (["--agent", "a", "--initial-state", "Nap"], "initial state 'Nap'"),
        (["--token", "garbage"], "--token: not a token"),
        (["--token", ""], "Invalid value for '--token'"),
        (["--agent", ""], "Invalid value for '--agent'"),
        (["--agent", "a", "--url", "http://127.0.0.1:8765/ws"], "ws:// or wss://"),  # not retried for ever
    ],
)
async def test_virtual_agent_usage_errors(args: list[str], fault: str) -> None:
    status, _, err = await run("virtual-agent", *args)
    assert status == 2
    assert fault in err


# ----- demo ---------------------------------------------------------------------------------


async def test_demo_runs_a_whole_bus_and_stops_cleanly() -> None:
    process = await spawn("demo", "--port", "0", "--agents", "2")
    lines: list[str] = []
    while not any("Ctrl-C stops the demo." in line for line in lines):
        lines.append(await read_line(process.stdout))
    text = "\n".join(lines)
    url = re.search(r"hub\s+(ws://127\.0\.0\.1:\d+/ws)", text)
    assert url is not None, text
    port = int(url.group(1).split(":")[2].split("/")[0])
    program = cli_apps.runnable_program(str(ROOT / "bridge" / "__main__.py"))
    assert f"  {program} listen --agent agent1 --url {url.group(1)}" in text
    assert (
        f"  {program} send SetNotReady --reason Break --agent agent1 --url {url.group(1)}"
        in text
    )
    if (ROOT / "static" / "widget.html").is_file():
        assert f"http://127.0.0.1:{port}/?agent=agent3 " in text  # the landing page, at a free agent
        assert f"http://127.0.0.1:{port}/widget.html?agent=agent1" in text
        assert f"http://127.0.0.1:{port}/ccp.html?emulate=1&agent=agent3" in text
    for agent in ("agent1", "agent2"):
        async with BridgeClient(url.group(1), agent=agent, **FAST) as bus:
            state = await within(bus.wait_for("Amazon/Agent/SetAgentState"))
            data = state["message"]["data"]
            assert (data["state"], data["type"], data["muted"]) == ("Ready", "routable", False)
            answer = await within(
                bus.request("Amazon", "Agent", "SetNotReady", {"ReasonCodeId": "Break"})
            )
            assert answer["message"]["event"] == "Break"
    # A page that takes agent1 over (an emulated CCP for agent1) does not break the demo:
    # when it leaves, agent1's virtual agent comes back.
    async with BridgeClient(url.group(1), agent="agent1", source="test-app", **FAST) as app:
        statuses = app.events("Bridge/Session/ProviderStatus")
        async with BridgeClient(url.group(1), agent="agent1", role="provider", source="a-page", **FAST):
            pass
        for connected in (False, True):
            while (await within(statuses.get()))["message"]["connected"] is not connected:
                pass
        answer = await within(app.request("Amazon", "Agent", "SetReady"))
        assert answer["message"]["event"] == "Available"
    status, out, _ = await stop(process)
    assert status == 0
    assert "demo stopped" in out


async def test_the_commands_the_demo_prints_run_as_printed() -> None:
    # After `make demo` the virtualenv is not active: the printed commands must not
    # rely on `connect-bridge` being on PATH.
    process = await spawn("demo", "--port", "0", "--agents", "1", "--call-every", "0")
    lines: list[str] = []
    while not any("Ctrl-C stops the demo." in line for line in lines):
        lines.append(await read_line(process.stdout))
    command = next(line.strip() for line in lines if " send SetReady --agent agent1" in line)
    env = environment()
    if command.startswith("connect-bridge "):
        assert shutil.which("connect-bridge")  # printed bare only when that name is on PATH
    else:  # printed with its path: it must run with no connect-bridge on PATH at all
        env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                      if not (Path(p) / "connect-bridge").exists())
    ran = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", command, cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await within(ran.communicate(), 20)
    assert ran.returncode == 0, (command, err.decode())
    assert orjson.loads(out)["message"]["event"] == "Available"
    status, _, _ = await stop(process)
    assert status == 0


def test_the_demo_names_the_program_as_it_can_be_typed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    script = venv / "connect-bridge"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    (venv / "python").write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    # Not on PATH: the path it was started with, relative to where the user stands.
    assert cli_apps.runnable_program(str(script)) == ".venv/bin/connect-bridge"
    assert cli_apps.runnable_program(str(ROOT / "bridge" / "__main__.py"), str(venv / "python")) == (
        ".venv/bin/connect-bridge"
    )
    # Started as python -m bridge with no script beside that Python: that Python.
    script.unlink()
    assert cli_apps.runnable_program("/x/bridge/__main__.py", str(venv / "python")) == ".venv/bin/python -m bridge"
    # Outside the current directory: absolute.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli_apps.runnable_program("/x/bridge/__main__.py", str(venv / "python")) == f"{venv}/python -m bridge"
    # On PATH as this very program: its name.
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(venv))
    assert cli_apps.runnable_program(str(script)) == "connect-bridge"


async def test_demo_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status, _, err = await run("demo", "--port", str(port))
    assert status == 3
    assert err.strip().splitlines() == [f"error: cannot listen on 127.0.0.1:{port}: address already in use"]


def test_demo_prints_what_to_open() -> None:
    out = io.StringIO()
    cli_apps._print_demo(8765, "http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws", 1, True, out)
    text = out.getvalue()
    assert "http://127.0.0.1:8765/widget.html?agent=agent1" in text
    assert "http://127.0.0.1:8765/ccp.html?emulate=1&agent=agent2" in text
    assert "connect-bridge listen --agent agent1\n" in text  # the default URL needs no --url
    assert "connect-bridge send SetNotReady --reason Break --agent agent1\n" in text
    assert "http://127.0.0.1:8765/?agent=agent2 " in text  # the landing page, at the free agent
    printed = io.StringIO()
    cli_apps._print_demo(8765, "http://127.0.0.1:8765", "ws://127.0.0.1:8765/ws", 1, True, printed,
                         program=".venv/bin/connect-bridge")
    assert "  .venv/bin/connect-bridge listen --agent agent1\n" in printed.getvalue()


# ----- pieces -------------------------------------------------------------------------------


def test_exit_codes() -> None:
    def make(cls: type[Any], error_type: str = "X") -> Any:
        return cls(error_type, "why", "msg")

    assert cli_apps.exit_code(make(AgentStateNotFound)) == 1
    assert cli_apps.exit_code(make(RateLimited)) == 1
    assert cli_apps.exit_code(make(ConnectFailed)) == 3
    assert cli_apps.exit_code(make(ClientClosed)) == 3
    assert cli_apps.exit_code(make(NotAuthenticated)) == 4
    assert cli_apps.exit_code(make(Forbidden)) == 4
    assert cli_apps.exit_code(make(ProviderUnavailable)) == 5
    assert cli_apps.exit_code(make(RequestTimeout)) == 6
    assert cli_apps.exit_code(make(InvalidRequest)) == 7


def test_durations_and_state_lines() -> None:
    assert [cli_apps.format_duration(s) for s in (0, 59.9, 83, 3723, -5)] == [
        "0:00",
        "0:59",
        "1:23",
        "1:02:03",
        "0:00",
    ]
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    since = (now - timedelta(seconds=83)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    envelope = {
        "message": {
            "event": "Break",
            "data": {"type": "not_routable", "muted": True, "stateChangeTime": since},
        }
    }
    assert (
        cli_apps.describe_state(envelope, now)
        == "Break (not_routable) · 1:23 in state · muted: yes"
    )
    assert cli_apps.describe_state(None, now) == "state unknown"


def test_pretty_view_on_a_terminal_keeps_a_status_line() -> None:
    out = io.StringIO()
    bus = BridgeClient("ws://127.0.0.1:1/ws", agent="agent1")
    view = cli_apps.PrettyView(out, bus, live=True)
    view.event(
        {
            "channel": "Bridge",
            "topic": "Session",
            "subtopic": "ProviderStatus",
            "message": {"connected": True},
        }
    )
    text = out.getvalue()
    assert "ProviderStatus: provider connected\n" in text
    assert text.endswith("agent1 ▸ state unknown · provider: ? · idle")
    assert "\r\x1b[K" in text


def test_request_names() -> None:
    assert str(cli_apps.request_kind("unmute")) == "Amazon/Agent/Unmute"
    assert str(cli_apps.request_kind("Acme/Desk/Ping")) == "Acme/Desk/Ping"
    with pytest.raises(click.BadParameter):
        cli_apps.request_kind("Acme/Desk")
    assert cli_apps.request_data(cli_apps.REQUESTS["SetReady"], None, None) is None
    assert cli_apps.request_data(cli_apps.REQUESTS["SetReady"], "Available", None) == {
        "ReasonCodeId": "Available"
    }
