"""Hub settings: one frozen object, built by the CLI or by code that embeds the hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Everything a hub node needs to know to start.

    The defaults are the documented protocol defaults (docs/protocol.md).
    """

    host: str = "127.0.0.1"
    #: 0 picks a free port (tests); read the bound one from ``HubServer.port``.
    port: int = 8765
    #: HS256 secret for tokens. Required unless ``open_mode``.
    secret: str | None = None
    #: Local demo mode: no tokens, ``Hello`` names the agent.
    open_mode: bool = False
    #: Seconds a provider has to answer a request before REQUEST_TIMEOUT.
    request_timeout: float = 10.0
    #: Seconds a new connection has to send ``Hello``.
    hello_timeout: float = 10.0
    #: Clock leeway in seconds when checking token expiry.
    token_leeway: float = 0.0
    #: Largest accepted frame in bytes; larger ones close the connection with 1009.
    max_frame_size: int = 64 * 1024
    #: Browser origins accepted besides the hub's own; ``"*"`` accepts any.
    allow_origins: tuple[str, ...] = ()
    #: Extra schema folders (a deployment's own message kinds).
    schema_dirs: tuple[Path, ...] = ()
    #: Folder served at ``/`` over HTTP; ``None`` serves the packaged ``static/``.
    static_dir: Path | None = None
    #: Folder holding ``connect-streams-min.js`` (served at ``/vendor/streams/``).
    streams_dir: Path | None = None
    #: Redis URL for scale-out; ``None`` keeps the in-memory broker.
    redis_url: str | None = None
    #: Prefix for every Redis key and channel (several deployments, one Redis).
    redis_prefix: str = "connect-bridge"
    #: Seconds between a node's heartbeats, the provider-entry TTL, and how long
    #: retained state outlives its last update. ``None``: the broker's defaults
    #: (2, 6 and 86400 s, or the BRIDGE_REDIS_* environment; see docs/scaling.md).
    redis_heartbeat: float | None = None
    redis_provider_ttl: float | None = None
    redis_retained_ttl: float | None = None
    #: Outgoing bytes buffered for one client before it is dropped as too slow (4008).
    max_send_buffer: int = 1024 * 1024
    #: Token bucket per connection: sustained frames per second and burst size.
    rate_limit: float = 50.0
    rate_burst: int = 100
    #: Frames refused by the rate limit in a row before the connection is closed (1008).
    flood_close_after: int = 50
    #: Most connections one agent may have on this node (apps and provider).
    max_connections_per_agent: int = 200
    #: permessage-deflate; off by default (it costs CPU on every frame).
    compression: bool = False
