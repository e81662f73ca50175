"""The emulated CCP's panel (ccp.html?emulate=1), clicked in real Chromium.

The panel offers what docs/browser.md says it does: pick a state, mute and
unmute in "the CCP" (and make mute fail), an administrator removing a state,
and failing or silencing the next backend call, with what is armed shown until
it is used or cancelled. "Backend calls seen" follows each call as it arrives:
these pages run with ``refresh=0`` (no periodic snapshot), so nothing but the
call itself can update it.
"""

from __future__ import annotations

import pytest
from playwright.async_api import Page, expect

from .conftest import Browse, screenshot
from .test_pages import expect_notice, pick_not_ready

pytestmark = pytest.mark.browser


async def open_ccp(browse: Browse, agent: str, *, width: int = 1100) -> Page:
    page = await browse.ccp(agent, refresh=0, callTimeout=600)
    if width != 1100:
        await page.set_viewport_size({"width": width, "height": 1200})
    return page


async def test_fail_it_shows_armed_until_used_and_calls_seen_update_at_once(browse: Browse) -> None:
    ccp = await open_ccp(browse, "agent2")
    widget = await browse.widget("agent2")
    fail, never, armed = ccp.locator("#emu-fail"), ccp.locator("#emu-never"), ccp.locator("#emu-armed")
    seen = ccp.locator("#emu-calls")
    await expect(seen).to_have_text("0")
    await expect(armed).to_be_hidden()

    await ccp.locator("#emu-method").select_option("putAgentState")
    await fail.click()
    await expect(fail).to_have_text("Next putAgentState will fail — cancel")
    await expect(fail).to_have_attribute("data-armed", "true")
    await expect(armed).to_have_text("Armed: next putAgentState will fail")
    await expect(never).to_have_text("Never answer")
    await screenshot(ccp, "ccp-panel-fail-armed")

    # The armed failure is used by the widget's request: Connect refuses it, nothing else changes.
    await pick_not_ready(widget, "Break")
    await expect_notice(widget, "UPDATE_AGENT_STATE_FAILED")
    await expect(seen).to_have_text("1")
    await expect(ccp.locator("#emu-last-call")).to_have_text('putAgentState "Break"')
    await expect(fail).to_have_text("Fail it")
    await expect(fail).to_have_attribute("data-armed", "false")
    await expect(armed).to_be_hidden()

    # Armed, then cancelled: the next call goes through.
    await never.click()
    await expect(never).to_have_text("Next putAgentState gets no answer — cancel")
    await never.click()
    await expect(never).to_have_text("Never answer")
    assert await ccp.evaluate("() => window.ccpEmulator.armed") == []
    await pick_not_ready(widget, "Lunch")
    await expect(widget.locator("#state-name")).to_have_text("Lunch")
    await expect(seen).to_have_text("2")


async def test_mute_in_the_ccp_and_a_failing_mute(browse: Browse) -> None:
    ccp = await open_ccp(browse, "agent3")
    widget = await browse.widget("agent3")
    mute, unmute = ccp.locator("#emu-mute"), ccp.locator("#emu-unmute")
    await expect(mute).to_be_disabled()  # no call, no microphone
    await ccp.locator("#emu-start-call").click()
    await expect(widget.locator("#state-name")).to_have_text("Busy")

    # The agent mutes in the CCP itself: Streams reports it and every widget shows it.
    await mute.click()
    await expect(widget.locator("#mute-status")).to_be_visible()
    await expect(widget.locator("#btn-unmute")).to_be_enabled()
    await expect(unmute).to_be_enabled()
    await expect(mute).to_be_disabled()
    await unmute.click()
    await expect(widget.locator("#mute-status")).to_be_hidden()

    # A softphone that fails to mute says nothing: the provider's request times out.
    await ccp.locator("#emu-method").select_option("mute")
    await ccp.locator("#emu-fail").click()
    await expect(ccp.locator("#emu-fail")).to_have_text("Next mute will fail — cancel")
    await widget.locator("#btn-mute").click()
    await expect_notice(widget, "MUTE_FAILED")
    await expect(widget.locator("#mute-status")).to_be_hidden()
    await expect(ccp.locator("#emu-fail")).to_have_text("Fail it")
    await expect(ccp.locator("#emu-last-call")).to_have_text('mute {"mute":true}')
    await ccp.locator("#emu-end-call").click()
    await expect(widget.locator("#state-name")).to_have_text("Available")


async def test_an_administrator_removes_a_state(browse: Browse) -> None:
    ccp = await open_ccp(browse, "agent4")
    widget = await browse.widget("agent4")
    await ccp.locator("#emu-remove-state").select_option("Training")
    await ccp.locator("#emu-remove").click()
    await expect(ccp.locator("#emu-remove-state option")).to_have_text(["Available", "Break", "Lunch", "Offline"])
    await expect(ccp.locator("#emu-select option")).to_have_text(["Available", "Break", "Lunch", "Offline"])
    # The widget listed the states before: asking for the removed one fails cleanly.
    await pick_not_ready(widget, "Training")
    await expect_notice(widget, "AGENT_STATE_NOT_FOUND")
    await expect(widget.locator("#state-name")).to_have_text("Available")


async def test_the_panel_at_280_px(browse: Browse) -> None:
    ccp = await open_ccp(browse, "agent5", width=280)
    await ccp.locator("#emu-start-call").click()
    await ccp.locator("#emu-method").select_option("holdConnection")
    await ccp.locator("#emu-fail").click()
    await expect(ccp.locator("#emu-fail")).to_have_text("Next holdConnection will fail — cancel")
    width = await ccp.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= 280, f"the page is {width} px wide in a 280 px viewport"
    await screenshot(ccp, "ccp-panel-280")
