"""Hub settings: one frozen object, built by the CLI or by code that embeds the hub.

:class:`HubConfig` is the one place a hub default is spelled. Each field
carries its help text and bounds in its metadata; ``connect-bridge serve``
derives its options (``--kebab-case``) and environment variables
(``BRIDGE_<FIELD_NAME>``) from the fields, and docs/configuration.md lists them.
Nothing else in the hub reads the environment.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from bridge.brokers import Broker, MemoryBroker
from bridge.brokers.base import DEFAULT_HISTORY_SIZE, DEFAULT_HISTORY_TTL
from bridge.brokers.streams import DEFAULT_MAX_BYTES as DEFAULT_HISTORY_MAX_BYTES
from bridge.hub.core.router import DEFAULT_LIMITS, DEFAULT_REQUEST_TIMEOUT, DEFAULT_TOKEN_LEEWAY
from bridge.brokers.redis.settings import (
    DEFAULT_HEARTBEAT,
    DEFAULT_PREFIX,
    DEFAULT_PROVIDER_TTL,
    DEFAULT_RECONNECT_MAX,
    DEFAULT_RETAINED_TTL,
    DEFAULT_TIMEOUT,
    RedisSettings,
)

#: Prefix of every setting's environment variable: ``port`` is ``BRIDGE_PORT``.
ENV_PREFIX = "BRIDGE_"

#: The event loops ``serve`` can run a node on: uvloop when installed (``auto``), asyncio's own, or uvloop.
LoopChoice = Literal["auto", "asyncio", "uvloop"]
#: ``serve --loop``'s default: asyncio, since uvloop measured no gain for the hub (issue 15,
#: benchmarks/README.md). This line is the one to change, to "auto", to run on uvloop wherever it is installed.
DEFAULT_LOOP: LoopChoice = "asyncio"


def about(
    help: str,
    *,
    option: str | None = None,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    file: bool = False,
) -> dict[str, Any]:
    """A :class:`HubConfig` field's metadata: its help text, and bounds.

    ``option`` is the command-line name when it is not the field's name in
    kebab case. ``min``/``max`` bound the value (``min_open``: strictly above
    ``min``); the CLI turns them into click ranges, :class:`HubConfig` checks them.
    ``file``: a ``Path`` field that names a file (the others name folders).
    """
    return {"help": help, "option": option, "min": min, "max": max, "min_open": min_open, "file": file}


def env_name(name: str) -> str:
    """The environment variable of a setting: ``redis_heartbeat`` -> ``BRIDGE_REDIS_HEARTBEAT``."""
    return ENV_PREFIX + name.upper()


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Everything a hub node needs to know to start.

    The defaults are the documented protocol defaults (docs/protocol.md,
    docs/configuration.md).
    """

    host: str = field(default="127.0.0.1", metadata=about("Address to listen on."))
    port: int = field(default=8765, metadata=about("Port to listen on (0 picks a free one).", min=0, max=65535))
    certfile: Path | None = field(
        default=None,
        metadata=about(
            "PEM certificate chain (server certificate first): serve wss:// and https:// (needs --keyfile).",
            file=True,
        ),
    )
    keyfile: Path | None = field(
        default=None,
        metadata=about("PEM private key of --certfile, unencrypted (needs --certfile).", file=True),
    )
    secret: str | None = field(
        default=None,
        metadata=about(
            "HS256 secret for tokens; required unless --open. Only from BRIDGE_SECRET or --secret-file "
            "(never the command line or the --config file)."
        ),
    )
    open_mode: bool = field(
        default=False,
        metadata=about(
            "Demo mode: no tokens, Hello names the agent. Loopback only unless --open-anywhere.", option="--open"
        ),
    )
    request_timeout: float = field(
        default=DEFAULT_REQUEST_TIMEOUT,
        metadata=about("Seconds a provider has to answer a request before REQUEST_TIMEOUT.", min=0, min_open=True),
    )
    hello_timeout: float = field(
        default=10.0, metadata=about("Seconds a new connection has to send Hello.", min=0, min_open=True)
    )
    token_leeway: float = field(
        default=DEFAULT_TOKEN_LEEWAY, metadata=about("Clock leeway in seconds when checking token expiry.", min=0)
    )
    max_frame_size: int = field(
        default=64 * 1024,
        metadata=about("Largest accepted frame in bytes; larger ones close the connection with 1009.", min=1),
    )
    allow_origins: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "A browser origin accepted besides the hub's own ('*' accepts any); also the pages' frame-ancestors.",
            option="--allow-origin",
        ),
    )
    public_hosts: tuple[str, ...] = field(
        default=(),
        metadata=about(
            "A host name clients reach the hub by, besides the listen address and the loopback names; "
            "any other Host header gets HTTP 421.",
            option="--public-host",
        ),
    )
    schema_dirs: tuple[Path, ...] = field(
        default=(),
        metadata=about("A folder of extra message-kind schemas (a deployment's own kinds).", option="--schemas"),
    )
    static_dir: Path | None = field(
        default=None,
        metadata=about("Serve this folder at / instead of the built-in pages.", option="--static"),
    )
    streams_dir: Path | None = field(
        default=None,
        metadata=about(
            "Folder with connect-streams-min.js, served at /vendor/streams/ (default: the first that has it of "
            "./node_modules/amazon-connect-streams/release, the checkout's node_modules, and the folder "
            "connect-bridge fetch-streams fills)."
        ),
    )
    history_size: int = field(
        default=DEFAULT_HISTORY_SIZE,
        metadata=about(
            "Events kept per agent for clients that reconnect to recover (0: no history, recovery always refused).",
            min=0,
        ),
    )
    history_ttl: float = field(
        default=DEFAULT_HISTORY_TTL,
        metadata=about(
            "Seconds an event stays in its agent's history (with --history-size, the smaller bound wins).",
            min=0,
            min_open=True,
        ),
    )
    history_max_bytes: int = field(
        default=DEFAULT_HISTORY_MAX_BYTES,
        metadata=about(
            "Bytes of events kept in all agents' histories of this node (in-memory broker; Redis keeps "
            "--history-size per agent in Redis): past it the oldest events of the least recently active agents go.",
            min=0,
        ),
    )
    redis_url: str | None = field(
        default=None,
        metadata=about(
            "Scale out over Redis, e.g. redis://127.0.0.1:6379/0 (default: the in-memory broker).", option="--redis"
        ),
    )
    redis_prefix: str = field(default=DEFAULT_PREFIX, metadata=about("Prefix of every Redis key and channel."))
    redis_heartbeat: float = field(
        default=DEFAULT_HEARTBEAT,
        metadata=about("Seconds between this node's Redis heartbeats.", min=0, min_open=True),
    )
    redis_provider_ttl: float = field(
        default=DEFAULT_PROVIDER_TTL,
        metadata=about(
            "Seconds a provider entry outlives its node's last heartbeat (must exceed the heartbeat).",
            min=0,
            min_open=True,
        ),
    )
    redis_retained_ttl: float = field(
        default=DEFAULT_RETAINED_TTL,
        metadata=about("Seconds retained state is kept in Redis after its last write (0: forever).", min=0),
    )
    redis_reconnect_max: float = field(
        default=DEFAULT_RECONNECT_MAX,
        metadata=about("Longest wait in seconds between Redis reconnect attempts.", min=0, min_open=True),
    )
    redis_timeout: float = field(
        default=DEFAULT_TIMEOUT,
        metadata=about("Redis connect and command timeout in seconds.", min=0, min_open=True),
    )
    max_send_buffer: int = field(
        default=1024 * 1024,
        metadata=about("Unsent bytes per client before it is dropped as too slow (4008).", min=1),
    )
    rate_limit: float = field(
        default=DEFAULT_LIMITS.rate, metadata=about("Sustained frames per second per connection.", min=0, min_open=True)
    )
    rate_burst: int = field(default=DEFAULT_LIMITS.burst, metadata=about("Burst size of the per-connection rate limit.", min=1))
    flood_close_after: int = field(
        default=DEFAULT_LIMITS.flood_close_after,
        metadata=about("Frames refused by the rate limit in a row before the connection is closed (1008).", min=1),
    )
    max_connections_per_agent: int = field(
        default=DEFAULT_LIMITS.connections_per_agent,
        metadata=about("Most app connections one agent may have on this node; its provider always gets in.", min=1),
    )
    max_pending_hellos: int = field(
        default=1000,
        metadata=about(
            "Connections that have not said Hello yet, in total; more are answered HTTP 503 at the handshake.", min=1
        ),
    )
    max_pending_hellos_per_address: int = field(
        default=100,
        metadata=about(
            "Connections from one remote address that have not said Hello yet; more get HTTP 503 "
            "(behind a reverse proxy every client shares its address: raise it there).",
            min=1,
        ),
    )
    max_unread_file_bytes: int = field(
        default=32 * 1024 * 1024,
        metadata=about(
            "Bytes of served files that clients have not read yet, in total; more file requests get HTTP 503.", min=1
        ),
    )
    max_unread_file_bytes_per_address: int = field(
        default=4 * 1024 * 1024,
        metadata=about(
            "Bytes of served files one remote address has not read yet; more get HTTP 503 "
            "(must exceed the largest file, 730 KB for the Streams bundle).",
            min=1,
        ),
    )
    compression: bool = field(
        default=False, metadata=about("Enable permessage-deflate (off by default: it costs CPU on every frame).")
    )
    metrics_public: bool = field(
        default=False,
        metadata=about("Answer /healthz and /metrics from any address (default: loopback clients only, 403 otherwise)."),
    )
    log_format: Literal["text", "json"] = field(
        default="text",
        metadata=about("Log lines as text (key=value fields at the end) or as one JSON object per line."),
    )
    loop: LoopChoice = field(
        default=DEFAULT_LOOP,
        metadata=about(
            "Event loop to serve on: uvloop (pip install 'connect-bridge[uvloop]'), asyncio's own, or auto "
            "(uvloop when installed, else asyncio). Code that embeds the hub runs it on its own loop."
        ),
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            problem = out_of_bounds(getattr(self, spec.name), spec.metadata)
            if problem:
                raise ValueError(f"{spec.name} {problem}")
        if (self.certfile is None) != (self.keyfile is None):
            raise ValueError("certfile and keyfile go together (--certfile, --keyfile): give both for TLS, or neither")
        try:
            self.redis_settings()  # their own rules: the provider TTL above the heartbeat, ...
        except ValueError as exc:
            raise ValueError(f"the Redis settings do not fit together: {exc}") from None

    @property
    def tls(self) -> bool:
        """Whether the hub serves ``wss://`` and ``https://`` (a certificate and key are set)."""
        return self.certfile is not None

    def redis_settings(self) -> RedisSettings:
        """The Redis broker's settings; ``ValueError`` when they do not fit together."""
        return RedisSettings(
            prefix=self.redis_prefix,
            heartbeat=self.redis_heartbeat,
            provider_ttl=self.redis_provider_ttl,
            retained_ttl=self.redis_retained_ttl,
            reconnect_max=self.redis_reconnect_max,
            timeout=self.redis_timeout,
            history_size=self.history_size,
            history_ttl=self.history_ttl,
        )


def out_of_bounds(value: Any, metadata: Mapping[str, Any]) -> str | None:
    """What is wrong with a number against a field's bounds, or None."""
    low, high = metadata.get("min"), metadata.get("max")
    if low is not None and (value <= low if metadata.get("min_open") else value < low):
        return f"must be {'above' if metadata.get('min_open') else 'at least'} {low:g}, not {value!r}"
    if high is not None and value > high:
        return f"must be at most {high:g}, not {value!r}"
    return None


#: The defaults, for commands that repeat one (``demo --port``, ``send --url``).
DEFAULTS = HubConfig()


def make_broker(config: HubConfig) -> Broker:
    """The broker a node uses: in memory, or over Redis when ``redis_url`` is set."""
    if config.redis_url is None:
        return MemoryBroker(
            history_size=config.history_size,
            history_ttl=config.history_ttl,
            history_max_bytes=config.history_max_bytes,
        )
    from bridge.brokers.redis import RedisBroker  # imported only when asked for

    return RedisBroker(config.redis_url, settings=config.redis_settings())


class TLSFileError(ValueError):
    """The certificate or key cannot be used; the message names the file and what to do."""


class _Encrypted(Exception):
    """Raised by the passphrase callback: the hub never asks for a passphrase."""


def _no_passphrase() -> bytes:
    raise _Encrypted


#: What a PEM certificate and a PEM private key (PKCS#8, PKCS#1 or SEC 1) start with.
_PEM_CERTIFICATE = re.compile(rb"-----BEGIN (?:TRUSTED )?CERTIFICATE-----")
_PEM_PRIVATE_KEY = re.compile(rb"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----")


def make_ssl_context(config: HubConfig) -> ssl.SSLContext | None:
    """The server's TLS context from ``certfile`` and ``keyfile``, or None without them.

    Raises :class:`TLSFileError` with one line to act on (which file, what is
    wrong with it) instead of OpenSSL's codes: the files are checked for their
    PEM blocks first, then loaded. An encrypted key is refused rather than
    prompting for its passphrase on the terminal, which a service has not got.
    """
    if config.certfile is None or config.keyfile is None:
        return None
    for path, pattern, what in (
        (config.certfile, _PEM_CERTIFICATE, "PEM certificate (-----BEGIN CERTIFICATE-----)"),
        (config.keyfile, _PEM_PRIVATE_KEY, "PEM private key (-----BEGIN PRIVATE KEY-----)"),
    ):
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise TLSFileError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not pattern.search(content):
            raise TLSFileError(f"{path} holds no {what}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.certfile, config.keyfile, password=_no_passphrase)
    except _Encrypted:
        raise TLSFileError(
            f"{config.keyfile} is encrypted with a passphrase; give the key unencrypted "
            "(e.g. openssl pkey -in KEY -out KEY.plain), readable by the hub's user only"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TLSFileError(f"{config.keyfile} is not the private key of {config.certfile}") from None
        raise TLSFileError(
            f"cannot use {config.certfile} with {config.keyfile}: {exc.reason or exc} (OpenSSL)"
        ) from None
    return context
