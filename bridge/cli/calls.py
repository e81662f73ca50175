"""``connect-bridge call``: voice calls from the command line (docs/calls.md).

Each subcommand sends one request of the ``InboundCall`` family through
:class:`bridge.client.Calls` and prints what answers it: the answering event
as one JSON line (as ``send`` does), or a readable line with ``--pretty``.
The exit status is ``send``'s (see :mod:`bridge.cli.apps`): 1 when the
provider refuses (``CALL_NOT_FOUND``, ``HOLD_CALL_FAILED``…), 5 when no
provider is connected, 7 when the hub refuses the input itself
(``SCHEMA_VIOLATION``: a number that is not E.164, bad DTMF digits).

TARGET (dial, consult, transfer) is an E.164 number (``+18005550111``), a
quick connect's ARN (``arn:aws:connect:…``), or a quick connect's name, which
is looked up with ``GetQuickConnects`` (case-insensitive; exit status 2 when
no quick connect has that name).

With a supervisor token (control granted), ``--agent`` names the agent whose
call it is, as for ``send``.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import click
import orjson

from bridge.cli.apps import (
    EXIT_OK,
    EXIT_USAGE,
    connection_options,
    exit_code,
    report,
    run_async,
    write_line,
)
from bridge.cli.describe import describe_call, describe_quick_connect
from bridge.cli.joining import joining, require_target, supervisor_option
from bridge.client import BridgeError, Call, Calls, QuickConnect

#: A subcommand's work: given the helpers, the answer to print (or an exit status).
Work = Callable[[Calls], Awaitable["Call | list[Call] | list[QuickConnect] | int"]]

ID_HELP: Final = "without it, the one live call"
#: Longer than the longest deadline the call kinds declare (Transfer: 30 s), so that the
#: hub's REQUEST_TIMEOUT, which names the cause, comes first.
CALL_TIMEOUT: Final = 35.0


def call_command(name: str, help_text: str, build: Callable[..., Work], *arguments: click.Argument) -> click.Command:
    """A ``call`` subcommand: ``build(**arguments)`` gives its :data:`Work`; the shared
    options (``--pretty``, ``--timeout``, ``--source``, the connection's) are added here."""
    @click.option("--pretty", is_flag=True, help="A readable line instead of JSON.")
    @click.option(
        "--timeout",
        default=CALL_TIMEOUT,
        show_default=True,
        type=click.FloatRange(min=0, min_open=True),
        help="Seconds to wait for the answer (the hub's own deadline usually ends it first).",
    )
    @click.option("--source", default="connect-bridge-call", show_default=True, help="This app's name on the bus.")
    @supervisor_option
    @connection_options
    @click.pass_context
    def command(
        ctx: click.Context,
        /,
        pretty: bool,
        timeout: float,
        source: str,
        supervisor: bool,
        url: str,
        token: str | None,
        agent: str | None,
        **arguments: Any,
    ) -> None:
        who = joining(ctx, token, agent, supervisor=supervisor, control=True)
        require_target(who)
        work = build(**arguments)

        async def main() -> int:
            try:
                async with who.client(url, source=source, request_timeout=timeout) as bus:
                    result = await work(Calls(bus, timeout=timeout, agent=who.target))
            except BridgeError as exc:
                report(exc, url)
                return exit_code(exc)
            if isinstance(result, int):
                return result
            show(result, pretty)
            return EXIT_OK

        run_async(main())

    made = click.command(name, help=help_text)(command)
    made.params[:0] = list(arguments)
    return made


def show(result: Call | list[Call] | list[QuickConnect], pretty: bool) -> None:
    """Print an answer: JSON (the event, or one object per line) or readable lines."""
    now = datetime.now(UTC)
    items = result if isinstance(result, list) else [result]
    for item in items:
        if isinstance(item, Call):
            if pretty:
                write_line(sys.stdout, describe_call(item.raw, now))
            elif isinstance(result, list):
                write_line(sys.stdout, orjson.dumps(dict(item.raw)).decode())
            else:
                envelope = {"channel": "Amazon", "topic": "InboundCall", "subtopic": "InboundCallStateChange",
                            "message": {"call": dict(item.raw), "source": "event"}}
                if item.reply_to is not None:
                    envelope["replyTo"] = item.reply_to
                write_line(sys.stdout, orjson.dumps(envelope).decode())
        else:
            endpoint = {"name": item.name, "type": item.type, "endpointARN": item.endpoint_arn,
                        "phoneNumber": item.phone_number}
            write_line(sys.stdout, describe_quick_connect(endpoint) if pretty else orjson.dumps(endpoint).decode())


async def resolve(calls: Calls, target: str) -> str | QuickConnect | int:
    """A number or ARN as given; a name through GetQuickConnects (EXIT_USAGE when none has it)."""
    if target.startswith(("+", "arn:")):
        return target
    digits = target.replace(" ", "").replace("-", "")
    if digits.isdigit():
        click.echo(f"error: {target!r} is not an E.164 number: write it with + and the country code "
                   "(+16013261548, not 6013261548)", err=True)
        return EXIT_USAGE
    found = await calls.find_quick_connect(target)
    if found is None:
        names = ", ".join(q.name for q in await calls.quick_connects()) or "none"
        click.echo(f"error: no quick connect named {target!r} (the agent's: {names}); "
                   "give an E.164 number, an ARN or one of those names", err=True)
        return EXIT_USAGE
    return found


def _targeted(action: Callable[[Calls, str | QuickConnect], Awaitable[Call]]) -> Callable[[str], Work]:
    def build(target: str) -> Work:
        async def work(calls: Calls) -> Call | int:
            resolved = await resolve(calls, target)
            return resolved if isinstance(resolved, int) else await action(calls, resolved)

        return work

    return build


def _with_id(action: Callable[[Calls, str | None], Awaitable[Call]]) -> Callable[..., Work]:
    def build(**arguments: Any) -> Work:
        identifier = next(iter(arguments.values()), None)

        async def work(calls: Calls) -> Call:
            return await action(calls, identifier)

        return work

    return build


def _plain(action: Callable[[Calls], Awaitable[Any]]) -> Callable[[], Work]:
    def build() -> Work:
        return action

    return build


def _contact() -> click.Argument:
    return click.Argument(["contact_id"], required=False)


def _connection() -> click.Argument:
    return click.Argument(["connection_id"], required=False)


@click.group("call")
def call() -> None:
    """Voice calls of an agent: answer, hold, transfer, dial... (docs/calls.md).

    \b
      connect-bridge call list --agent agent1 --pretty
      connect-bridge call answer --agent agent1
      connect-bridge call transfer "Front desk" --agent agent1
    """


_COMMANDS: list[click.Command] = [
    call_command("answer", f"Answer the ringing call (or CONTACT_ID; {ID_HELP}).",
                 _with_id(lambda c, i: c.answer(i)), _contact()),
    call_command("reject", f"Reject the ringing call (or CONTACT_ID; {ID_HELP}).",
                 _with_id(lambda c, i: c.reject(i)), _contact()),
    call_command("hold", f"Put the customer (or CONNECTION_ID) on hold ({ID_HELP}).",
                 _with_id(lambda c, i: c.hold(i)), _connection()),
    call_command("resume", f"Take the customer (or CONNECTION_ID) off hold ({ID_HELP}).",
                 _with_id(lambda c, i: c.resume(i)), _connection()),
    call_command("hangup", f"Hang up: end the agent's part of the call, or CONNECTION_ID ({ID_HELP}).",
                 _with_id(lambda c, i: c.hangup(i)), _connection()),
    call_command("clear", f"End the after-call work of the call (or CONTACT_ID; {ID_HELP}).",
                 _with_id(lambda c, i: c.clear(i)), _contact()),
    call_command("dial", "Call TARGET: an E.164 number, a quick connect's ARN or name.",
                 _targeted(lambda c, t: c.dial(t)), click.Argument(["target"])),
    call_command("consult", "Add TARGET (number, quick connect ARN or name) to the call; the customer waits on hold.",
                 _targeted(lambda c, t: c.consult(t)), click.Argument(["target"])),
    call_command("transfer", "Blind-transfer the call to TARGET (number, quick connect ARN or name).",
                 _targeted(lambda c, t: c.transfer(t)), click.Argument(["target"])),
    call_command("dtmf", "Send DIGITS (0-9, *, #, and , for a pause) on the call.",
                 _with_id(lambda c, d: c.dtmf(d or "")), click.Argument(["digits"])),
    call_command("conference", "Join every party of the call.", _plain(lambda c: c.conference())),
    call_command("swap", "Swap which party of the call is on hold.", _plain(lambda c: c.swap())),
    call_command("quick-connects", "List the agent's quick connects.", _plain(lambda c: c.quick_connects())),
    call_command("list", "List the agent's live calls (StateSync).", _plain(lambda c: c.state_sync())),
]
for _command in _COMMANDS:
    call.add_command(_command)
