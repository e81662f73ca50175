"""The widget's call cards in real Chromium, through a real hub, with a provider that has calls.

The provider is tests/browser/call_provider.py: a real provider over a real
WebSocket that answers each call request with the event the contract's samples
show. Each click crosses widget -> hub -> provider -> hub -> widget; the test
checks what the provider received and what the widget shows.
"""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.async_api import Locator, Page, expect

from .call_provider import QUICK_CONNECTS, call_provider
from .conftest import REPO, Browse, screenshot

pytestmark = pytest.mark.browser

NARROW = 320


async def open_widget(browse: Browse, agent: str, *, width: int = NARROW, height: int = 900) -> Page:
    """widget.html at ``width`` px, once it shows the agent's state with the softphone connected."""
    page = await browse.page(f"widget.html?agent={agent}", f"widget({agent})", width=width, height=height)
    await page.wait_for_selector("#widget[data-ready='true']")
    await page.wait_for_selector("#provider-status[data-status='up']")
    return page


async def assert_fits(page: Page, width: int = NARROW) -> None:
    """Nothing makes the page wider than its viewport (no sideways scrolling in a narrow frame)."""
    scroll_width = await page.evaluate("() => document.scrollingElement.scrollWidth")
    assert scroll_width <= width, f"the page is {scroll_width} px wide in a {width} px viewport"


def card_of(page: Page, call_id: str) -> Locator:
    return page.locator(f".call-card[data-call-id='{call_id}']")


async def visible_buttons(card: Locator) -> list[str]:
    return [
        text.strip() for text in await card.locator(".call-card__actions .call-btn:visible").all_inner_texts()
    ]


async def expect_buttons(card: Locator, labels: list[str]) -> None:
    await expect(card.locator(".call-card__actions .call-btn:visible")).to_have_text(labels)


