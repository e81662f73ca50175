"""Shared helpers for the benchmark scripts: processes, CPU pinning, a lean load client, stats.

Nothing here is imported by the hub. The scripts print figures; they are not
tests and assert nothing about speed.

Layout of every run on this 2-core machine:

* core 0: the server under test (the hub, or the bare baseline), one process;
* core 1: the load generator (worker processes forked from the script) and
  the script itself, which mostly sleeps.

The load generator does not use the ``websockets`` client: it speaks the
WebSocket framing itself on a plain ``asyncio.Protocol`` (:class:`WSConn`),
sends pre-built frames with an all-zero mask key (valid per RFC 6455: the
server still runs its unmasking code) and only walks frame headers of what it
receives unless a payload must be read. That keeps the client several times
cheaper per frame than the server, so the server is what saturates; every
script prints the CPU share of the server and of the load processes over each
measured window so that this can be checked.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as _dt
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# --- the contract's seed envelopes ----------------------------------------------------

#: ../shared/protocol/samples beside the checkout (as tests/helpers.py), or $BRIDGE_SAMPLES.
SAMPLES = Path(os.environ.get("BRIDGE_SAMPLES", ROOT.parent / "shared" / "protocol" / "samples"))

# Verbatim copies of the two seed files, used only when the samples folder is absent.
_SEED_EVENT_FALLBACK = {
    "channel": "Amazon", "topic": "Agent", "subtopic": "SetAgentState",
    "message": {
        "rules": {
            "ButtonStates": {
                "items": {"NotReady": "Enable", "Ready": "Enable", "make_call": "Enable",
                          "mute": "Enable", "unmute": "Hide"},
                "count": 5,
            },
            "ResponseActual": {"agentStateARN": None, "type": "not_routable", "name": "Not Ready Break",
                               "startTimestamp": "2020-04-09T13:31:21.183Z"},
        },
        "data": {"muted": False, "name": "Agent 1", "extension": "", "loginName": "agent1",
                 "softphoneEnabled": True, "state": "Not_Ready", "reasonCode": {"id": "Not Ready Break"},
                 "stateChangeTime": "2020-04-09T13:31:21.183Z", "type": "not_routable"},
        "event": "Not Ready Break",
        "source": "event",
    },
}
_SEED_REQUEST_FALLBACK = {"subtopic": "SetNotReady", "channel": "Amazon", "topic": "Agent",
                          "source": "myapp", "data": {"ReasonCodeId": "Not Ready"}}


def seed_event() -> dict[str, Any]:
    path = SAMPLES / "seed-SetAgentState.event.json"
    return orjson.loads(path.read_bytes()) if path.is_file() else json.loads(json.dumps(_SEED_EVENT_FALLBACK))


def seed_request() -> dict[str, Any]:
    path = SAMPLES / "seed-SetNotReady.request.json"
    return orjson.loads(path.read_bytes()) if path.is_file() else dict(_SEED_REQUEST_FALLBACK)


def hello(role: str, agent: str) -> bytes:
    """An open-mode Hello."""
    return orjson.dumps({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "bench",
                         "data": {"role": role, "agent": agent}})


#: The send time rides in ``message.data.name`` (a free string in the schema): "ts:" + 19 digits.
TS_MARKER = b'"name":"ts:'
TS_DIGITS = 19


def timestamped_event_template() -> tuple[bytes, bytes]:
    """(prefix, suffix) of the seed SetAgentState with ``message.data.name`` = "ts:<19 digits>"."""
    event = seed_event()
    event["message"]["data"]["name"] = "ts:" + "#" * TS_DIGITS
    raw = orjson.dumps(event)
    prefix, suffix = raw.split(b"#" * TS_DIGITS)
    assert prefix.endswith(TS_MARKER)
    return prefix, suffix


def timestamped_event(ns: int, template: tuple[bytes, bytes]) -> bytes:
    return template[0] + b"%019d" % ns + template[1]


# --- machine, pinning, processes -------------------------------------------------------

def cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def default_cores() -> tuple[int | None, int | None]:
    """(server core, load core): 0 and 1 when there are two or more."""
    available = cores()
    if len(available) >= 2:
        return available[0], available[1]
    return None, None


SERVER_CORE, LOAD_CORE = default_cores()
#: CPUs this process could use before any pinning.
USABLE_CPUS = len(cores())


def pin(core: int | None) -> None:
    if core is not None:
        os.sched_setaffinity(0, {core})


#: Niceness of every process a script starts (server and load): set by ``--nice``.
NICE = 0


def set_nice(value: int) -> None:
    """Lower (or raise) this process's niceness; ignored without the right to."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, value)


