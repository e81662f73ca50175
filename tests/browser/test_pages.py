"""The widget and the Streams page in real Chromium, through a real hub.

ccp.html runs our provider code (static/js/provider/) on the real
amazon-connect-streams library with its backend emulated
(static/js/emulator/ccp-emulator.js); widget.html is the
agent's widget. Every test joins them through an in-process hub, so each
click crosses: widget -> hub -> provider -> Streams Agent API -> emulated
Connect -> Streams events -> provider -> hub -> widgets.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from playwright.async_api import Page, expect

from bridge.client import BridgeClient
from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from .call_provider import call_provider
from .conftest import REPO, STATIC_DIR, STREAMS_DIR, Browse, screenshot

pytestmark = pytest.mark.browser

LUNCH_ARN = (
    "arn:aws:connect:us-east-1:123456789012:instance/0f6a2b1c-3d4e-4f50-8a61-72b3c4d5e6f7"
    "/agent-state/5ab3ee2c-1f71-4c0f-9a58-0c2f4f2f7a03"
)


async def calls(ccp: Page, method: str) -> list[dict[str, Any]]:
    """The backend calls the emulated Connect saw, of one method."""
    seen: list[dict[str, Any]] = await ccp.evaluate("() => window.ccpEmulator.calls")
    return [call for call in seen if call["method"] == method]


async def pick_not_ready(widget: Page, reason: str) -> None:
    await widget.get_by_role("button", name="Not Ready").click()
    await widget.get_by_role("menuitem", name=reason).click()


async def expect_state(widget: Page, name: str) -> None:
    await expect(widget.locator("#state-name")).to_have_text(name)
    await expect(widget.locator("#state-card")).to_have_attribute("data-stale", "false")


async def expect_notice(widget: Page, error_type: str) -> str:
    notice = widget.locator(f".notice[data-error-type='{error_type}']")
    await expect(notice).to_be_visible()
    return await notice.locator(".notice__text").inner_text()


async def test_not_ready_click_reaches_streams_and_updates_the_widget(browse: Browse) -> None:
    ccp = await browse.ccp("agent1")
    widget = await browse.widget("agent1")
    await expect_state(widget, "Available")
    await expect(widget.locator("#btn-ready")).to_be_disabled()
    await expect(widget.locator("#mic-hint")).to_be_visible()
    await screenshot(widget, "widget-ready")

    await widget.get_by_role("button", name="Not Ready").click()
    await expect(widget.get_by_role("menuitem")).to_have_text(["Break", "Lunch", "Training"])
    await screenshot(widget, "widget-not-ready-menu")
    await widget.get_by_role("menuitem", name="Lunch").click()

    await expect_state(widget, "Lunch")
    [call] = await calls(ccp, "putAgentState")
    assert call["params"] == {
        "state": {"agentStateARN": LUNCH_ARN, "type": "not_routable", "name": "Lunch"},
        "enqueueNextState": True,
    }
    await expect(widget.locator("#state-card")).to_have_attribute("data-coarse", "Not_Ready")
    await expect(widget.locator("#btn-ready")).to_be_enabled()
    await expect(widget.locator("#btn-notready")).to_be_enabled()
    await expect(widget.locator("#btn-logout")).to_be_enabled()
    await expect(widget.locator("#btn-mute")).to_be_hidden()
    # The menu now marks Lunch as the current state instead of offering it.
    await widget.get_by_role("button", name="Not Ready").click()
    await expect(widget.get_by_role("menuitem", name="Lunch")).to_have_attribute("aria-disabled", "true")
    await widget.keyboard.press("Escape")
    await expect(widget.get_by_role("menu")).to_be_hidden()
    await expect(widget.locator("#btn-notready")).to_be_focused()  # Escape gives focus back
    await widget.evaluate("() => document.activeElement.blur()")  # no focus ring in the README
    shot = await screenshot(widget, "widget-not-ready")
    (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, REPO / "docs" / "images" / "widget.png")


async def test_the_landing_page_links_follow_the_agent(browse: Browse) -> None:
    page = await browse.page("", "index")
    # By default the emulated CCP is for agent9, whom the demo does not simulate:
    # a CCP page for agent1 would take over the demo's own virtual agent.
    await expect(page.locator("#link-ccp")).to_have_attribute("href", "ccp.html?emulate=1&agent=agent9")
    await expect(page.locator("#link-widget")).to_have_attribute("href", "widget.html?agent=agent9")
    await expect(page.locator("body")).not_to_contain_text("Open it first")
    await page.get_by_label("Agent").fill("agent 9")
    await expect(page.locator("#link-ccp")).to_have_attribute("href", "ccp.html?emulate=1&agent=agent%209")
    await expect(page.locator("#link-widget")).to_have_attribute("href", "widget.html?agent=agent%209")
    # The demo prints the landing page with its first free agent (agent4 with --agents 3).
    printed = await browse.page("?agent=agent4", "index(agent4)")
    await expect(printed.get_by_label("Agent")).to_have_value("agent4")
    await expect(printed.locator("#link-ccp")).to_have_attribute("href", "ccp.html?emulate=1&agent=agent4")


async def test_python_app_set_not_ready_changes_the_page_and_two_widgets(browse: Browse) -> None:
    ccp = await browse.ccp("agent2")
    first = await browse.widget("agent2", "first widget")
    second = await browse.widget("agent2", "second widget")
    async with BridgeClient(browse.hub.url, agent="agent2", source="pytest-app") as app:
        answer = await app.request("Amazon/Agent/SetNotReady", {"ReasonCodeId": "Break"}, timeout=5)
        # The other answers the page builds pass the hub's schemas too.
        sync = await app.request("Amazon/Agent/StateSync", timeout=5)
        states = await app.request("Amazon/Agent/GetStates", timeout=5)
    assert sync["message"]["loginState"] == "LoggedIn"
    assert sync["message"]["agentState"]["name"] == "Break"
    assert {"label": "Break", "code": "Break", "type": "not_routable"} in states["message"]["states"]
    assert answer["message"]["event"] == "Break"
    assert answer["message"]["data"]["reasonCode"] == {"id": "Break"}
    assert "replyTo" in answer
    await expect(ccp.locator("#emu-state-name")).to_have_text("Break")
    assert await ccp.evaluate("() => window.connect.agent && window.ccpEmulator.selected.name") == "Break"
    await expect_state(first, "Break")
    await expect_state(second, "Break")


async def test_unknown_reason_shows_agent_state_not_found(browse: Browse) -> None:
    ccp = await browse.ccp("agent3")
    widget = await browse.widget("agent3")
    # An administrator removes Training after the widget filled its menu.
    await ccp.evaluate("() => window.ccpEmulator.removeAgentState('Training')")
    await pick_not_ready(widget, "Training")
    text = await expect_notice(widget, "AGENT_STATE_NOT_FOUND")
    assert text == "Specified Agent State not found."
    await expect_state(widget, "Available")
    assert await calls(ccp, "putAgentState") == []


async def test_failing_put_agent_state_shows_update_agent_state_failed(browse: Browse) -> None:
    ccp = await browse.ccp("agent4")
    widget = await browse.widget("agent4")
    await ccp.evaluate("() => window.ccpEmulator.failNext('putAgentState')")
    # By keyboard this time: Enter opens the menu on its first reason, Enter picks it.
    await widget.locator("#btn-notready").focus()
    await widget.keyboard.press("Enter")
    await expect(widget.get_by_role("menuitem", name="Break")).to_be_focused()
    await widget.keyboard.press("Enter")
    text = await expect_notice(widget, "UPDATE_AGENT_STATE_FAILED")
    assert "Invalid agent or contact state" in text
    await expect_state(widget, "Available")
    assert len(await calls(ccp, "putAgentState")) == 1
    await expect(widget.locator("#btn-notready")).to_be_enabled()
    await screenshot(widget, "widget-error")


async def test_ccp_that_never_answers_gives_a_timeout_error(browse: Browse) -> None:
    ccp = await browse.ccp("agent5", callTimeout=600)
    widget = await browse.widget("agent5")
    await ccp.evaluate("() => window.ccpEmulator.neverAnswerNext('putAgentState')")
    await widget.get_by_role("button", name="Log out").click()
    # While Log out is in flight, Not Ready (enabled in Available) waits for it: one state at a time.
    await expect(widget.locator("#btn-logout")).to_have_attribute("aria-busy", "true")
    await expect(widget.locator("#btn-notready")).to_be_disabled()
    # The provider's own call timeout answered (UPDATE_AGENT_STATE_FAILED), not the hub's
    # REQUEST_TIMEOUT ten seconds later.
    text = await expect_notice(widget, "UPDATE_AGENT_STATE_FAILED")
    assert "did not answer in time" in text
    # Nobody heard back: the change may still come, so the notice claims nothing about the state.
    assert "cannot tell whether the state changed" in text
    assert "not changed" not in text
    await expect(widget.locator("#btn-notready")).to_be_enabled()
    assert len(await calls(ccp, "putAgentState")) == 1
    # Not hung: the button is usable again and the state unchanged.
    await expect(widget.locator("#btn-logout")).to_be_enabled()
    await expect(widget.locator("#btn-logout")).to_have_attribute("aria-busy", "false")
    await expect_state(widget, "Available")


RECORD_TRANSITIONS = """() => {
  window.seen = [];
  const status = document.getElementById('provider-status');
  const card = document.getElementById('state-card');
  const name = document.getElementById('state-name');
  const note = () => window.seen.push(
    [status.dataset.status, card.dataset.stale, name.textContent].join('|'));
  new MutationObserver(note).observe(status, {attributes: true});
  new MutationObserver(note).observe(card, {attributes: true});
}"""


async def test_reloading_the_ccp_page_shows_the_provider_down_then_up_then_the_state(
    browse: Browse,
) -> None:
    ccp = await browse.ccp("agent6")
    widgets = [await browse.widget("agent6", "first widget"), await browse.widget("agent6", "second widget")]
    await pick_not_ready(widgets[0], "Lunch")
    for widget in widgets:
        await expect_state(widget, "Lunch")
        await widget.evaluate(RECORD_TRANSITIONS)

    await ccp.reload()
    await ccp.wait_for_function("() => window.connectBridge && window.connectBridge.client.state === 'open'")

    for widget in widgets:
        await expect(widget.locator("#provider-status")).to_have_attribute("data-status", "up")
        await expect_state(widget, "Lunch")
        seen: list[str] = await widget.evaluate("() => window.seen")
        statuses = [entry.split("|")[0] for entry in seen]
        assert "down" in statuses, seen
        down = statuses.index("down")
        assert "up" in statuses[down:], seen
        # While the softphone was gone the state was shown as stale, then fresh again.
        assert seen[down].split("|")[1] == "true", seen
        assert seen[-1].split("|")[1:] == ["false", "Lunch"], seen

    # The agent closes the softphone page: the widgets keep the last state, greyed out.
    await ccp.close()
    await expect(widgets[0].locator("#provider-status")).to_have_attribute("data-status", "down")
    await expect(widgets[0].locator("#state-card")).to_have_attribute("data-stale", "true")
    await expect(widgets[0].locator("#btn-ready")).to_be_disabled()
    await screenshot(widgets[0], "widget-softphone-offline")


async def test_mute_during_an_emulated_call(browse: Browse) -> None:
    ccp = await browse.ccp("agent7")
    widget = await browse.widget("agent7")
    mute, unmute = widget.locator("#btn-mute"), widget.locator("#btn-unmute")
    await expect(mute).to_be_hidden()

    await ccp.evaluate("() => window.ccpEmulator.startCall()")
    await expect_state(widget, "Busy")
    await expect(widget.locator("#state-card")).to_have_attribute("data-type", "system")
    await expect(mute).to_be_enabled()
    await expect(unmute).to_be_hidden()
    await screenshot(widget, "widget-on-call")

    await mute.click()
    await expect(unmute).to_be_enabled()
    await expect(mute).to_be_hidden()
    await expect(widget.locator("#mute-status")).to_be_visible()
    assert await ccp.evaluate("() => window.ccpEmulator.muted") is True
    assert [call["params"] for call in await calls(ccp, "mute")] == [{"mute": True}]
    await screenshot(widget, "widget-muted")

    await unmute.click()
    await expect(mute).to_be_enabled()
    await expect(unmute).to_be_hidden()
    await expect(widget.locator("#mute-status")).to_be_hidden()
    assert await ccp.evaluate("() => window.ccpEmulator.muted") is False


async def test_with_no_softphone_yet_the_widget_says_what_to_open(browse: Browse) -> None:
    widget = await browse.page("widget.html?agent=agent9", "widget(agent9)", width=280, height=600)
    guide = widget.locator("#state-guide")
    await expect(guide).to_have_text("Waiting for agent9's softphone: open the CCP page for this agent.")
    # No "— / Unknown · 0:00 in state": nothing is known, so nothing pretends to be.
    await expect(widget.locator("#state-meta")).to_be_hidden()
    await expect(widget.locator("#state-name")).to_be_hidden()
    await screenshot(widget, "widget-no-softphone-280")
    async with call_provider(browse.hub.url, "agent9"):
        await expect_state(widget, "Not Ready Break")
        await expect(guide).to_be_hidden()
        await expect(widget.locator("#state-meta")).to_be_visible()


async def test_a_refused_token_is_said_in_words_with_what_to_do(browse: Browse) -> None:
    config = HubConfig(port=0, secret="s" * 32, static_dir=STATIC_DIR, streams_dir=STREAMS_DIR)
    async with HubServer(config) as secured:
        page = await Browse(secured, browse.context, browse.watch).page(
            "widget.html?token=not-a-token", "widget(bad token)", width=280, height=600
        )
        guide = page.locator("#state-guide")
        await expect(guide).to_contain_text("The bridge refused this page's token: ")
        await expect(guide).to_contain_text("Ask for a new link.")
        # Visible text, not a tooltip; and no "Connecting…" forever.
        await expect(page.locator("#agent-name")).to_have_text("Not connected")
        await screenshot(page, "widget-refused-token-280")
