"""Addresses and values on the command line: the ``--url`` a client command takes (checked
before anything connects), names that cannot be blank, the URL a person can open for a hub
that listens on every address, and the line said when an address cannot be bound."""

from __future__ import annotations

import ipaddress
import os
from typing import Final
from urllib.parse import urlsplit

import click

from bridge.hub.http import WS_PATH

#: The schemes a client command can connect with.
WEBSOCKET_SCHEMES: Final = ("ws", "wss")


def check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """``--url``: a ws:// or wss:// URL with a host, else a usage error that says which.

    Caught here, before connecting, because an http:// URL is a mistake in the
    command, not a hub that "cannot be reached" (exit status 2, not 3).
    """
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a URL ({exc})") from exc
    if parts.scheme.lower() not in WEBSOCKET_SCHEMES:
        example = f"ws://{parts.netloc}{WS_PATH}" if parts.netloc else f"ws://127.0.0.1:8765{WS_PATH}"
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise click.BadParameter(f"{value!r} has {shown}; the hub's URL is ws:// or wss://, e.g. {example}")
    if not parts.hostname:
        raise click.BadParameter(f"{value!r} names no host, e.g. ws://127.0.0.1:8765{WS_PATH}")
    return value


def not_blank(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """An option that names something (an agent, a token) cannot be empty: an unset shell
    variable (``--token "$TOKEN"``) is a mistake to say, not a value to send."""
    if value is not None and not value.strip():
        raise click.BadParameter("is empty (an unset shell variable?)")
    return value


def websocket_hint(url: str) -> str:
    """The likely right URL when ``url`` answered with plain HTTP: its path made the hub's ``/ws``."""
    parts = urlsplit(url)
    return parts._replace(path=WS_PATH, query="", fragment="").geturl()


def local_host(bind_host: str) -> str:
    """A host to open for a hub bound to ``bind_host``: the loopback address when it
    listens on every address (0.0.0.0 or ::, which no browser can open), else the
    address itself (an IPv6 one in brackets)."""
    if bind_host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_host == "::":
        return "[::1]"
    try:
        address = ipaddress.ip_address(bind_host.split("%", 1)[0])
    except ValueError:
        return bind_host  # a name
    return f"[{bind_host}]" if address.version == 6 else bind_host


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """The one line ``serve`` and ``demo`` print when they cannot bind: the system's
    words for the errno (``address already in use``), not asyncio's longer text."""
    if exc.errno is None:
        return f"error: cannot start the hub: {exc}"
    return f"error: cannot listen on {host}:{port}: {os.strerror(exc.errno).lower()}"
