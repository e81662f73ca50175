"""``connect-bridge --help``: every command and every option says what it is for, and the
commands that run virtual agents share their defaults."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest

from bridge.cli.main import main as connect_bridge
from bridge.sim.contacts import COMMAND_CALL_TIMERS


def commands(group: click.Group = connect_bridge, path: str = "connect-bridge") -> Iterator[tuple[str, click.Command]]:
    """Every command under ``group``, subcommands of subgroups included, with its full name."""
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")


ALL = dict(commands())


def test_the_tree_is_walked() -> None:
    assert {"connect-bridge serve", "connect-bridge demo", "connect-bridge virtual-agent",
            "connect-bridge listen", "connect-bridge send", "connect-bridge fetch-streams"} <= set(ALL)
    assert any(name.startswith("connect-bridge call ") for name in ALL)  # the call subcommands


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_and_option_has_help(name: str) -> None:
    command = ALL[name]
    assert (command.help or command.short_help or "").strip(), f"{name} has no help text"
    missing = [
        param.opts[0]
        for param in command.params
        if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip()
    ]
    assert not missing, f"{name}: options without help: {', '.join(missing)}"


def test_the_top_level_options_have_help() -> None:
    missing = [p.opts[0] for p in connect_bridge.params if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert not missing


def _defaults(name: str) -> dict[str, object]:
    return {param.name: param.default for param in ALL[name].params if isinstance(param, click.Option)
            and param.name is not None}


def test_demo_and_virtual_agent_share_their_defaults() -> None:
    demo, virtual = _defaults("connect-bridge demo"), _defaults("connect-bridge virtual-agent")
    shared = set(demo) & set(virtual)
    assert {"call_every", "call_length", "ring_timeout", "answer_delay", "acw_timeout", "caller"} <= shared
    assert {name: demo[name] for name in shared} == {name: virtual[name] for name in shared}
    assert {name: demo[name] for name in COMMAND_CALL_TIMERS._fields} == COMMAND_CALL_TIMERS._asdict()
