"""``connect-bridge``: the command line (click)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar

import click
import orjson
from jwt.warnings import InsecureKeyLengthWarning

from bridge import __version__
from bridge.cli.joining import parse_agents
from bridge.cli.loops import loop_factory, run_on, running_loop_name
from bridge.cli.options import (
    SettingsError,
    config_file_options,
    effective_settings,
    hub_options,
    read_secret,
    secret_options,
)
from bridge.cli.urls import cannot_listen, local_host, not_blank
from bridge.hub import http
from bridge.hub.config import HubConfig, TLSFileError
from bridge.logs import configure, use_format
from bridge.protocol import Role
from bridge.protocol.catalog import Catalog, CatalogError
from bridge.protocol.tokens import issue_token

log = logging.getLogger("bridge")

F = TypeVar("F", bound=Callable[..., Any])

#: ``serve``'s status when it cannot bind its address: ``demo``'s, and the client
#: commands' "cannot connect" (docs/client.md).
EXIT_CANNOT_LISTEN: Final = 3
#: HS256's recommended minimum key length (RFC 7518, 3.2): shorter secrets get a warning.
MIN_SECRET_BYTES: Final = 32


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="connect-bridge")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """connect-bridge: one WebSocket bus between Amazon Connect agent desktops and the apps around them."""
    configure(logging.WARNING - 10 * min(verbose, 2))  # text, repeats limited; serve may switch to JSON


@main.command()
@config_file_options
@hub_options
@click.pass_context
def serve(ctx: click.Context, /, open_anywhere: bool, secret_file: Path | None, print_config: bool,
          **settings: Any) -> None:
    """Run a hub node.

    Every option can also be set by the environment variable shown with it,
    or in the --config file under the setting's name (an option on the
    command line wins, then the variable, then the file); see
    docs/configuration.md. With --certfile and --keyfile it serves wss://
    and https:// (docs/deployment.md).

    Exit status: 0 after Ctrl-C or SIGTERM (and after --print-config), 1 for
    a broken schema file, 2 for a usage error (a bad option, variable or
    configuration file key; a certificate or key that cannot be used), 3 when
    the address cannot be listened on (port in use, address not on this
    machine).
    """
    settings["secret"] = read_secret(secret_file, settings["secret"])
    try:
        config = HubConfig(**settings)
    except ValueError as exc:  # a rule across settings, e.g. the Redis provider TTL above the heartbeat
        raise click.UsageError(str(exc)) from exc
    factory = loop_factory(config.loop)  # --loop uvloop without the package: said now, --print-config too
    if print_config:
        for line in effective_settings(ctx, config.secret):
            click.echo(line)
        return
    use_format(config.log_format)
    secret = config.secret
    if config.open_mode:
        if not http.is_loopback(config.host) and not open_anywhere:
            raise click.UsageError(f"--open serves anyone without a token; refusing to bind {config.host} "
                                   "(use a loopback address, or add --open-anywhere if you really mean it)")
        click.secho("WARNING: OPEN MODE: no tokens; anyone who can reach this port can act as any agent.",
                    fg="red", bold=True, err=True)
    elif not secret:
        raise click.UsageError("no secret: set BRIDGE_SECRET or pass --secret-file (or --open for a local demo)")
    else:
        warn_if_short(secret)
    try:
        status = run_on(factory, run_hub(config))
    except CatalogError as exc:
        raise click.ClickException(f"schema error: {exc}") from exc
    except TLSFileError as exc:
        raise SettingsError(f"TLS: {exc}") from exc
    sys.exit(status)


async def run_hub(config: HubConfig, *, ready_message: bool = True) -> int:
    """Serve until SIGINT or SIGTERM, then shut down gracefully (clients get 1001).

    Returns the exit status: 0 after a signal, :data:`EXIT_CANNOT_LISTEN` when
    the address cannot be bound (a busy port, an address not on this machine),
    said in one line on stderr.
    """
    from bridge.hub.server import HubServer

    hub = HubServer(config)
    try:
        await hub.start()
    except OSError as exc:
        click.echo(cannot_listen(config.host, config.port, exc), err=True)
        await hub.close()
        return EXIT_CANNOT_LISTEN
    # What start-up made (modules, the catalog's compiled validators: tens of thousands of
    # objects) lives as long as the process: out of the cyclic collector's sight, every
    # full collection walks only what came later, a shorter pause in the middle of a fan-out.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_message:
        health = f"{'https' if config.tls else 'http'}://{local_host(config.host)}:{hub.port}/healthz"
        click.echo(f"connect-bridge {__version__} listening on {hub.url} (health: {health}); "
                   f"event loop: {running_loop_name()}", err=True)
        if (missing := http.streams_warning(hub.streams_dir)) is not None:
            click.echo(missing, err=True)
    try:
        await stop.wait()
    finally:
        click.echo("shutting down: closing clients with 1001", err=True)
        await hub.close()
    return 0


@main.command()
@click.option("--agent", callback=not_blank,
              help="The agent's login name (Streams username): app and provider tokens.")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="app", show_default=True,
              help="Who presents the token: an app of the agent, the agent's provider (its CCP page "
              "or virtual agent), or a supervisor.")
@click.option("--name", help="A supervisor's own name (the token's sub).  [default: supervisor]")
@click.option("--agents", "agents_text", metavar="A,B|'*'",
              help="A supervisor's agents, comma-separated, or '*' for every agent of the hub.")
@click.option("--control", is_flag=True, help="A supervisor may also send requests for its agents.")
@click.option("--ttl", default=3600, show_default=True, type=int, help="Seconds until it expires.")
@secret_options
def token(agent: str | None, role: str, name: str | None, agents_text: str | None, control: bool, ttl: int,
          secret_file: Path | None, secret: str | None) -> None:
    """Print a signed token for an agent and role, or for a supervisor and its agents.

    \b
      connect-bridge token --agent agent1 --role provider
      connect-bridge token --role supervisor --name lead1 --agents agent1,agent2 --control
      connect-bridge token --role supervisor --agents '*'
    """
    scope: list[str] | None = None
    if role == Role.SUPERVISOR:
        if agent is not None:
            raise click.UsageError("a supervisor token names its agents with --agents, itself with --name")
        if agents_text is None:
            raise click.UsageError("a supervisor token needs --agents (names, comma-separated, or '*')")
        scope, agent = parse_agents(agents_text), name or "supervisor"
    elif name is not None or agents_text is not None or control:
        raise click.UsageError("--name, --agents and --control are for --role supervisor")
    elif agent is None:
        raise click.UsageError("missing --agent (the agent's login name)")
    secret = read_secret(secret_file, secret)
    if not secret:
        raise click.UsageError("no secret: set BRIDGE_SECRET or pass --secret-file")
    warn_if_short(secret)
    with warnings.catch_warnings():
        # PyJWT says the same in a multi-line library warning; ours above is the one line to act on.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        signed = issue_token(secret, agent=agent, role=role, ttl=ttl, agents=scope, control=control)
    click.echo(signed)


def warn_if_short(secret: str) -> None:
    """One line on stderr when the secret is below HS256's recommended key length.

    A warning, not a refusal: the hub accepts such a secret too (an existing
    deployment must keep working), and ``serve`` says the same at start-up.
    """
    if len(secret.encode()) < MIN_SECRET_BYTES:
        click.secho(f"WARNING: the token secret is shorter than {MIN_SECRET_BYTES} bytes; tokens signed with it "
                    "are easier to forge (make one with: openssl rand -hex 32).", fg="yellow", err=True)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--schemas", "schema_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Extra schema folder (repeatable).")
def validate(files: tuple[Path, ...], schema_dirs: tuple[Path, ...]) -> None:
    """Check envelope files against the catalog: OK, or the JSON path and rule broken."""
    try:
        catalog = Catalog.load(schema_dirs)
    except CatalogError as exc:
        raise click.ClickException(f"schema error: {exc}") from exc
    failed = 0
    for path in files:
        try:
            envelope = orjson.loads(path.read_bytes())
        except orjson.JSONDecodeError as exc:
            problem: str | None = f"not valid JSON: {exc}"
        else:
            problem = catalog.validate(envelope)
        if problem is None:
            click.echo(f"{path}: OK")
        else:
            failed += 1
            click.echo(f"{path}: FAIL {problem}")
    sys.exit(1 if failed else 0)


def _register_app_commands() -> None:
    """The client-side commands (send, listen, virtual-agent, demo, call) live in their own modules."""
    from bridge.cli import api, apps, calls, streams

    for command in (apps.send, apps.listen, apps.virtual_agent, apps.demo, calls.call, streams.fetch_streams,
                    api.describe):
        main.add_command(command)


_register_app_commands()