def raise_nofile(want: int = 65536) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_info() -> dict[str, Any]:
    import websockets

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": USABLE_CPUS,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "websockets": websockets.__version__,
        "orjson": orjson.__version__,
        "platform": platform.platform(),
        "server_core": SERVER_CORE,
        "load_core": LOAD_CORE,
        "loadavg_at_start": os.getloadavg(),
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    with contextlib.suppress(Exception):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bridge"], cwd=ROOT, capture_output=True,
                               text=True, timeout=5, check=False).stdout.strip()
        info["git"] = head + (" (bridge/ has uncommitted changes)" if dirty else "")
    if HUB_PYTHONPATH:
        info["hub_pythonpath"] = HUB_PYTHONPATH
    if HUB_ARGS:
        info["hub_args"] = HUB_ARGS
    with contextlib.suppress(Exception):
        import jsonschema_rs

        info["jsonschema_rs"] = getattr(jsonschema_rs, "__version__", "?")
    return info


def print_machine(info: dict[str, Any]) -> None:
    print(f"machine: {info['cpu_count']} CPUs ({info['cpus_usable']} usable), Python {info['python']}, "
          f"websockets {info['websockets']}, orjson {info['orjson']}; server on core {info['server_core']}, "
          f"load on core {info['load_core']}; loadavg {', '.join(f'{x:.2f}' for x in info['loadavg_at_start'])}; "
          f"hub at {info.get('git', '?')}" + (f" from {info['hub_pythonpath']}" if info.get("hub_pythonpath") else "")
          + (f"; hub flags {shlex.join(info['hub_args'])}" if info.get("hub_args") else ""),
          flush=True)


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_sched_ns(pid: int, tid: str | None = None) -> tuple[int, int]:
    """(ns on a CPU, ns runnable but waiting for one) of a process's main thread, or of its thread ``tid``."""
    path = f"/proc/{pid}/schedstat" if tid is None else f"/proc/{pid}/task/{tid}/schedstat"
    try:
        with open(path, "rb") as f:
            running, waiting, _ = f.read().split()
        return int(running), int(waiting)
    except (OSError, ValueError):
        return 0, 0


def proc_rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm", "rb") as f:
        return int(f.read().split()[1]) * PAGE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _preexec(core: int | None) -> Callable[[], None]:
    def run() -> None:
        os.setsid()  # its own process group: stopped by pid, never by name
        pin(core)
        set_nice(NICE)
        raise_nofile()
    return run


class Server:
    """A server process under test (hub or baseline), pinned to one core."""

    def __init__(self, label: str, argv: list[str], port: int, *, core: int | None, log: Path,
                 health_path: str | None, env_path: str | None = None) -> None:
        self.label = label
        self.port = port
        self.log_path = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")  # noqa: SIM115 - open for the process's lifetime
        env = dict(os.environ)
        if env_path:
            env["PYTHONPATH"] = env_path + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_preexec(core),
                                     cwd=env_path or ROOT, env=env)
        self._wait_ready(health_path)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, health_path: str | None, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if health_path is not None:
                    with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{health_path}", timeout=1) as r:
                        if r.status == 200:
                            return
                else:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.label} did not come up on port {self.port}; see {self.log_path}")

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def rss(self) -> int:
        return proc_rss_bytes(self.pid)

    def stop(self, timeout: float = 8.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


#: Benchmarks measure routing, not the flood limits: the per-connection rate limit
#: (default 50 frames/s), the per-agent connection cap (default 200) and the caps on connections
#: still to say Hello (the load generator opens thousands at once from one address) are lifted.
HUB_BENCH_FLAGS = ["--rate-limit", "1e9", "--rate-burst", "1000000000", "--max-connections-per-agent", "100000",
                   "--max-pending-hellos", "100000", "--max-pending-hellos-per-address", "100000"]


def start_hub(label: str = "hub", *, port: int | None = None, core: int | None = SERVER_CORE,
              extra: Sequence[str] = (), log_name: str = "hub") -> Server:
    port = port or free_port()
    exe = Path(PY).with_name("connect-bridge")
    argv = [str(exe)] if exe.exists() and not HUB_PYTHONPATH else [PY, "-m", "bridge"]
    argv += ["serve", "--open", "--port", str(port), *HUB_BENCH_FLAGS, *extra, *HUB_ARGS]
    return Server(label, argv, port, core=core, log=RESULTS / "logs" / f"{log_name}.log", health_path="/healthz",
                  env_path=HUB_PYTHONPATH)


#: $BENCH_HUB_PYTHONPATH: run the hub from another copy of the ``bridge`` package (e.g. a patched
#: copy in /tmp, to measure a change without touching the work tree).
HUB_PYTHONPATH = os.environ.get("BENCH_HUB_PYTHONPATH") or None
#: $BENCH_HUB_ARGS: more ``serve`` flags for every hub a benchmark starts (e.g. ``--loop uvloop``),
#: split as the shell would and put last, so that they win over the fixed ones.
HUB_ARGS = shlex.split(os.environ.get("BENCH_HUB_ARGS", ""))


def start_baseline(kind: str, *, port: int | None = None, core: int | None = SERVER_CORE,
                   log_name: str | None = None) -> Server:
    port = port or free_port()
    argv = [PY, str(HERE / "baseline_servers.py"), kind, "--port", str(port)]
    return Server(f"bare-{kind}", argv, port, core=core,
                  log=RESULTS / "logs" / f"{log_name or 'bare-' + kind}.log", health_path=None)


def hub_health(server: Server) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=2) as r:
        return dict(orjson.loads(r.read()))


REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_problem() -> str | None:
    """Why the Redis runs cannot happen here, or ``None`` when they can."""
    try:
        import bridge.brokers.redis.broker  # noqa: F401
    except ImportError as exc:
        return f"bridge.brokers.redis cannot be imported ({exc})"
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except Exception as exc:
        return f"no Redis at {REDIS_URL} ({exc!r})"
    return None


def redis_cleanup(prefix: str) -> int:
    """Delete every key a run left under its own prefix."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


def start_servers(target: str, *, log_name: str, bare_kind: str = "broadcast",
                  redis_prefix: str | None = None) -> list[Server]:
    """The servers of one run: ``hub`` (one node), ``bare`` (the baseline), or ``redis2``
    (two hub nodes sharing Redis under ``redis_prefix``, both on the server core)."""
    if target == "hub":
        return [start_hub(log_name=f"{log_name}-hub")]
    if target == "bare":
        return [start_baseline(bare_kind, log_name=f"{log_name}-bare")]
    if target == "redis2":
        assert redis_prefix is not None
        extra = ["--redis", REDIS_URL, "--redis-prefix", redis_prefix]
        servers: list[Server] = []
        try:
            for name in ("a", "b"):
                servers.append(start_hub(f"hub-{name}", extra=extra, log_name=f"{log_name}-redis-{name}"))
            deadline = time.monotonic() + 10
            while not all(hub_health(s).get("status") == "ok" for s in servers):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"hub nodes not healthy over Redis: {[hub_health(s) for s in servers]}")
                time.sleep(0.1)
        except BaseException:
            for server in servers:
                server.stop()
            raise
        return servers
    raise ValueError(target)


def redis_server_pids() -> list[int]:
    """The local redis-server's pid (read only, to report its CPU)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/comm") as f:
                if f.read().strip() == "redis-server":
                    pids.append(int(entry))
    return pids


# --- a lean WebSocket client ---------------------------------------------------------

_ZERO_MASK = b"\x00\x00\x00\x00"


