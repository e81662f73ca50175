"""The wallboard (wallboard.html) in real Chromium, as a supervisor of a real hub.

An agent's state change crosses emulated CCP -> provider -> hub -> wallboard;
a supervisor's action crosses wallboard -> hub -> provider -> Streams ->
emulated Connect. The busy floor is tests/browser/floor_provider.py: real
providers over real WebSockets in known states.
"""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.async_api import Locator, Page, expect

from .conftest import REPO, Browse, screenshot
from .floor_provider import busy_floor, floor_agents

pytestmark = pytest.mark.browser

WIDE = 1280
NARROW = 360


async def open_wallboard(browse: Browse, query: str = "agents=*&control=1", *, width: int = WIDE,
                         height: int = 800) -> Page:
    page = await browse.page(f"wallboard.html?{query}", "wallboard", width=width, height=height)
    await expect(page.locator("#hub-status")).to_have_attribute("data-status", "open")
    return page


def row(page: Page, agent: str) -> Locator:
    return page.locator(f".wb-row[data-key='{agent}']")


def count(page: Page, filter_value: str) -> Locator:
    return page.locator(f".wb-count[data-filter='{filter_value}'] .wb-count__n")


async def shown_agents(page: Page) -> list[str]:
    """The agents of the rows drawn, top to bottom."""
    return await page.evaluate(
        """() => [...document.querySelectorAll('.wb-row:not([hidden])')]
             .sort((a, b) => Number(a.getAttribute('aria-posinset')) - Number(b.getAttribute('aria-posinset')))
             .map((row) => row.dataset.key)"""
    )


