"""The agent widget served over https:// by a TLS hub, its WebSocket over wss://, in real Chromium.

Chromium is told to trust exactly the test certificate's public key
(``--ignore-certificate-errors-spki-list``, base64 of the SHA-256 of its
SubjectPublicKeyInfo), not to ignore certificate errors at large: a
Chromium without that flag refuses the same page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Error, async_playwright

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.sim.virtual_agent import VirtualAgent

from ..helpers import FAST
from ..test_tls import TLSFiles, make_tls_files
from .conftest import CHROMIUM, CHROMIUM_ARGS, STATIC_DIR, STREAMS_DIR, Browse, PageWatch

pytestmark = pytest.mark.browser


@pytest.fixture
def tls(tmp_path: Path) -> TLSFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
async def tls_hub(browser_prerequisites: None, tls: TLSFiles) -> AsyncIterator[HubServer]:
    """An open-mode hub serving this checkout's pages over TLS."""
    config = HubConfig(port=0, open_mode=True, static_dir=STATIC_DIR, streams_dir=STREAMS_DIR,
                       certfile=tls.cert, keyfile=tls.key)
    async with HubServer(config) as server:
        yield server


@asynccontextmanager
async def _launch(extra: list[str]) -> AsyncIterator[Browser]:
    """Chromium with the suite's flags plus ``extra``."""
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra])
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def trusting_browser(browser_prerequisites: None, tls: TLSFiles) -> AsyncIterator[Browser]:
    """Chromium that trusts the hub's certificate key, and no other unknown one."""
    async with _launch([f"--ignore-certificate-errors-spki-list={tls.spki_sha256}"]) as instance:
        yield instance


async def test_the_widget_loads_over_https_and_connects_over_wss(
    tls_hub: HubServer, tls: TLSFiles, trusting_browser: Browser
) -> None:
    assert tls_hub.http_url.startswith("https://")
    context = await trusting_browser.new_context()
    context.set_default_timeout(5000)
    watch = PageWatch()
    try:
        async with VirtualAgent(tls_hub.url, agent="agent1", ssl=tls.client_context(), **FAST):
            page = await Browse(tls_hub, context, watch).widget("agent1")  # the softphone up: joined over wss
            assert page.url.startswith(f"https://127.0.0.1:{tls_hub.port}/widget.html")
            await page.wait_for_selector("#hub-status[data-status='open']")
            assert await page.evaluate("location.protocol") == "https:"
            assert await page.text_content("#state-name") == "Available"
    finally:
        await context.close()
    assert not watch.problems, "the page reported errors:\n" + "\n".join(watch.problems)


async def test_a_browser_that_does_not_trust_the_certificate_gets_no_page(
    tls_hub: HubServer, browser_prerequisites: None
) -> None:
    async with _launch([]) as instance:
        page = await instance.new_page()
        with pytest.raises(Error, match="ERR_CERT_AUTHORITY_INVALID"):
            await page.goto(f"{tls_hub.http_url}/widget.html?agent=agent1")
