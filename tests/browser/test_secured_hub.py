"""The pages on a secured hub (tokens required), in real Chromium.

The landing page must not claim open mode nor link demo pages that cannot
work there: it asks the hub (``/config.json``) and says which token each page
needs. A softphone page opened without a token must say so on the page (what
to run, where the token goes), with no console error: that is how the page was
opened, not a bug in the provider.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import expect

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol.tokens import issue_token

from .conftest import STATIC_DIR, STREAMS_DIR, Browse, screenshot

pytestmark = pytest.mark.browser

SECRET = "s" * 32


@pytest.fixture
async def secured(browse: Browse) -> AsyncIterator[Browse]:
    """The pages of the test's browser profile, against a secured hub (console errors fail the test)."""
    config = HubConfig(port=0, secret=SECRET, static_dir=STATIC_DIR, streams_dir=STREAMS_DIR)
    async with HubServer(config) as hub:
        yield Browse(hub, browse.context, browse.watch)
        # The pages go before their hub: a page that outlived it would log its reconnects as errors.
        for page in browse.context.pages:
            await page.close()


async def test_the_landing_page_says_the_hub_is_secured_and_links_nothing_that_cannot_work(
    secured: Browse,
) -> None:
    page = await secured.page("?agent=agent5", "index(secured)", width=1000, height=900)
    mode = page.locator("#hub-mode")
    await expect(mode).to_have_attribute("data-mode", "secured")
    await expect(mode).to_contain_text("This hub is secured: every page needs a token.")
    await expect(mode).to_contain_text("?token=")
    await expect(page.locator("body")).not_to_contain_text("open (demo) mode")
    # No link to a page that would only be refused.
    await expect(page.locator("#open-cards")).to_be_hidden()
    await expect(page.locator("a[href*='.html']:visible")).to_have_count(0)
    ccp = page.locator("#token-ccp")
    await expect(ccp.locator("[data-part='command']")).to_have_text(
        "connect-bridge token --agent agent5 --role provider --ttl 28800"
    )
    await expect(ccp.locator("[data-part='url']")).to_have_text("ccp.html?emulate=1&agent=agent5&token=…")
    await expect(page.locator("#token-widget [data-part='command']")).to_have_text(
        "connect-bridge token --agent agent5 --role app --ttl 3600"
    )
    await expect(page.locator("#token-wallboard [data-part='url']")).to_have_text("wallboard.html?token=…")
    await page.get_by_label("Agent").fill("jdoe")
    await expect(ccp.locator("[data-part='command']")).to_contain_text("--agent jdoe --role provider")
    await screenshot(page, "index-secured")
    narrow = await secured.page("?agent=agent5", "index(secured, 280)", width=280, height=900)
    await expect(narrow.locator("#hub-mode")).to_have_attribute("data-mode", "secured")
    width = await narrow.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= 280, f"the landing page is {width} px wide in a 280 px viewport"
    await screenshot(narrow, "index-secured-280")


async def test_the_landing_page_on_an_open_hub_links_the_demo_pages(browse: Browse) -> None:
    page = await browse.page("", "index(open)", width=1000, height=700)
    await expect(page.locator("#hub-mode")).to_have_attribute("data-mode", "open")
    await expect(page.locator("#hub-mode")).to_contain_text("open (demo) mode")
    await expect(page.locator("#secured-cards")).to_be_hidden()
    await expect(page.locator("#link-ccp")).to_be_visible()
    await screenshot(page, "index-open")


async def test_a_softphone_page_without_a_token_says_what_to_do_without_a_console_error(
    secured: Browse,
) -> None:
    page = await secured.page("ccp.html?emulate=1&agent=agent5", "ccp(no token)", width=1000, height=800)
    error = page.locator("#page-error")
    await expect(error).to_contain_text("This bridge is secured: the softphone page needs a provider token.")
    await expect(error).to_contain_text('"connect-bridge token --agent agent5 --role provider"')
    await expect(error).to_contain_text("&token=<the token>")
    await expect(page.locator("#hub-status")).to_have_attribute("data-status", "closed")
    await screenshot(page, "ccp-secured-no-token")
    narrow = await secured.page("ccp.html?emulate=1&agent=agent5", "ccp(no token, 280)", width=280, height=900)
    await expect(narrow.locator("#page-error")).to_contain_text("This bridge is secured")
    width = await narrow.evaluate("() => document.scrollingElement.scrollWidth")
    assert width <= 280, f"the refused softphone page is {width} px wide in a 280 px viewport"
    await screenshot(narrow, "ccp-secured-no-token-280")
    # The secured fixture's browse checks, on leaving, that no page logged a console error.


async def test_a_softphone_page_with_its_token_joins_the_secured_hub(secured: Browse) -> None:
    token = issue_token(SECRET, agent="agent5", role="provider", ttl=600)
    page = await secured.page(f"ccp.html?emulate=1&agent=agent5&token={token}", "ccp(token)", width=1000, height=800)
    await page.wait_for_function("() => window.connectBridge && window.connectBridge.client.state === 'open'")
    await expect(page.locator("#page-error")).to_be_hidden()
