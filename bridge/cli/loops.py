"""The event loop ``serve`` and ``demo`` run on: asyncio's own, or uvloop (the optional extra ``uvloop``).

The choice is ``--loop`` (``HubConfig.loop``); its default, ``DEFAULT_LOOP``,
is spelled in :mod:`bridge.hub.config`. uvloop is started through
``asyncio.Runner(loop_factory=...)``, not the deprecated event loop policies,
so nothing else in the process changes loops behind the command's back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from bridge.cli.options import SettingsError
from bridge.hub.config import LoopChoice

T = TypeVar("T")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]

#: What to run when ``--loop uvloop`` is asked for and uvloop is not installed.
INSTALL_UVLOOP = "pip install 'connect-bridge[uvloop]'"


def loop_factory(choice: LoopChoice) -> LoopFactory | None:
    """The factory of the loop to run on, None for asyncio's own.

    ``auto`` is uvloop when it can be imported, else asyncio. ``uvloop`` without
    the package raises :class:`SettingsError` (one line, exit status 2) saying how
    to install it: asking for it by name and silently getting asyncio would make a
    measurement lie.
    """
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "auto":
            return None
        raise SettingsError(f"--loop uvloop: the uvloop package is not installed ({INSTALL_UVLOOP})") from None
    return uvloop.new_event_loop


def run_on(factory: LoopFactory | None, main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)``, on the loop ``factory`` makes (asyncio's own for None)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running_loop_name() -> str:
    """The package of the running loop's class: ``uvloop`` or ``asyncio``, for the start-up line."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
