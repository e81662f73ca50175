"""A busy floor for the wallboard's browser tests: many agents' providers over real WebSockets.

Each :class:`FloorAgent` is a real provider joined to the hub that publishes
the agent's ``SetAgentState`` (built from the contract's seed sample, with the
state, display name and start time the test picks) and its calls (the call
samples, through :func:`call_provider.build_call`). It stands for the agent's
softphone page where a test needs dozens of agents in known states; a test of
what a real softphone does uses the emulated CCP (``browse.ccp``) instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..helpers import Client, join, seed_event
from .call_provider import build_call

#: State name -> (Streams type, coarse state), as the Streams provider maps them.
STATES: dict[str, tuple[str, str]] = {
    "Available": ("routable", "Ready"),
    "Break": ("not_routable", "Not_Ready"),
    "Lunch": ("not_routable", "Not_Ready"),
    "Training": ("not_routable", "Not_Ready"),
    "Busy": ("system", "Not_Ready"),
    "AfterCallWork": ("system", "Not_Ready"),
    "Offline": ("offline", "Logout"),
}


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def agent_state(agent: str, display: str, state: str, since: datetime, *, muted: bool = False) -> dict[str, Any]:
    """A SetAgentState like the seed's, for ``agent`` in ``state`` since ``since``."""
    type_, coarse = STATES[state]
    event = seed_event()
    message = event["message"]
    data = message["data"]
    data.update(loginName=agent, name=display, state=coarse, type=type_, muted=muted,
                stateChangeTime=iso(since))
    if type_ == "not_routable":
        data["reasonCode"] = {"id": state}
    else:
        del data["reasonCode"]
    message["event"] = state
    message["rules"]["ResponseActual"].update(type=type_, name=state, startTimestamp=iso(since))
    return event


@dataclass
class FloorAgent:
    """One agent's provider on the floor."""

    client: Client
    agent: str
    display: str

    async def state(self, state: str, *, ago: float = 0.0, muted: bool = False) -> None:
        """Publish the agent's state, begun ``ago`` seconds ago."""
        since = datetime.now(UTC) - timedelta(seconds=ago)
        await self.client.send(agent_state(self.agent, self.display, state, since, muted=muted))

    async def call(self, event: str, *, queue: str = "Billing", number: str = "+15555550123",
                   call_id: str | None = None, ago: float = 0.0) -> str:
        """Publish a contact of the agent in ``event`` (connecting, connected, hold, ACW); returns its id."""
        contact = call_id or f"{self.agent}-contact"
        call = build_call(contact, event, number=number,
                          variables={"ANI": number, "DNIS": "+18005550199"})
        if call.get("queue") is not None:
            call["queue"] = {**call["queue"], "name": queue}
        call["since"] = iso(datetime.now(UTC) - timedelta(seconds=ago))
        await self.client.send({"channel": "Amazon", "topic": "InboundCall",
                                "subtopic": "InboundCallStateChange",
                                "message": {"call": call, "source": "event"}})
        return contact

    async def leave(self) -> None:
        """The softphone page goes away: the hub keeps the last state and says the provider is down."""
        await self.client.ws.close()


FIRST = ["Ava", "Liam", "Noah", "Mia", "Zoe", "Omar", "Lena", "Ivan", "Sara", "Kofi", "Yuki", "Ines",
         "Ravi", "Nora", "Tom", "Aiko", "Jonas", "Priya", "Marco", "Elif"]
LAST = ["Patel", "Garcia", "Nguyen", "Smith", "Okafor", "Rossi", "Tanaka", "Müller", "Haddad", "Silva",
        "Kowalski", "Dubois", "Larsen", "Moreau", "Chen", "Ibrahim"]


def display_name(index: int) -> str:
    return f"{FIRST[index % len(FIRST)]} {LAST[(index * 7) % len(LAST)]}"


@asynccontextmanager
async def floor_agents(url: str, count: int, *, prefix: str = "agent") -> AsyncIterator[list[FloorAgent]]:
    """``count`` providers joined to the hub at ``url``: agent1 .. agentN, closed on exit."""
    joined = await asyncio.gather(*(join(url, "provider", f"{prefix}{i + 1}") for i in range(count)))
    agents = [FloorAgent(client, f"{prefix}{i + 1}", display_name(i)) for i, (client, _) in enumerate(joined)]
    try:
        yield agents
    finally:
        for agent in agents:
            await agent.client.ws.close()


QUEUES = ["Billing", "Support", "Sales", "Claims"]


async def busy_floor(agents: list[FloorAgent]) -> None:
    """Put the agents in a mix a team lead would see mid-morning: most on calls or ready, a
    few on breaks (two of them long past five minutes), after-call work, one logged out,
    one muted, one whose softphone page went away."""
    for index, agent in enumerate(agents):
        slot = index % 20
        if slot in (0, 3, 6, 9, 11, 14, 17, 19):
            await agent.state("Busy", ago=30 + index * 7 % 400, muted=slot == 9)
            await agent.call("hold" if slot == 14 else "connected", queue=QUEUES[index % 4],
                             number=f"+1555{5550100 + index * 37 % 9000:07d}", ago=25 + index * 7 % 380)
        elif slot in (1, 5, 10, 15, 18):
            await agent.state("Available", ago=5 + index * 13 % 200)
        elif slot in (2, 12):
            await agent.state("AfterCallWork", ago=10 + index % 50)
            await agent.call("ACW", queue=QUEUES[(index + 1) % 4], number=f"+1555{5550900 + index:07d}",
                             ago=10 + index % 50)
        elif slot == 4:
            await agent.state("Break", ago=60 + index % 120)
        elif slot == 7:
            await agent.state("Lunch", ago=900 + index)  # past the limit
        elif slot == 8:
            await agent.state("Training", ago=400 + index)  # past the limit
        elif slot == 13:
            await agent.state("Busy", ago=4)
            await agent.call("connecting", queue=QUEUES[index % 4], number=f"+1555{5551200 + index:07d}")
        elif slot == 16:
            await agent.state("Offline", ago=1800)
