"""``connect-bridge``: the command line (click)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

import click
import orjson
from click.core import ParameterSource

from bridge import __version__
from bridge.hub.config import HubConfig, env_name
from bridge.protocol import Role
from bridge.protocol.catalog import Catalog, CatalogError
from bridge.protocol.tokens import issue_token

log = logging.getLogger("bridge")

F = TypeVar("F", bound=Callable[..., Any])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="connect-bridge")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """connect-bridge: one WebSocket bus between Amazon Connect agent desktops and the apps around them."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


# ----- settings: the options are derived from HubConfig -----------------------------------

_HINTS = get_type_hints(HubConfig)
_FIELDS = {spec.name: spec for spec in fields(HubConfig)}


def _click_type(hint: Any, metadata: Mapping[str, Any]) -> click.ParamType[Any]:
    """The click type of one setting (``X | None`` and ``tuple[X, ...]`` give X's)."""
    if get_origin(hint) in (UnionType, tuple):
        hint = get_args(hint)[0]
    low, high, open_low = metadata["min"], metadata["max"], metadata["min_open"]
    bounded = low is not None or high is not None
    if hint is int:
        return click.IntRange(low, high, min_open=open_low) if bounded else click.INT
    if hint is float:
        return click.FloatRange(low, high, min_open=open_low) if bounded else click.FLOAT
    if hint is Path:
        return click.Path(exists=True, file_okay=False, path_type=Path)
    return click.STRING


def config_option(name: str, **overrides: Any) -> Callable[[F], F]:
    """The ``serve`` option for the HubConfig field ``name``; ``overrides`` replace click attributes.

    ``--field-name`` (or the field's ``option``), its type and bounds, its
    default and help, and ``BRIDGE_FIELD_NAME``. A tuple field is a repeatable
    option whose environment variable holds several values.
    """
    spec = _FIELDS[name]
    metadata = spec.metadata
    hint = _HINTS[name]
    param_type = _click_type(hint, metadata)
    attrs: dict[str, Any] = {
        "type": param_type,
        "default": spec.default,
        "help": metadata["help"],
        "envvar": env_name(name),
        "show_envvar": True,
        "show_default": spec.default not in (None, ()) and hint is not bool,
    }
    if hint is bool:
        attrs.update(is_flag=True, type=None)
    if get_origin(hint) is tuple:
        separator = "':'" if param_type.envvar_list_splitter == ":" else "spaces"
        attrs.update(multiple=True, help=f"{metadata['help']} Repeatable; the env var takes several, separated by {separator}.")
    attrs.update(overrides)
    return click.option(metadata["option"] or "--" + name.replace("_", "-"), name, **attrs)


def _refuse_command_line(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if param.name and ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
        raise click.UsageError("the secret is not taken on the command line, where any user could read it "
                               "in the process list: set BRIDGE_SECRET or pass --secret-file")
    return value


def secret_options(func: F) -> F:
    """``--secret-file`` (``BRIDGE_SECRET_FILE``), and the secret itself from ``BRIDGE_SECRET`` only."""
    func = config_option("secret", hidden=True, callback=_refuse_command_line)(func)
    return click.option(
        "--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
        envvar=env_name("secret_file"), show_envvar=True,
        help=f"File holding the token secret; without it, the secret comes from {env_name('secret')}.",
    )(func)


def read_secret(secret_file: Path | None, secret: str | None) -> str | None:
    """The secret file's content if there is one, else ``BRIDGE_SECRET`` (click read it)."""
    if secret_file is not None:
        return secret_file.read_text().strip() or None
    return secret or None


def hub_options(func: F) -> F:
    """Every HubConfig field as a ``serve`` option, in field order, plus ``--open-anywhere``."""
    decorators: list[Callable[[F], F]] = []
    for name in _FIELDS:
        decorators.append(secret_options if name == "secret" else config_option(name))
        if name == "open_mode":
            decorators.append(click.option(
                "--open-anywhere", is_flag=True, envvar=env_name("open_anywhere"), show_envvar=True,
                help="Allow --open on a non-loopback address (unsafe).",
            ))
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@hub_options
def serve(open_anywhere: bool, secret_file: Path | None, **settings: Any) -> None:
    """Run a hub node.

    Every option can also be set by the environment variable shown with it
    (an option on the command line wins); see docs/configuration.md.
    """
    settings["secret"] = read_secret(secret_file, settings["secret"])
    try:
        config = HubConfig(**settings)
    except ValueError as exc:  # a rule across settings, e.g. the Redis provider TTL above the heartbeat
        raise click.UsageError(str(exc)) from exc
    secret = config.secret
    if config.open_mode:
        if not is_loopback(config.host) and not open_anywhere:
            raise click.UsageError(f"--open serves anyone without a token; refusing to bind {config.host} "
                                   "(use a loopback address, or add --open-anywhere if you really mean it)")
        click.secho("WARNING: OPEN MODE: no tokens; anyone who can reach this port can act as any agent.",
                    fg="red", bold=True, err=True)
    elif not secret:
        raise click.UsageError("no secret: set BRIDGE_SECRET or pass --secret-file (or --open for a local demo)")
    elif len(secret.encode()) < 32:
        click.secho("WARNING: the token secret is shorter than 32 bytes; tokens signed with it are easier to forge.",
                    fg="yellow", err=True)
    try:
        asyncio.run(run_hub(config))
    except CatalogError as exc:
        raise click.ClickException(f"schema error: {exc}") from exc


async def run_hub(config: HubConfig, *, ready_message: bool = True) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully (clients get 1001)."""
    from bridge.hub.server import HubServer

    hub = HubServer(config)
    await hub.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if ready_message:
        click.echo(f"connect-bridge {__version__} listening on {hub.url} (health: {hub.http_url}/healthz)", err=True)
    try:
        await stop.wait()
    finally:
        click.echo("shutting down: closing clients with 1001", err=True)
        await hub.close()


@main.command()
@click.option("--agent", required=True, help="The agent's login name (Streams username).")
@click.option("--role", type=click.Choice([r.value for r in Role]), default="app", show_default=True)
@click.option("--ttl", default=3600, show_default=True, type=int, help="Seconds until it expires.")
@secret_options
def token(agent: str, role: str, ttl: int, secret_file: Path | None, secret: str | None) -> None:
    """Print a signed token for an agent and role."""
    secret = read_secret(secret_file, secret)
    if not secret:
        raise click.UsageError("no secret: set BRIDGE_SECRET or pass --secret-file")
    click.echo(issue_token(secret, agent=agent, role=role, ttl=ttl))


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
    """The client-side commands (send, listen, virtual-agent, demo) live in their own module."""
    from bridge.cli import apps

    for command in (apps.send, apps.listen, apps.virtual_agent, apps.demo):
        main.add_command(command)


_register_app_commands()
