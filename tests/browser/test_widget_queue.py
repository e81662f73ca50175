"""The widget during a call, through the emulated CCP: what a state button does then.

Connect queues a state change asked for during a contact (``enqueueNextState``)
instead of making it. The widget must say so: on a call its state buttons read
"… after call" and none is the filled primary action, the queued state shows in
words ("After this call: Not Ready (Lunch)"), and it can be cancelled the way
Connect cancels one, by asking for the state the agent is in behind the call
(Available). Every click crosses widget -> hub -> provider -> Streams ->
emulated Connect and back.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page, expect

from .conftest import Browse, screenshot
from .test_widget_calls import FRAME, assert_all_reachable, assert_fits

pytestmark = pytest.mark.browser


async def put_agent_state_calls(ccp: Page) -> list[dict[str, Any]]:
    """The putAgentState calls the emulated Connect saw: ``{state name, enqueueNextState}``."""
    seen: list[dict[str, Any]] = await ccp.evaluate("() => window.ccpEmulator.calls")
    return [
        {"state": call["params"]["state"]["name"], "enqueue": call["params"]["enqueueNextState"]}
        for call in seen
        if call["method"] == "putAgentState"
    ]


#: Ready's fill off a call (--ready), and the plain surface of a secondary button.
FILLED = "rgb(23, 128, 74)"
PLAIN = "rgb(255, 255, 255)"


async def test_on_a_call_not_ready_is_queued_shown_and_cancelled(browse: Browse) -> None:
    ccp = await browse.ccp("agent3")
    widget = await browse.page("widget.html?agent=agent3", "widget(agent3)", width=FRAME, height=900)
    await widget.wait_for_selector("#provider-status[data-status='up']")
    await expect(widget.locator("#state-name")).to_have_text("Available")
    ready, not_ready, logout = (widget.locator(f"#btn-{name}") for name in ("ready", "notready", "logout"))
    await expect(ready).to_have_text("Ready")
    await expect(widget.locator("#state-actions")).to_have_attribute("data-queue", "false")
    # Off a call Ready is the filled button (disabled while Ready); Not Ready is outlined.
    await widget.get_by_role("button", name="Not Ready").click()
    await widget.get_by_role("menuitem", name="Break").click()
    await expect(widget.locator("#state-name")).to_have_text("Break")
    await expect(ready).to_have_css("background-color", FILLED)  # waits out the colour transition
    await ready.click()
    await expect(widget.locator("#state-name")).to_have_text("Available")

    await ccp.evaluate("() => window.ccpEmulator.startCall()")
    await expect(widget.locator("#state-name")).to_have_text("Busy")
    await expect(widget.locator("#state-actions")).to_have_attribute("data-queue", "true")
    await expect(ready).to_have_text("Ready after call")
    await expect(not_ready).to_contain_text("Not Ready after call")
    await expect(logout).to_have_text("Log out after call")
    await expect(widget.locator("#state-next")).to_be_hidden()
    # Nothing queued and Available behind the call: Ready is no longer the filled primary button.
    await expect(ready).to_have_css("background-color", PLAIN)
    await expect(ready).to_have_css("border-top-style", "dashed")
    await assert_fits(widget, FRAME)
    await assert_all_reachable(widget)
    await screenshot(widget, "widget-queue-on-call-280")

    await widget.get_by_role("button", name="Not Ready after call").click()
    await widget.get_by_role("menuitem", name="Lunch").click()
    next_line = widget.locator("#state-next-text")
    await expect(next_line).to_have_text("After this call: Not Ready (Lunch)")
    await expect(widget.locator("#state-name")).to_have_text("Busy")  # still on the call
    assert await ccp.evaluate("() => window.ccpEmulator.nextState.name") == "Lunch"
    await expect(ccp.locator("#emu-next")).to_have_text("Next state (queued): Lunch")
    cancel = widget.get_by_role("button", name="Cancel: stay Available after this call")
    await expect(cancel).to_be_enabled()
    await expect(cancel).to_have_text("Cancel")
    await widget.evaluate("() => document.activeElement.blur()")
    await widget.mouse.move(0, 0)
    await assert_fits(widget, FRAME)
    await assert_all_reachable(widget)
    await screenshot(widget, "widget-queue-next-state-280")

    # Cancel: Available asked for again during the call, which Connect takes as "no next state".
    await cancel.click()
    await expect(widget.locator("#state-next")).to_be_hidden()
    assert await ccp.evaluate("() => window.ccpEmulator.nextState") is None
    await expect(ccp.locator("#emu-next")).to_be_hidden()
    await expect(widget.locator(".notice")).to_have_count(0)  # answered, not timed out
    assert (await put_agent_state_calls(ccp))[-2:] == [
        {"state": "Lunch", "enqueue": True},
        {"state": "Available", "enqueue": True},
    ]

    # Queued again, the call ends: Lunch applies and the buttons are themselves again.
    await widget.get_by_role("button", name="Not Ready after call").click()
    await widget.get_by_role("menuitem", name="Lunch").click()
    await expect(next_line).to_have_text("After this call: Not Ready (Lunch)")
    await ccp.evaluate("() => window.ccpEmulator.endCall()")
    await expect(widget.locator("#state-name")).to_have_text("Lunch")
    await expect(widget.locator("#state-next")).to_be_hidden()
    await expect(ready).to_have_text("Ready")
    await expect(widget.locator("#state-actions")).to_have_attribute("data-queue", "false")
    await expect(ready).to_have_css("background-color", FILLED)


async def test_a_widget_that_joins_during_the_call_shows_the_queue_without_a_cancel(browse: Browse) -> None:
    ccp = await browse.ccp("agent4")
    await ccp.evaluate("() => window.ccpEmulator.startCall()")
    await ccp.evaluate("() => window.ccpEmulator.selectState('Training')")  # picked in the CCP: queued
    widget = await browse.page("widget.html?agent=agent4", "widget(agent4)", width=FRAME, height=900)
    await expect(widget.locator("#state-next-text")).to_have_text("After this call: Not Ready (Training)")
    # It never saw the state behind the call, so it cannot tell which request would cancel.
    await expect(widget.locator("#btn-cancel-next")).to_be_hidden()
    await expect(widget.locator("#btn-ready")).to_have_text("Ready after call")
