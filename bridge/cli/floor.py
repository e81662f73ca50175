"""The demo's live floor: virtual agents that start in different states, take calls
at different times, and change state now and then, so that a wallboard opened on
``connect-bridge demo`` shows a floor at work rather than N identical rows.

The first :data:`STEADY` agents (agent1, agent2) stay as the plain demo made them:
Available, off call, ringing every ``call_every`` seconds; they are the ones the
printed commands drive. The others start from :data:`FLOOR_START` in turn, ring
first at a random moment (so calls do not all ring together), and the floor
changes their state every ``floor_every`` seconds through a supervisor with
control, over the bus like any wallboard action.

Every virtual agent reclaims its agent (``VirtualAgent(reclaim=True)``): a page
opened as one of them replaces it, and it comes back when that page leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any, Final

from bridge.client import BridgeClient, BridgeError
from bridge.protocol import SET_NOT_READY, SET_READY, Role
from bridge.sim.agent_model import AgentModel, StateType
from bridge.sim.virtual_agent import VirtualAgent

log = logging.getLogger("bridge.demo")

#: Agents (from agent1) that the floor leaves alone: the printed commands drive them.
STEADY: Final = 2
#: How the other agents start, in turn: a state name, or ``ON_CALL`` (Available, on an answered call).
ON_CALL: Final = "on call"
FLOOR_START: Final = ("Break", ON_CALL, "Lunch", "Available", "Training", ON_CALL)
#: The not-ready states the floor sends agents to.
BREAKS: Final = ("Break", "Lunch", "Training")


def login(number: int) -> str:
    return f"agent{number}"


class Floor:
    """The demo's virtual agents and the supervisor that moves them about."""

    def __init__(self, url: str, agents: int, *, floor_every: float | None, seed: int | None = None,
                 **calling: Any) -> None:
        self.url = url
        self.count = agents
        self.floor_every = floor_every
        self.calling = calling
        self.agents: list[VirtualAgent] = []
        self.supervisor: BridgeClient | None = None
        self._rng = random.Random(seed)
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start every agent (the first ones plain, the others in their start state), then the floor."""
        call_every = self.calling.get("call_every")
        for number in range(1, self.count + 1):
            start = None if number <= STEADY else FLOOR_START[(number - STEADY - 1) % len(FLOOR_START)]
            initial = start if start not in (None, ON_CALL) else None
            options = dict(self.calling)
            if start is not None:
                options["call_every"] = None  # rung by _ring_now_and_then, from a random first moment
            va = VirtualAgent(self.url, model=AgentModel(login(number), initial_state=initial),
                              agent=login(number), source="virtual-agent", reclaim=True, **options)
            await va.start()
            self.agents.append(va)
            if start == ON_CALL:
                await va.start_call()
            if start is not None and call_every:
                self._spawn(self._ring_now_and_then(va, call_every))
        moving = [login(n) for n in range(STEADY + 1, self.count + 1)]
        if moving and self.floor_every:
            self.supervisor = BridgeClient(self.url, role=Role.SUPERVISOR, agents=moving, control=True,
                                           source="demo-floor", retry_first_connect=True)
            await self.supervisor.start()
            self._spawn(self._move_about(self.floor_every))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.supervisor is not None:
            await self.supervisor.close()
        for va in self.agents:
            await va.close()

    def _spawn(self, work: Any) -> None:
        self._tasks.append(asyncio.create_task(work))

    async def _ring_now_and_then(self, va: VirtualAgent, every: float) -> None:
        """The virtual agent's own call schedule, started at a random moment of its first period."""
        await asyncio.sleep(self._rng.uniform(0, every))
        while True:
            if not va.model.on_call and va.model.state.type is StateType.ROUTABLE:
                await va.ring()
            await asyncio.sleep(every)

    async def _move_about(self, every: float) -> None:
        """Every ``every`` seconds one agent off a call goes on a break, or back to Available."""
        assert self.supervisor is not None
        while True:
            await asyncio.sleep(every)
            free = [va for va in self.agents[STEADY:] if not va.model.on_call and va.model.logged_in]
            if not free:
                continue
            va = self._rng.choice(free)
            routable = va.model.state.type is StateType.ROUTABLE
            kind, data = (SET_NOT_READY, {"ReasonCodeId": self._rng.choice(BREAKS)}) if routable else (SET_READY, None)
            try:
                await self.supervisor.request(kind, data, agent=va.model.login_name)
            except BridgeError as exc:  # the floor is scenery: a refused move is not the demo's failure
                log.info("floor: %s for %s refused: %s", kind.subtopic, va.model.login_name, exc)
