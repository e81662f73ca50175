"""``connect-bridge call``, the virtual agent's call options and ``demo --call-every``,
end to end in subprocesses (the hub and, mostly, the virtual agent run in the test's loop)."""

from __future__ import annotations

import re
import signal
from collections.abc import AsyncIterator

import orjson
import pytest

from bridge.client import BridgeClient, Calls
from bridge.hub.server import HubServer
from bridge.protocol.catalog import Catalog
from bridge.sim.virtual_agent import VirtualAgent

from .helpers import FAST
from .test_cli_apps import read_line, run, spawn, stop, within

CATALOG = Catalog.load()
CALL_EVENT = "Amazon/InboundCall/InboundCallStateChange"


@pytest.fixture
async def agent(hub: HubServer) -> AsyncIterator[VirtualAgent]:
    async with VirtualAgent(
        hub.url, agent="agent1", answer_delay=0.01, call_attributes={"CustomerId": "C-7"}, **FAST
    ) as va:
        yield va


async def call(hub: HubServer, *args: str) -> tuple[int, str, str]:
    return await run("call", *args, "--agent", "agent1", "--url", hub.url)


def event_of(out: str) -> dict[str, object]:
    lines = out.splitlines()
    assert len(lines) == 1, out  # one JSON line, as send prints
    envelope = orjson.loads(lines[0])
    assert CATALOG.validate(envelope) is None
    assert "replyTo" in envelope
    return dict(envelope["message"]["call"])


async def test_an_inbound_call_from_the_command_line(hub: HubServer, agent: VirtualAgent) -> None:
    status, out, _ = await call(hub, "list")
    assert (status, out) == (0, "")  # no live call
    contact_id = await agent.ring()

    status, out, _ = await call(hub, "list", "--pretty")
    assert status == 0
    assert re.fullmatch(
        rf"call {contact_id[:8]} inbound ringing · \+15555550123 → \+18005550199 · queue BasicQueue · "
        r"\d+:\d\d · CustomerId=C-7 · answer, reject\n",
        out,
    ), out

    status, out, err = await call(hub, "answer")
    assert status == 0, err
    assert event_of(out)["event"] == "connected"
    status, out, _ = await call(hub, "hold", "--pretty")
    assert status == 0 and " inbound customer on hold · " in out
    status, out, _ = await call(hub, "resume")
    assert status == 0 and event_of(out)["event"] == "connected"
    status, out, _ = await call(hub, "dtmf", "1234#")
    assert status == 0 and event_of(out)["event"] == "connected"
    assert agent.calls.contacts[contact_id].dtmf == ["1234#"]

    status, out, _ = await call(hub, "transfer", "front DESK")  # a quick connect, by name
    assert status == 0
    transferred = event_of(out)
    assert transferred["event"] == "ACW"
    assert transferred["connections"][-1]["phoneNumber"] == "+18005550111"  # type: ignore[index]
    status, out, _ = await call(hub, "clear", contact_id)
    assert status == 0 and event_of(out)["event"] == "Dropped"


async def test_dial_consult_conference_swap(hub: HubServer, agent: VirtualAgent) -> None:
    status, out, _ = await call(hub, "dial", "+16013261548")
    assert status == 0
    dialed = event_of(out)
    assert (dialed["event"], dialed["CallType"]) == ("connecting", "outbound")
    async with BridgeClient(hub.url, agent="agent1", **FAST) as bus:
        await within(bus.wait_for(CALL_EVENT, lambda e: e["message"]["call"]["event"] == "connected"))
        status, out, _ = await call(hub, "consult", "+18005550123")
        assert status == 0 and event_of(out)["event"] == "hold"
        await within(bus.wait_for(
            CALL_EVENT, lambda e: e["message"]["call"]["connections"][-1]["status"] == "connected"
        ))
    status, out, _ = await call(hub, "swap")
    assert status == 0 and event_of(out)["event"] == "connected"
    status, out, _ = await call(hub, "conference", "--pretty")
    assert status == 0 and "with outbound +18005550123 connected" in out
    status, out, _ = await call(hub, "hangup")
    assert status == 0 and event_of(out)["event"] == "ACW"


async def test_quick_connects(hub: HubServer, agent: VirtualAgent) -> None:
    status, out, _ = await call(hub, "quick-connects")
    assert status == 0
    names = [orjson.loads(line)["name"] for line in out.splitlines()]
    assert names == ["Billing queue", "Front desk", "Supervisor"]
    status, out, _ = await call(hub, "quick-connects", "--pretty")
    assert "Front desk (phone_number +18005550111) arn:aws:connect:" in out


@pytest.mark.parametrize(
    ("args", "status", "fault"),
    [
        (["answer"], 1, "error: No such call. [CALL_NOT_FOUND]"),
        (["hold", "no-such-connection"], 1, "[CALL_NOT_FOUND]"),
        (["dtmf", "12a"], 7, "[SCHEMA_VIOLATION]"),
        (["dial", "+0123"], 7, "[SCHEMA_VIOLATION]"),
        (["consult", "arn:aws:connect:nowhere"], 7, "[SCHEMA_VIOLATION]"),
        (["transfer", "Nobody"], 2, "no quick connect named 'Nobody' (the agent's: Billing queue, Front desk"),
        (["dial", "601-326-1548"], 2, "'601-326-1548' is not an E.164 number: write it with + and the country code"),
        (["dial"], 2, "Missing argument 'TARGET'"),
    ],
)
async def test_refusals_have_send_exit_statuses(
    hub: HubServer, agent: VirtualAgent, args: list[str], status: int, fault: str
) -> None:
    got, _, err = await call(hub, *args)
    assert got == status
    assert fault in err