async def test_inbound_call_from_ringing_to_cleared_at_320_px(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent1") as provider:
        widget = await open_widget(browse, "agent1")
        await expect(widget.locator("#calls")).to_be_hidden()
        call_id = await provider.ring()

        # Ringing: the caller, the queue, the screen-pop data, Answer and Reject.
        card = card_of(widget, call_id)
        await expect(card).to_have_attribute("data-event", "connecting")
        await expect(card.locator(".call-card__number")).to_have_text("+15555550123")
        await expect(card.locator(".call-card__direction")).to_have_text("Inbound call · Billing")
        await expect(card.locator(".call-card__state")).to_have_text("Ringing")
        await expect(card.locator(".call-card__vars dt")).to_have_text(["DNIS", "CustomerId", "Reason"])
        await expect(card.locator(".call-card__vars dd")).to_have_text(["+18005550199", "C-20411", "billing"])
        await expect_buttons(card, ["Answer", "Reject"])
        # Time in state ticks from the event's `since`.
        await expect(card.locator(".call-card__time")).to_have_attribute(
            "datetime", re.compile(r"^PT[1-9]\d*S$")
        )
        await assert_fits(widget)

        # Answer: the request names the contact; the card turns connected.
        await card.get_by_role("button", name="Answer").click()
        [answer] = await provider.received("Answer")
        assert answer["data"] == call_id
        await expect(card).to_have_attribute("data-event", "connected")
        await expect(card.locator(".call-card__state")).to_have_text("Connected")
        await expect_buttons(card, ["Hold", "Keypad", "Consult", "Transfer", "Hang up"])
        await assert_fits(widget)
        # The Not Ready menu, with a long reason, stays inside the frame too.
        await widget.get_by_role("button", name="Not Ready").click()
        await expect(widget.get_by_role("menuitem", name="Team meeting and product training")).to_be_visible()
        await assert_fits(widget)
        await widget.keyboard.press("Escape")

        # Hold and Resume act on the customer's connection.
        await card.get_by_role("button", name="Hold").click()
        [hold] = await provider.received("Hold")
        assert hold["data"] == f"{call_id}-c"
        await expect(card.locator(".call-card__state")).to_have_text("On hold")
        await expect_buttons(card, ["Resume", "Keypad", "Consult", "Transfer", "Hang up"])
        await expect(card.get_by_role("button", name="Keypad")).to_be_disabled()  # "Disable" while on hold
        await card.get_by_role("button", name="Resume").click()
        [resume] = await provider.received("Resume")
        assert resume["data"] == f"{call_id}-c"
        await expect(card.locator(".call-card__state")).to_have_text("Connected")

        # Keypad: a key is sent as pressed; typed digits are checked first.
        await card.get_by_role("button", name="Keypad").click()
        await expect(card.get_by_role("button", name="Keypad")).to_have_attribute("aria-expanded", "true")
        await card.get_by_role("group", name="Keypad").get_by_role("button", name="5").click()
        [five] = await provider.received("SendDTMF")
        assert five["data"] == "5"
        digits = card.get_by_label("Digits")
        await digits.fill("12a")
        await card.get_by_role("button", name="Send").click()
        await expect(card.get_by_role("alert")).to_have_text("Only 0-9, *, # and , (a pause) can be sent.")
        await expect(digits).to_have_attribute("aria-invalid", "true")
        await digits.fill("12#")
        await card.get_by_role("button", name="Send").click()
        sent = await provider.received("SendDTMF", 2)
        assert [request["data"] for request in sent] == ["5", "12#"], "the refused digits were never sent"
        await expect(digits).to_have_value("")
        await assert_fits(widget)

        # Hang up: the agent's own connection; after-call work leaves only Clear.
        await card.get_by_role("button", name="Hang up").click()
        [hangup] = await provider.received("Disconnect")
        assert hangup["data"] == f"{call_id}-a"
        await expect(card.locator(".call-card__state")).to_have_text("After-call work")
        await expect_buttons(card, ["Clear after-call work"])
        await expect(
            card.get_by_role("group", name="Keypad")
        ).to_be_hidden()  # its button went: the panel closed

        # Clear after-call work: the contact is Dropped and its card goes.
        await card.get_by_role("button", name="Clear after-call work").click()
        [clear] = await provider.received("ClearContact")
        assert clear["data"] == call_id
        await expect(card).to_have_count(0)
        await expect(widget.locator("#calls")).to_be_hidden()
        await assert_fits(widget)


async def test_transfer_to_a_quick_connect(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent2") as provider:
        widget = await open_widget(browse, "agent2")
        call_id = await provider.ring()
        await provider.move(call_id, "connected")
        card = card_of(widget, call_id)
        await expect(card.locator(".call-card__state")).to_have_text("Connected")

        await card.get_by_role("button", name="Transfer").click()
        panel = card.locator(".call-card__panel:visible")
        quick_connect = panel.get_by_label("Quick connect")
        await expect(quick_connect.locator("option")).to_have_text(
            ["Type a number below", "Billing queue (queue)", "Front desk (+18005550111)"]
        )
        assert len(provider.seen("GetQuickConnects")) == 1
        # A typed number that is not E.164 is refused before anything is sent.
        await panel.get_by_label("or a number").fill("555 0111")
        await panel.get_by_role("button", name="Transfer").click()
        await expect(panel.get_by_role("alert")).to_contain_text("Start the number with +")
        await assert_fits(widget)
        await screenshot(widget, "widget-call-transfer-320")

        await quick_connect.select_option(label="Front desk (+18005550111)")
        await expect(panel.get_by_label("or a number")).to_be_disabled()
        await panel.get_by_role("button", name="Transfer").click()
        [transfer] = await provider.received("Transfer")
        assert transfer["data"] == {"endpointARN": QUICK_CONNECTS[1]["endpointARN"]}
        await expect(card.locator(".call-card__state")).to_have_text("After-call work")
        await expect(card.locator(".call-card__panel:visible")).to_have_count(0)
        assert len(provider.seen("Transfer")) == 1


async def test_a_failed_hold_shows_the_error_msg(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent3") as provider:
        widget = await open_widget(browse, "agent3")
        call_id = await provider.ring()
        await provider.move(call_id, "connected")
        card = card_of(widget, call_id)
        provider.fail_next["Hold"] = "HOLD_CALL_FAILED"
        await card.get_by_role("button", name="Hold").click()
        notice = widget.locator(".notice[data-error-type='HOLD_CALL_FAILED']")
        await expect(notice.locator(".notice__text")).to_have_text("Call hold failed.")
        await expect(notice).to_have_attribute("title", re.compile("InvalidStateException"))
        await expect(card.locator(".call-card__state")).to_have_text("Connected")
        await expect(card.get_by_role("button", name="Hold")).to_be_enabled()  # not stuck busy
        await assert_fits(widget)


async def test_dial_pad_sends_e164_and_refuses_anything_else(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent4") as provider:
        widget = await open_widget(browse, "agent4")
        await widget.get_by_text("Make a call").click()
        number = widget.locator("#dial-number")
        await number.fill("601-326-1548")
        await widget.locator("#btn-dial").click()
        await expect(widget.locator("#dial-problem")).to_contain_text("Start the number with +")
        await assert_fits(widget)
        await screenshot(widget, "widget-dial-pad-320")

        # Typed and keyed: "+1 601" then the dial pad's keys.
        await number.fill("+1 601 ")
        keys = widget.get_by_role("group", name="Dial pad")
        for key in "3261548":
            await keys.get_by_role("button", name=key, exact=True).click()
        await expect(number).to_have_value("+1 601 3261548")
        await expect(widget.locator("#dial-problem")).to_be_hidden()
        await widget.locator("#btn-dial").click()
        [dial] = await provider.received("SetMakeCall")
        assert dial["data"] == "+16013261548"
        assert len(provider.seen("SetMakeCall")) == 1, "the refused number was never sent"
        await expect(number).to_have_value("")

        [call_id] = provider.calls
        card = card_of(widget, call_id)
        await expect(card.locator(".call-card__direction")).to_have_text("Outbound call")
        await expect(card.locator(".call-card__number")).to_have_text("+16013261548")
        await expect(card.locator(".call-card__state")).to_have_text("Dialing")
        await expect_buttons(card, ["Hang up"])
        await assert_fits(widget)


async def test_a_late_joining_widget_shows_the_live_call_from_the_retained_event(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent5") as provider:
        # The provider leaves the widget's StateSync unanswered: only the retained event can tell.
        provider.answer_sync = False
        call_id = await provider.ring()
        await provider.move(call_id, "hold")
        widget = await open_widget(browse, "agent5")
        card = card_of(widget, call_id)
        await expect(card.locator(".call-card__state")).to_have_text("On hold")
        await expect(card.locator(".call-card__vars dd")).to_have_text(["+18005550199", "C-20411", "billing"])
        retained = await widget.evaluate(
            "() => window.connectBridgeWidget.client.last('Amazon/InboundCall/InboundCallStateChange').retained"
        )
        assert retained is True
        await expect(card.get_by_role("button", name="Resume")).to_be_enabled()


async def test_a_queued_next_state_shows_during_the_call(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent6") as provider:
        widget = await open_widget(browse, "agent6")
        await expect(widget.locator("#state-next")).to_be_hidden()
        call_id = await provider.ring()
        await provider.move(call_id, "connected")
        await provider.publish_agent_state(busy=True, next_state={"name": "Lunch", "type": "not_routable"})
        await expect(widget.locator("#state-name")).to_have_text("Busy")
        await expect(widget.locator("#state-next-text")).to_have_text("After this call: Not Ready (Lunch)")
        # While on the call the dial pad follows make_call: disabled.
        await widget.get_by_text("Make a call").click()
        await expect(widget.locator("#btn-dial")).to_be_disabled()
        await provider.publish_agent_state()
        await expect(widget.locator("#state-next")).to_be_hidden()
        await expect(widget.locator("#btn-dial")).to_be_enabled()


async def test_screenshots_ringing_and_connected_at_1280_and_320(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent7") as provider:
        wide = await open_widget(browse, "agent7", width=1280, height=900)
        narrow = await open_widget(browse, "agent7", width=NARROW, height=900)
        call_id = await provider.ring()
        for page in (wide, narrow):
            await expect(card_of(page, call_id).locator(".call-card__state")).to_have_text("Ringing")
        # The ringing highlight pulses; screenshots are taken with animations finished.
        await screenshot(wide, "widget-call-ringing-1280")
        await screenshot(narrow, "widget-call-ringing-320")
        await assert_fits(narrow)

        await provider.move(call_id, "connected")
        await provider.publish_agent_state(busy=True, next_state={"name": "Lunch", "type": "not_routable"})
        for page in (wide, narrow):
            await expect(page.locator("#state-next")).to_be_visible()
            card = card_of(page, call_id)
            await expect(card.locator(".call-card__state")).to_have_text("Connected")
            await card.get_by_role("button", name="Keypad").click()
            await expect(card.get_by_role("group", name="Keypad")).to_be_visible()
        await screenshot(wide, "widget-call-connected-1280")
        await screenshot(narrow, "widget-call-connected-320")
        await assert_fits(narrow)

        await card_of(narrow, call_id).get_by_role("button", name="Keypad").click()  # fold the keypad away
        await narrow.evaluate("() => document.activeElement.blur()")  # no focus ring in the docs
        await narrow.mouse.move(0, 0)  # nor a hovered button
        shot = await screenshot(narrow, "widget-call")
        (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "images" / "widget-call.png")


async def test_through_the_emulated_ccp_ring_answer_hang_up_clear(browse: Browse) -> None:
    """The same card on the real Streams provider with Connect emulated (the other half of the stack)."""
    ccp = await browse.ccp("agent8")
    widget = await open_widget(browse, "agent8")
    call_id = await ccp.evaluate(
        "() => window.ccpEmulator.incomingCall({phoneNumber: '+15555550123',"
        " attributes: {CustomerId: 'C-20411'}, queue: 'Billing'})"
    )
    card = card_of(widget, call_id)
    await expect(card.locator(".call-card__state")).to_have_text("Ringing")
    await expect(card.locator(".call-card__number")).to_have_text("+15555550123")
    await expect(card.locator(".call-card__vars")).to_contain_text("C-20411")
    await card.get_by_role("button", name="Answer").click()
    await expect(card.locator(".call-card__state")).to_have_text("Connected")
    await card.get_by_role("button", name="Hold").click()
    await expect(card.locator(".call-card__state")).to_have_text("On hold")
    await card.get_by_role("button", name="Resume").click()
    await expect(card.locator(".call-card__state")).to_have_text("Connected")
    await card.get_by_role("button", name="Keypad").click()
    await card.get_by_label("Digits").fill("12#")
    await card.get_by_role("button", name="Send").click()
    await expect(card.get_by_label("Digits")).to_have_value("")
    await card.get_by_role("button", name="Hang up").click()
    await expect(card.locator(".call-card__state")).to_have_text("After-call work")
    await card.get_by_role("button", name="Clear after-call work").click()
    await expect(card).to_have_count(0)
    await assert_fits(widget)
    # The CTI calls the clicks became, through the real Streams library.
    calls = await ccp.evaluate("() => window.ccpEmulator.calls.filter((c) => !c.method.startsWith('upstream:'))")
    assert [call["method"] for call in calls] == [
        "acceptContact",
        "holdConnection",
        "resumeConnection",
        "sendDigits",
        "destroyConnection",
        "clearContact",
    ]
    assert calls[3]["params"]["digits"] == "12#"


async def test_through_the_emulated_ccp_dial_pad_and_transfer_to_a_quick_connect(browse: Browse) -> None:
    ccp = await browse.ccp("agent9")
    widget = await open_widget(browse, "agent9")
    await widget.get_by_text("Make a call").click()
    await widget.locator("#dial-number").fill("+1 601 326 1548")
    await widget.locator("#btn-dial").click()
    card = widget.locator(".call-card")
    await expect(card.locator(".call-card__direction")).to_have_text(re.compile("^Outbound call"))
    await expect(card.locator(".call-card__number")).to_have_text("+16013261548")
    await expect(card.locator(".call-card__state")).to_have_text("Connected")  # the customer answers

    await card.get_by_role("button", name="Transfer").click()
    panel = card.locator(".call-card__panel:visible")
    await panel.get_by_label("Quick connect").select_option(label="Front desk (+18005550111)")
    await panel.get_by_role("button", name="Transfer").click()
    await expect(card.locator(".call-card__state")).to_have_text("After-call work")
    calls = await ccp.evaluate(
        "() => window.ccpEmulator.calls.filter((c) => !c.method.startsWith('upstream:'))"
    )
    # The quick connects were asked once, when the dial pad opened; the pickers reuse them.
    assert [call["method"] for call in calls] == [
        "getEndpoints",
        "createOutboundContact",
        "createAdditionalConnection",
        "destroyConnection",
    ]
    assert calls[2]["params"]["endpoint"]["endpointARN"].endswith("/transfer-destination/bb22")
    await assert_fits(widget)


FRAME = 280  # a CRM sidebar's width


async def assert_all_reachable(page: Page, width: int = FRAME) -> None:
    """Every visible button lies inside the frame and shows its whole label (no clipped text)."""
    problems = await page.evaluate(
        """(width) => [...document.querySelectorAll('button, summary, [role=menuitem]')]
          .filter((el) => el.offsetParent !== null)
          .flatMap((el) => {
            const box = el.getBoundingClientRect();
            const label = (el.textContent || el.getAttribute('aria-label') || '').trim();
            const out = [];
            if (box.left < 0 || box.right > width) out.push(`${label}: ${box.left}..${box.right}`);
            if (el.scrollWidth > el.clientWidth + 1) out.push(`${label}: label clipped`);
            return out;
          })""",
        width,
    )
    assert problems == [], problems


async def test_the_widget_fits_a_280_px_frame_with_and_without_a_call(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent8") as provider:
        widget = await open_widget(browse, "agent8", width=FRAME, height=900)
        await assert_fits(widget, FRAME)
        await assert_all_reachable(widget)
        await screenshot(widget, "widget-280")

        await widget.get_by_role("button", name="Not Ready").click()
        await expect(widget.get_by_role("menu")).to_be_visible()
        await assert_fits(widget, FRAME)
        await assert_all_reachable(widget)
        await screenshot(widget, "widget-not-ready-menu-280")
        await widget.keyboard.press("Escape")

        call_id = await provider.ring()
        card = card_of(widget, call_id)
        await expect(card.locator(".call-card__state")).to_have_text("Ringing")
        await assert_fits(widget, FRAME)
        await assert_all_reachable(widget)
        await screenshot(widget, "widget-call-ringing-280")

        await provider.move(call_id, "connected")
        await provider.publish_agent_state(busy=True, next_state={"name": "Lunch", "type": "not_routable"})
        await expect(card.locator(".call-card__state")).to_have_text("Connected")
        await expect(widget.locator("#state-coarse")).to_have_text("On a call")
        await card.get_by_role("button", name="Keypad").click()
        await expect(card.get_by_role("group", name="Keypad")).to_be_visible()
        await assert_fits(widget, FRAME)
        await assert_all_reachable(widget)
        await screenshot(widget, "widget-call-connected-280")

        # The Not Ready menu open during the call (it would queue the next state).
        await widget.get_by_role("button", name="Not Ready").click()
        await expect(widget.get_by_role("menu")).to_be_visible()
        await assert_fits(widget, FRAME)
        await assert_all_reachable(widget)
        await screenshot(widget, "widget-call-not-ready-menu-280")
