"""Fixtures for the browser tests: a hub serving static/, Debian's Chromium, watched pages.

These tests drive the real pages (widget.html, ccp.html?emulate=1) in real
headless Chromium with Playwright for Python. Playwright's own browser
download is never used (it cannot work on this network): Chromium comes from
Debian's ``chromium`` package at ``/usr/bin/chromium``.

When Chromium or the Streams bundle (``npm ci``) is missing, the tests fail in
CI (``CI=true``) and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer

from ..helpers import prerequisite_missing

REPO = Path(__file__).resolve().parents[2]
STATIC_DIR = REPO / "static"
STREAMS_DIR = REPO / "node_modules" / "amazon-connect-streams" / "release"
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = Path(os.environ.get("BRIDGE_CHROMIUM", "/usr/bin/chromium"))

#: Flags for a root, offline machine: no sandbox (root), and none of Chromium's
#: background connections, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_prerequisites() -> None:
    if not CHROMIUM.exists():
        prerequisite_missing(f"Chromium not found at {CHROMIUM}: apt-get install chromium")
    if not (STREAMS_DIR / "connect-streams-min.js").is_file():
        prerequisite_missing(f"amazon-connect-streams not installed in {STREAMS_DIR.parent}: run npm ci")


@pytest.fixture
async def hub(browser_prerequisites: None) -> AsyncIterator[HubServer]:
    """An open-mode hub on a free port serving this checkout's static/ and Streams bundle."""
    config = HubConfig(port=0, open_mode=True, static_dir=STATIC_DIR, streams_dir=STREAMS_DIR)
    async with HubServer(config) as server:
        yield server


@dataclass
class PageWatch:
    """Everything a page said that a test should not ignore."""

    problems: list[str] = field(default_factory=list)

    def attach(self, page: Page, label: str) -> None:
        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.problems.append(f"{label} console error: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"{label} page error: {error}"))
        page.on("crash", lambda _: self.problems.append(f"{label} crashed"))


@dataclass
class Browse:
    """Opens the bridge's pages against one hub and watches them for errors."""

    hub: HubServer
    context: BrowserContext
    watch: PageWatch

    async def page(self, path: str, label: str, *, width: int = 420, height: int = 320) -> Page:
        page = await self.context.new_page()
        await page.set_viewport_size({"width": width, "height": height})
        self.watch.attach(page, label)
        await page.goto(f"{self.hub.http_url}/{path}")
        return page

    async def ccp(self, agent: str, **params: Any) -> Page:
        """ccp.html on the emulated backend, once its provider has joined the hub."""
        query = "&".join(f"{key}={value}" for key, value in {"emulate": 1, "agent": agent, **params}.items())
        page = await self.page(f"ccp.html?{query}", f"ccp({agent})", width=1100, height=720)
        await page.wait_for_function(
            "() => window.connectBridge && window.connectBridge.client.state === 'open'"
        )
        return page

    async def widget(self, agent: str, label: str = "widget") -> Page:
        """widget.html, once it shows a state with the softphone connected."""
        page = await self.page(f"widget.html?agent={agent}", f"{label}({agent})")
        await page.wait_for_selector("#widget[data-ready='true']")
        await page.wait_for_selector("#provider-status[data-status='up']")
        return page


@pytest.fixture
async def browser(browser_prerequisites: None) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def browse(hub: HubServer, browser: Browser) -> AsyncIterator[Browse]:
    """Pages of one browser profile; the test fails on any console error or page error."""
    context = await browser.new_context()
    context.set_default_timeout(5000)
    watch = PageWatch()
    try:
        yield Browse(hub, context, watch)
    finally:
        await context.close()
    assert not watch.problems, "the pages reported errors:\n" + "\n".join(watch.problems)


async def screenshot(page: Page, name: str) -> Path:
    """Save the whole page to artifacts/screenshots/NAME.png (kept by CI)."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(name)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True, animations="disabled", caret="hide")
    return path