def client_frame(payload: bytes, opcode: int = 1) -> bytes:
    """One client frame (FIN set) masked with a zero key: the payload bytes travel as they are."""
    n = len(payload)
    first = bytes([0x80 | opcode])
    if n < 126:
        header = first + bytes([0x80 | n])
    elif n < 65536:
        header = first + bytes([0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = first + bytes([0x80 | 127]) + n.to_bytes(8, "big")
    return header + _ZERO_MASK + payload


class Tally:
    """What one load process counts, mirrored into a shared array slot the script reads."""

    __slots__ = ("closed", "frames", "shared", "slot")

    def __init__(self, shared: Any = None, slot: int = 0) -> None:
        self.frames = 0
        self.closed = 0
        self.shared = shared
        self.slot = slot


class WSConn(asyncio.Protocol):
    """One client connection: handshake, zero-mask sends, header-walking receives.

    ``on_text(conn, payload, now_ns)`` is called for each text frame when set;
    otherwise frames are only counted (their payload is never sliced).
    """

    def __init__(self, host: str, port: int, tally: Tally, on_text: Callable[[WSConn, bytes, int], None] | None = None,
                 path: str = "/ws", offer_deflate: bool = False) -> None:
        loop = asyncio.get_running_loop()
        self.host, self.port, self.path = host, port, path
        self.offer_deflate = offer_deflate
        self.tally = tally
        self.on_text = on_text
        self.opened: asyncio.Future[None] = loop.create_future()
        self.first_text: asyncio.Future[bytes] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.buf = b""
        self.closed = False
        self.writable = asyncio.Event()
        self.writable.set()
        self.user: Any = None  # per-connection state of the benchmark

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write((
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            + ("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if self.offer_deflate else "")
            + "\r\n"
            ).encode()
        )

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        if not self.upgraded:
            self.buf += data
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self.buf[:end], self.buf[end + 4:]
            self.buf = b""
            if not head.startswith(b"HTTP/1.1 101"):
                if not self.opened.done():
                    self.opened.set_exception(ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace")))
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            self.opened.set_result(None)
            if not data:
                return
        buf = self.buf + data if self.buf else data
        n = len(buf)
        pos = 0
        count = 0
        on_text = self.on_text
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            if length < 126:
                start = pos + 2
            elif length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            else:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2:pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1:
                count += 1
                if on_text is not None:
                    on_text(self, buf[start:end], now)
                elif not self.first_text.done():
                    self.first_text.set_result(buf[start:end])
            elif opcode == 9:  # ping: answer with pong
                self.transport.write(client_frame(buf[start:end], 0xA))  # type: ignore[union-attr]
            elif opcode == 8:  # close: echo it and let the server drop the TCP connection
                self.transport.write(client_frame(buf[start:start + 2], 0x8))  # type: ignore[union-attr]
            pos = end
        self.buf = buf[pos:] if pos < n else b""
        if count:
            tally = self.tally
            tally.frames += count
            if tally.shared is not None:
                tally.shared[tally.slot] = tally.frames

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.tally.closed += 1
        self.writable.set()
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost during handshake: {exc}"))
        if not self.first_text.done():
            self.first_text.set_exception(ConnectionError(f"connection lost before the first frame: {exc}"))

    # sending
    def send(self, payload: bytes) -> None:
        self.transport.write(client_frame(payload))  # type: ignore[union-attr]

    def send_raw(self, frame: bytes) -> None:
        self.transport.write(frame)  # type: ignore[union-attr]

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def set_lowat(self, nbytes: int) -> None:
        """SO_RCVLOWAT: the socket reads as ready only once ``nbytes`` are waiting, so one read
        takes many frames. The server's work is the same (its writes land in the kernel
        buffers either way); the load process spends far less per frame."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, max(1, nbytes))


async def open_clients(host: str, port: int, roles_agents: Sequence[tuple[str, str]], tally: Tally,
                       *, batch: int = 50, on_text: Any = None, offer_deflate: bool = False) -> list[WSConn]:
    """Open one client per (role, agent), send its Hello, wait for its first frame (Welcome).

    Opens ``batch`` at a time: the server's listen backlog is finite.
    """
    loop = asyncio.get_running_loop()
    conns: list[WSConn] = []

    async def one(role: str, agent: str) -> WSConn:
        _, conn = await loop.create_connection(
            lambda: WSConn(host, port, tally, on_text, offer_deflate=offer_deflate), host, port)
        await asyncio.wait_for(conn.opened, 30)
        conn.send(hello(role, agent))
        await asyncio.wait_for(conn.first_text, 30)
        return conn

    for i in range(0, len(roles_agents), batch):
        chunk = roles_agents[i:i + batch]
        conns += await asyncio.gather(*(one(role, agent) for role, agent in chunk))
    return conns


# --- load processes ------------------------------------------------------------------


class Handler:
    """Base of a load process's command handler: each ``async`` method is a command."""

    conns: list[WSConn]

    def __init__(self) -> None:
        self.conns = []

    async def shutdown(self) -> None:
        for conn in self.conns:
            conn.close()
        await asyncio.sleep(0.05)

    async def cpu(self) -> float:
        t = os.times()
        return t.user + t.system


def _worker_main(conn: Any, factory: Callable[..., Handler], args: tuple[Any, ...], core: int | None) -> None:
    pin(core)
    set_nice(NICE)
    raise_nofile()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the script handles ^C and stops us
    asyncio.run(_serve_commands(conn, factory(*args)))


async def _serve_commands(conn: Any, handler: Handler) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

    def readable() -> None:
        try:
            queue.put_nowait(conn.recv())
        except (EOFError, OSError):
            loop.remove_reader(conn.fileno())
            queue.put_nowait(("shutdown", ()))

    loop.add_reader(conn.fileno(), readable)
    while True:
        method, args = await queue.get()
        try:
            value = await getattr(handler, method)(*args)
            reply: tuple[bool, Any] = (True, value)
        except Exception:
            reply = (False, traceback.format_exc())
        with contextlib.suppress(OSError):
            conn.send(reply)
        if method == "shutdown":
            return


class Worker:
    """A load-generator process (forked, pinned to the load core) driven by commands."""

    def __init__(self, factory: Callable[..., Handler], *args: Any, core: int | None = LOAD_CORE) -> None:
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, factory, args, core), daemon=True)
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def send(self, method: str, *args: Any) -> None:
        self.conn.send((method, args))

    def result(self, method: str = "?", timeout: float = 120.0) -> Any:
        if not self.conn.poll(timeout):
            raise TimeoutError(f"load process {self.pid}: {method} took over {timeout:g} s")
        ok, value = self.conn.recv()
        if not ok:
            raise RuntimeError(f"load process {self.pid}: {method} failed:\n{value}")
        return value

    def call(self, method: str, *args: Any, timeout: float = 120.0) -> Any:
        self.send(method, *args)
        return self.result(method, timeout)

    def cpu(self) -> float:
        return proc_cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(Exception):
                self.call("shutdown", timeout=10)
            self.proc.join(5)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(5)
        self.conn.close()


def call_all(workers: Iterable[Worker], method: str, *args: Any, timeout: float = 120.0) -> list[Any]:
    """Send one command to several load processes at once, then gather their answers."""
    workers = list(workers)
    for w in workers:
        w.send(method, *args)
    return [w.result(method, timeout) for w in workers]


def core_busy_ticks() -> dict[int, tuple[int, int]]:
    """Per core: (busy ticks, all ticks) from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                ticks = [int(v) for v in values]
                idle = ticks[3] + ticks[4]
                out[int(name[3:])] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return out


class CpuWindow:
    """CPU used by the server and by the load processes over a wall-clock window, and how busy the
    server's core was in all (busy well above the server's share: other work took the core)."""

    def __init__(self, server_pid: int | Sequence[int], load_pids: Sequence[int],
                 server_core: int | None = SERVER_CORE, other_pids: Sequence[int] = ()) -> None:
        self.server_pids = [server_pid] if isinstance(server_pid, int) else list(server_pid)
        self.load_pids = list(load_pids)
        self.other_pids = list(other_pids)
        self.o0 = sum(proc_cpu_seconds(p) for p in self.other_pids)
        self.q0 = {p: proc_sched_ns(p) for p in self.server_pids + self.load_pids}
        self.server_core = server_core
        self.t0 = time.monotonic()
        self.s0 = sum(proc_cpu_seconds(p) for p in self.server_pids)
        self.l0 = sum(proc_cpu_seconds(p) for p in self.load_pids)
        self.k0 = core_busy_ticks()

    def end(self) -> dict[str, float]:
        wall = time.monotonic() - self.t0
        server = sum(proc_cpu_seconds(p) for p in self.server_pids) - self.s0
        load = sum(proc_cpu_seconds(p) for p in self.load_pids) - self.l0
        k1 = core_busy_ticks()
        busy = float("nan")
        if self.server_core in k1 and self.server_core in self.k0:
            b0, a0 = self.k0[self.server_core]
            b1, a1 = k1[self.server_core]
            busy = (b1 - b0) / max(a1 - a0, 1)
        other = sum(proc_cpu_seconds(p) for p in self.other_pids) - self.o0

        def runnable(pids: list[int]) -> float:
            # Share of the window a process was running or ready to run: 100% means it never
            # waited for input, i.e. it was the bottleneck (with several, the busiest one).
            shares = []
            for p in pids:
                r1, w1 = proc_sched_ns(p)
                r0, w0 = self.q0[p]
                shares.append((r1 - r0 + w1 - w0) / 1e9 / wall)
            return max(shares) if shares else float("nan")

        return {"wall": wall, "server_cpu": server / wall, "load_cpu": load / wall, "server_core_busy": busy,
                "other_cpu": other / wall, "server_runnable": runnable(self.server_pids),
                "load_runnable": runnable(self.load_pids)}


# --- stats and output -------------------------------------------------------------------

def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def median(values: Iterable[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


@dataclass
class Goal:
    """``value`` compared with ``limit``: ``>=`` (at least) or ``<=`` (at most)."""

    op: str
    limit: float

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.limit if self.op == ">=" else value <= self.limit

    def text(self, value: float) -> str:
        return f"{'met' if self.met(value) else 'MISSED'} ({self.op} {self.limit:g})"


def save_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"{name}-{stamp}.json"
    blob = json.dumps(data, indent=2, default=str)
    path.write_text(blob)
    (RESULTS / f"{name}-latest.json").write_text(blob)
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            if math.isnan(v):
                return "n/a"
            if abs(v) >= 1000:
                return f"{v:,.0f}"
            if abs(v) >= 10:
                return f"{v:.1f}"
            return f"{v:.2f}"
        return str(v)

    text_rows = [[cell(v) for v in row] for row in rows]
    numeric = [all(isinstance(row[i], (int, float)) for row in rows) for i in range(len(headers))]
    widths = [max(len(h), *(len(r[i]) for r in text_rows)) if text_rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric, strict=True)).rstrip()
            for r in text_rows]
    return "\n".join(out)


def install_deadline(seconds: float, cleanup: Callable[[], None]) -> None:
    """Hard bound on a script's run time: past it, stop every process it started and exit."""

    def expired(signum: int, frame: Any) -> None:
        print(f"\n!! deadline of {seconds:g} s passed: stopping", file=sys.stderr, flush=True)
        with contextlib.suppress(Exception):
            cleanup()
        os._exit(3)

    signal.signal(signal.SIGALRM, expired)
    signal.alarm(int(seconds))


class Cleanup:
    """Everything a script started, stopped in reverse order on exit or deadline."""

    def __init__(self) -> None:
        self.items: list[Any] = []

    def add(self, item: Any) -> Any:
        self.items.append(item)
        return item

    def remove(self, item: Any) -> None:
        with contextlib.suppress(ValueError):
            self.items.remove(item)

    def stop(self, *items: Any) -> None:
        """Stop these now (a run is over) and forget them."""
        for item in items:
            item.stop()
            self.remove(item)

    def __call__(self) -> None:
        while self.items:
            item = self.items.pop()
            with contextlib.suppress(Exception):
                item.stop()


def wait_for_count(read: Callable[[], int], target: int, *, limit: float = 20.0) -> int:
    """Wait until a counter reaches ``target`` (everything sent was delivered), at most ``limit`` s."""
    deadline = time.monotonic() + limit
    value = read()
    while value < target and time.monotonic() < deadline:
        time.sleep(0.02)
        value = read()
    return value


def wait_quiet(read: Callable[[], int], *, quiet: float = 0.3, limit: float = 10.0) -> int:
    """Wait until a counter stops moving for ``quiet`` seconds (buffers drained)."""
    deadline = time.monotonic() + limit
    last = read()
    still_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = read()
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
    return last


def common_args(parser: Any) -> None:
    parser.add_argument("--quick", action="store_true", help="Fewer and shorter repetitions (smoke run).")
    parser.add_argument("--reps", type=int, default=None, help="Repetitions per configuration (default 3, quick 2).")
    parser.add_argument("--timeout", type=float, default=600, help="Hard limit on the whole script, seconds.")
    parser.add_argument("--nice", type=int, default=-5,
                        help="Niceness of the server and load processes (default -5 when allowed: other work "
                             "on a shared machine disturbs the figures less; 0 to leave it).")


def apply_common(args: Any) -> None:
    global NICE
    NICE = args.nice


def begin(args: Any, *, nofile: int = 65536) -> tuple[Cleanup, dict[str, Any]]:
    """What every load-generating script does first: apply the common options, pin this
    process to the load core, raise the open-file limit, arm the deadline, print the machine."""
    apply_common(args)
    pin(LOAD_CORE)
    open_files = raise_nofile(nofile)
    cleanup = Cleanup()
    install_deadline(args.timeout, cleanup)
    info = machine_info()
    info["open_files"] = open_files
    print_machine(info)
    return cleanup, info
