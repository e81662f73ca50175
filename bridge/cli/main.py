"""``connect-bridge``: the command line (click)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

import click
import orjson

from bridge import __version__
from bridge.hub.config import HubConfig
from bridge.protocol import Role
from bridge.protocol.catalog import Catalog, CatalogError
from bridge.protocol.tokens import issue_token

log = logging.getLogger("bridge")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="connect-bridge")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def main(verbose: int) -> None:
    """connect-bridge: one WebSocket bus between Amazon Connect agent desktops and the apps around them."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def read_secret(secret_file: Path | None) -> str | None:
    if secret_file is not None:
        return secret_file.read_text().strip() or None
    return os.environ.get("BRIDGE_SECRET") or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int)
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the token secret (default: $BRIDGE_SECRET).")
@click.option("--open", "open_mode", is_flag=True,
              help="Demo mode: no tokens, Hello names the agent. Loopback only unless --open-anywhere.")
@click.option("--open-anywhere", is_flag=True, help="Allow --open on a non-loopback address (unsafe).")
@click.option("--request-timeout", default=10.0, show_default=True, type=float, help="Seconds a provider has to answer.")
@click.option("--hello-timeout", default=10.0, show_default=True, type=float, help="Seconds a client has to send Hello.")
@click.option("--token-leeway", default=0.0, show_default=True, type=float, help="Clock leeway for token expiry (s).")
@click.option("--max-frame-size", default=64 * 1024, show_default=True, type=int, help="Largest frame in bytes (1009 above).")
@click.option("--allow-origin", "allow_origins", multiple=True,
              help="A browser origin allowed besides the hub's own (repeatable; '*' for any).")
@click.option("--schemas", "schema_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A folder of extra message-kind schemas (repeatable).")
@click.option("--static", "static_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Serve this folder at / instead of the built-in pages.")
@click.option("--streams-dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Folder with connect-streams-min.js (default: ./node_modules/amazon-connect-streams/release).")
@click.option("--redis", "redis_url", help="Scale out over Redis, e.g. redis://127.0.0.1:6379/0.")
@click.option("--redis-prefix", default="connect-bridge", show_default=True, help="Prefix of every Redis key.")
@click.option("--redis-heartbeat", type=float, help="Seconds between this node's Redis heartbeats (default 2).")
@click.option("--redis-provider-ttl", type=float,
              help="Seconds a dead node's provider entries survive it (default 6).")
@click.option("--redis-retained-ttl", type=float, help="Seconds retained state is kept in Redis (default 86400).")
@click.option("--rate-limit", default=50.0, show_default=True, type=float, help="Frames per second per connection.")
@click.option("--rate-burst", default=100, show_default=True, type=int, help="Burst size of the rate limit.")
@click.option("--max-send-buffer", default=1024 * 1024, show_default=True, type=int,
              help="Unsent bytes per client before it is dropped as too slow (4008).")
@click.option("--max-connections-per-agent", default=200, show_default=True, type=int)
@click.option("--compression", is_flag=True, help="Enable permessage-deflate (off by default: it costs CPU).")
def serve(
    host: str, port: int, secret_file: Path | None, open_mode: bool, open_anywhere: bool,
    request_timeout: float, hello_timeout: float, token_leeway: float, max_frame_size: int,
    allow_origins: tuple[str, ...], schema_dirs: tuple[Path, ...], static_dir: Path | None,
    streams_dir: Path | None, redis_url: str | None, redis_prefix: str, redis_heartbeat: float | None,
    redis_provider_ttl: float | None, redis_retained_ttl: float | None, rate_limit: float,
    rate_burst: int, max_send_buffer: int, max_connections_per_agent: int, compression: bool,
) -> None:
    """Run a hub node."""
    secret = read_secret(secret_file)
    if open_mode:
        if not is_loopback(host) and not open_anywhere:
            raise click.UsageError(f"--open serves anyone without a token; refusing to bind {host} "
                                   "(use a loopback address, or add --open-anywhere if you really mean it)")
        click.secho("WARNING: OPEN MODE: no tokens; anyone who can reach this port can act as any agent.",
                    fg="red", bold=True, err=True)
    elif not secret:
        raise click.UsageError("no secret: set BRIDGE_SECRET or pass --secret-file (or --open for a local demo)")
    elif len(secret.encode()) < 32:
        click.secho("WARNING: the token secret is shorter than 32 bytes; tokens signed with it are easier to forge.",
                    fg="yellow", err=True)
    config = HubConfig(
        host=host, port=port, secret=secret, open_mode=open_mode, request_timeout=request_timeout,
        hello_timeout=hello_timeout, token_leeway=token_leeway, max_frame_size=max_frame_size,
        allow_origins=allow_origins, schema_dirs=schema_dirs, static_dir=static_dir,
        streams_dir=streams_dir, redis_url=redis_url, redis_prefix=redis_prefix,
        redis_heartbeat=redis_heartbeat, redis_provider_ttl=redis_provider_ttl,
        redis_retained_ttl=redis_retained_ttl, rate_limit=rate_limit,
        rate_burst=rate_burst, max_send_buffer=max_send_buffer,
        max_connections_per_agent=max_connections_per_agent, compression=compression,
    )
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
@click.option("--secret-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="File holding the secret (default: $BRIDGE_SECRET).")
def token(agent: str, role: str, ttl: int, secret_file: Path | None) -> None:
    """Print a signed token for an agent and role."""
    secret = read_secret(secret_file)
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
