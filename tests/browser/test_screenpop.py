"""screenpop.html in real Chromium: a ringing call opens the CRM URL built from the template.

The CRM is never reached: the browser context answers every request to
crm.example.com itself, and records it.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
from playwright.async_api import Page, Route, expect

from .call_provider import build_call, call_provider
from .conftest import Browse, screenshot

pytestmark = pytest.mark.browser

TEMPLATE = "https://crm.example.com/customers/{CustomerId}?phone={ANI}&ticket={Ticket}"


async def open_screenpop(browse: Browse, agent: str, template: str) -> Page:
    page = await browse.page(
        f"screenpop.html?agent={agent}&template={quote(template, safe='')}", f"screenpop({agent})"
    )
    await expect(page.locator("#hub-status")).to_have_attribute("data-status", "open")
    return page


async def fake_crm(browse: Browse) -> list[str]:
    """Answer every request to the CRM in the browser; return the list of URLs asked for."""
    asked: list[str] = []

    async def answer(route: Route) -> None:
        asked.append(route.request.url)
        await route.fulfill(status=200, content_type="text/html", body="<!doctype html><title>CRM</title>")

    await browse.context.route("https://crm.example.com/**", answer)
    return asked


async def test_a_ringing_inbound_call_opens_the_templated_crm_url(browse: Browse) -> None:
    asked = await fake_crm(browse)
    async with call_provider(browse.hub.url, "agent1") as provider:
        page = await open_screenpop(browse, "agent1", TEMPLATE)
        await expect(page.locator("#template")).to_have_text(TEMPLATE)

        async with browse.context.expect_page() as opened:
            call_id = await provider.ring()
        crm = await opened.value
        await crm.wait_for_load_state()
        # The caller's "+" is encoded (%2B, not a space); the unknown {Ticket} is left empty and reported.
        url = "https://crm.example.com/customers/C-20411?phone=%2B15555550123&ticket="
        assert crm.url == url
        assert asked[0] == url
        entry = page.locator(f".notice[data-call-id='{call_id}']")
        await expect(entry).to_contain_text("+15555550123 rings:")
        await expect(entry).to_contain_text("left empty: Ticket")
        await expect(entry.get_by_role("link")).to_have_attribute("href", url)
        await screenshot(page, "screenpop")

        # The same contact answered does not pop again; an outbound dial does not pop at all:
        # the next page opened is the next ringing inbound call's.
        await provider.move(call_id, "connected")
        await provider.publish(
            build_call(
                "outbound-1",
                "connecting",
                call_type="outbound",
                variables={"DNIS": "+16013261548", "CustomerId": "C-1"},
            )
        )
        async with browse.context.expect_page() as opened:
            await provider.ring({"ANI": "+15555550999", "CustomerId": "C 7/8&x", "Ticket": "T-1"})
        second = await opened.value
        await second.wait_for_load_state()
        assert second.url == "https://crm.example.com/customers/C%207%2F8%26x?phone=%2B15555550999&ticket=T-1"
        assert len(browse.context.pages) == 3  # the screen-pop page and the two pops
        assert len(asked) == 2


async def test_a_template_that_is_not_an_http_url_opens_nothing(browse: Browse) -> None:
    async with call_provider(browse.hub.url, "agent2") as provider:
        page = await open_screenpop(browse, "agent2", "javascript:alert('{CustomerId}')")
        call_id = await provider.ring()
        entry = page.locator(f".notice[data-call-id='{call_id}']")
        await expect(entry).to_contain_text("not opened: only http: and https: URLs are opened")
        assert len(browse.context.pages) == 1


async def test_without_a_template_the_page_says_how_to_open_it(browse: Browse) -> None:
    page = await browse.page("screenpop.html?agent=agent3", "screenpop(agent3)")
    await expect(page.locator(".notice--error")).to_contain_text("?template=URL")
    await expect(page.locator("#hub-status")).to_have_attribute("data-status", "idle")