async def test_no_provider_is_exit_status_5(hub: HubServer) -> None:
    status, _, err = await call(hub, "hangup")
    assert status == 5 and "[PROVIDER_UNAVAILABLE]" in err


async def test_listen_pretty_prints_calls(hub: HubServer, agent: VirtualAgent) -> None:
    process = await spawn("listen", "--agent", "agent1", "--url", hub.url, "--pretty", "--quiet")
    assert "ProviderStatus (retained)" in await read_line(process.stdout)
    assert "SetAgentState (retained)" in await read_line(process.stdout)
    await agent.ring()
    ringing = await read_line(process.stdout)
    assert re.search(r"InboundCallStateChange: call \w{8} inbound ringing · \+15555550123 → .* CustomerId=C-7 · "
                     r"answer, reject$", ringing), ringing
    assert "SetAgentState: PendingBusy (system)" in await read_line(process.stdout)
    async with BridgeClient(hub.url, agent="agent1", **FAST) as bus:
        await within(bus.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}))
        assert "· next: Break" in await read_line(process.stdout)
    status, _, _ = await stop(process)
    assert status == 0


async def test_virtual_agent_call_options(hub: HubServer) -> None:
    process = await spawn(
        "virtual-agent", "--agent", "agent5", "--url", hub.url, "--quiet",
        "--caller", "+442071838750", "--call-attributes", '{"CustomerId": "C-9", "Tier": "gold"}',
        "--quick-connect", "Desk=+18005550100", "--fail", "Hold", "--ring-timeout", "0",
    )
    try:
        async with BridgeClient(hub.url, agent="agent5", **FAST) as bus:
            await within(bus.wait_for("Amazon/Agent/SetAgentState"))
            process.send_signal(signal.SIGUSR1)  # rings
            ringing = await within(bus.wait_for(CALL_EVENT))
            variables = ringing["message"]["call"]["CallVariables"]
            assert variables == {"ANI": "+442071838750", "DNIS": "+18005550199", "CustomerId": "C-9", "Tier": "gold"}
            calls = Calls(bus)
            assert [q.name for q in await within(calls.quick_connects())] == ["Desk"]
            await within(calls.answer())
        status, _, err = await run("call", "hold", "--agent", "agent5", "--url", hub.url)
        assert status == 1 and "error: Call hold failed. [HOLD_CALL_FAILED]" in err
        assert "--fail Hold" in err
    finally:
        status, _, _ = await stop(process)
    assert status == 0


@pytest.mark.parametrize(
    ("args", "fault"),
    [
        (["--call-attributes", "[1]"], "must be a JSON object of strings"),
        (["--call-attributes", "{"], "not JSON"),
        (["--caller", "555"], "is not an E.164 number"),
        (["--quick-connect", "Desk"], "NAME=+E164"),
        (["--fail", "StateSync"], "'StateSync' is not one of"),
    ],
)
async def test_virtual_agent_call_options_are_checked(args: list[str], fault: str) -> None:
    status, _, err = await run("virtual-agent", "--agent", "a", *args)
    assert status == 2 and fault in err


async def test_demo_rings_its_agents() -> None:
    process = await spawn("demo", "--port", "0", "--call-every", "0.2")
    try:
        lines: list[str] = []
        while not any("Ctrl-C stops the demo." in line for line in lines):
            lines.append(await read_line(process.stdout))
        text = "\n".join(lines)
        assert "calls      one rings for each Available agent every 0.2 s" in text
        assert "connect-bridge call answer --agent agent1 --url " in text
        url = re.search(r"hub\s+(ws://127\.0\.0\.1:\d+/ws)", text)
        assert url is not None
        async with BridgeClient(url.group(1), agent="agent1", **FAST) as bus:
            ringing = await within(bus.wait_for(CALL_EVENT))
            assert ringing["message"]["call"]["event"] == "connecting"
    finally:
        status, _, _ = await stop(process)
    assert status == 0


async def test_call_names_a_url_without_the_hub_path(hub: HubServer) -> None:
    page = hub.url.removesuffix("/ws")
    status, _, err = await run("call", "list", "--agent", "agent1", "--url", page)
    assert status == 3
    assert "html" not in err.lower()
    assert f"is not a WebSocket endpoint (HTTP 200); did you mean {hub.url}?" in err


async def test_call_refuses_an_http_url() -> None:
    status, _, err = await run("call", "list", "--agent", "agent1", "--url", "http://127.0.0.1:8765/ws")
    assert status == 2 and "ws:// or wss://" in err


@pytest.mark.parametrize(("args", "fault"), [(["--agent", "agent1", "--timeout", "0"], "'--timeout'"),
                                             (["--agent", ""], "'--agent': is empty")])
async def test_call_refuses_blank_and_non_positive_options(args: list[str], fault: str) -> None:
    status, _, err = await run("call", "list", *args)
    assert status == 2 and fault in err