async def assert_fits(page: Page, width: int) -> None:
    scroll_width = await page.evaluate("() => document.scrollingElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide in a {width} px viewport"


async def test_an_agent_changing_state_appears_on_the_wallboard_at_once(browse: Browse) -> None:
    ccp = await browse.ccp("agent1", name="Ava%20Patel")
    board = await open_wallboard(browse)
    agent = row(board, "agent1")
    await expect(agent.locator(".wb-name")).to_have_text("Ava Patel")
    await expect(agent).to_have_attribute("data-category", "ready")
    await expect(agent.locator(".wb-cat")).to_have_text("Ready")

    await ccp.evaluate("() => window.ccpEmulator.selectState('Lunch')")
    # Within the same second: the frame is drawn at the next animation frame.
    await expect(agent.locator(".wb-state-name")).to_have_text("Lunch", timeout=1000)
    await expect(agent).to_have_attribute("data-category", "notready", timeout=1000)
    await expect(agent.locator(".wb-cat")).to_have_text("Not ready")
    await expect(count(board, "notready")).to_have_text("1")
    await expect(count(board, "ready")).to_have_text("0")


async def test_not_ready_with_a_reason_from_the_keyboard_reaches_the_agents_ccp(browse: Browse) -> None:
    ccp = await browse.ccp("agent1")
    board = await open_wallboard(browse)
    agent = row(board, "agent1")
    await expect(agent).to_have_attribute("data-softphone", "up")

    # Tab from the last control reaches the row, Tab again its Actions button; Enter opens the menu.
    await board.locator("#wb-sort").focus()
    await board.keyboard.press("Tab")
    await expect(agent).to_be_focused()
    await board.keyboard.press("Tab")
    actions = agent.get_by_role("button", name="Actions for Agent 1")
    await expect(actions).to_be_focused()
    await board.keyboard.press("Enter")
    menu = board.get_by_role("menu", name="Actions for Agent 1")
    await expect(menu).to_be_visible()
    await expect(actions).to_have_attribute("aria-expanded", "true")
    # The reasons come from the agent's softphone (GetStates for agent1).
    break_item = menu.get_by_role("menuitem", name="Not Ready: Break")
    await expect(break_item).to_be_visible()
    await expect(menu.get_by_role("menuitem", name="Ready", exact=True)).to_have_attribute("aria-disabled", "true")
    await break_item.press("Enter")
    await expect(menu).to_be_hidden()
    await expect(actions).to_be_focused()

    await expect(agent.locator(".wb-state-name")).to_have_text("Break")
    states = await ccp.evaluate(
        """() => window.ccpEmulator.calls.filter((c) => c.method === 'putAgentState')
             .map((c) => c.params.state.name)"""
    )
    assert states == ["Break"], states

    # Connect refuses the next one: the notice names the agent and says why.
    await ccp.evaluate("() => window.ccpEmulator.failNext('putAgentState')")
    await actions.press("ArrowDown")
    await menu.get_by_role("menuitem", name="Not Ready: Lunch").click()
    notice = board.locator(".notice[data-error-type='UPDATE_AGENT_STATE_FAILED']")
    await expect(notice).to_contain_text("Agent 1: Amazon Connect refused the state change.")
    await expect(agent.locator(".wb-state-name")).to_have_text("Break")


async def test_a_view_only_supervisor_sees_the_floor_without_actions(browse: Browse) -> None:
    await browse.ccp("agent1")
    board = await open_wallboard(browse, "agents=agent1,agent2")
    await expect(board.locator("#wb-scope")).to_have_text("wallboard · following 2 agents · view only")
    await expect(row(board, "agent1")).to_be_visible()
    await expect(row(board, "agent1").get_by_role("button")).to_be_hidden()


async def test_a_busy_floor_counts_filters_sorts_and_flags_agents(browse: Browse) -> None:
    async with floor_agents(browse.hub.url, 40) as agents:
        await busy_floor(agents)
        board = await open_wallboard(browse, height=900)
        expected = {"all": 40, "ready": 10, "oncall": 18, "acw": 4, "notready": 6, "overdue": 4, "offline": 2,
                    "softphone-down": 0}
        for filter_value, number in expected.items():
            await expect(count(board, filter_value)).to_have_text(str(number))

        # agent8 has been at lunch for 15 minutes: past the 5-minute limit, flagged in words too.
        lunch = row(board, "agent8")
        await board.locator("#wb-find").fill("agent8")
        await expect(board.locator(".wb-row:not([hidden])")).to_have_count(1)
        await expect(lunch).to_have_attribute("data-overdue", "true")
        await expect(lunch.locator(".wb-badge--overdue")).to_have_text("Over limit")
        await expect(lunch.locator(".wb-state-name")).to_have_text("Lunch")
        await expect(lunch.locator(".wb-time__value")).to_have_text(re.compile(r"^15:\d\d$"))
        await board.locator("#wb-find").fill("")

        # The "over the limit" count filters the list; its button says it is pressed.
        await board.locator(".wb-count[data-filter='overdue']").click()
        await expect(board.locator(".wb-count[data-filter='overdue']")).to_have_attribute("aria-pressed", "true")
        await expect(board.locator("#wb-shown")).to_have_text("Showing 4 of 40 agents")
        assert sorted(await shown_agents(board)) == ["agent28", "agent29", "agent8", "agent9"]
        await board.locator("#wb-state").select_option("oncall")
        await expect(board.locator("#wb-shown")).to_have_text("Showing 18 of 40 agents")
        # An on-call row: the queue, the caller and the contact's state.
        on_call = row(board, "agent1")
        await expect(on_call.locator(".wb-call__title")).to_have_text("Billing")
        await expect(on_call.locator(".wb-call__party")).to_have_text("+15555550100")
        await expect(on_call.locator(".wb-call__state")).to_have_text("Connected")
        await expect(row(board, "agent10").locator(".wb-badge--muted")).to_be_visible()
        await expect(row(board, "agent14").locator(".wb-call__state")).to_have_text("Ringing")
        await board.locator("#wb-state").select_option("all")

        # Longest in state first: the two agents logged out for half an hour.
        await board.locator("#wb-sort").select_option("longest")
        await expect(board.locator(".wb-row:not([hidden])[aria-posinset='1']")).to_have_attribute(
            "data-key", re.compile(r"^agent(17|37)$"))
        first_two = (await shown_agents(board))[:2]
        assert sorted(first_two) == ["agent17", "agent37"], first_two

        # A softphone page that goes away: counted, and the row says so (last known state kept).
        await board.locator("#wb-sort").select_option("name")
        await board.locator("#wb-find").fill("ava patel")
        await agents[0].leave()
        await expect(count(board, "softphone-down")).to_have_text("1")
        await expect(row(board, "agent1")).to_have_attribute("data-softphone", "down")
        await expect(row(board, "agent1").locator(".wb-badge--softphone")).to_have_text("Softphone off")
        await expect(row(board, "agent1").locator(".wb-call__state")).to_have_text("Connected")
        await expect(row(board, "agent1").get_by_role("button")).to_be_disabled()
        await board.locator("#wb-find").fill("")
        await board.locator("#wb-find").blur()
        await board.evaluate("() => document.getElementById('wb-list').scrollTo(0, 0)")
        wide = await screenshot(board, "wallboard-busy-1280")
        shutil.copyfile(wide, REPO / "docs" / "images" / "wallboard.png")

        narrow = await open_wallboard(browse, width=NARROW, height=740)
        await expect(count(narrow, "all")).to_have_text("40")
        await assert_fits(narrow, NARROW)
        await screenshot(narrow, "wallboard-busy-360")
        # The menu stays inside a narrow window.
        await narrow.locator(".wb-row:not([hidden])[aria-posinset='2']").get_by_role("button").click()
        menu = narrow.get_by_role("menu")
        await expect(menu.get_by_role("menuitem", name="Log out")).to_be_visible()
        box = await menu.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= NARROW, box
        await screenshot(narrow, "wallboard-menu-360")
