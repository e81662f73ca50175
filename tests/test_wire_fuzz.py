"""Fuzzing that reaches the wire: random frames, fragments, control frames and deep values, over a real socket.

One hub runs for the module in a thread of its own; every example opens a raw
TCP connection, completes the WebSocket handshake, optionally says Hello as
an app or a provider, then sends what hypothesis draws: text and binary
frames, fragments and continuation frames, pings and pongs, deeply nested
JSON, and bytes that are not a frame at all. Whatever happens, the hub must
answer only with protocol frames (every text frame a schema-valid envelope),
close with a code the protocol documents, and keep serving the next client.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.hub.config import HubConfig
from bridge.hub.server import HubServer
from bridge.protocol.catalog import Catalog

from .helpers import hello

CATALOG = Catalog.load()
#: Close codes the hub may send: normal, going away, policy, too big, replaced, too slow.
DOCUMENTED_CLOSES = {1000, 1001, 1002, 1007, 1008, 1009, 4001, 4008}


class HubThread:
    """A hub on its own event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.hub: HubServer | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.hub = HubServer(HubConfig(port=0, open_mode=True, hello_timeout=2, rate_limit=1000, rate_burst=1000))
        self.loop.run_until_complete(self.hub.start())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> HubThread:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def stop(self) -> None:
        assert self.hub is not None
        asyncio.run_coroutine_threadsafe(self.hub.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    @property
    def port(self) -> int:
        assert self.hub is not None
        return self.hub.port


@pytest.fixture(scope="module")
def hub() -> Iterator[HubThread]:
    running = HubThread().start()
    yield running
    running.stop()


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame, masked with a zero key (valid per RFC 6455)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + b"\0\0\0\0" + payload


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    response = b""
    while b"\r\n\r\n" not in response:
        chunk = sock.recv(4096)
        assert chunk, "closed during the handshake"
        response += chunk
    assert response.startswith(b"HTTP/1.1 101"), response
    sock.settimeout(1.0)
    return sock


def read_frames(sock: socket.socket) -> tuple[list[tuple[int, bytes]], int | None]:
    """Every frame the hub sends until it closes or falls silent: (opcode, payload), and the close code."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except (TimeoutError, ConnectionError):
        pass
    frames: list[tuple[int, bytes]] = []
    close_code = None
    while len(data) >= 2:
        opcode, n = data[0] & 0x0F, data[1] & 0x7F
        offset = 2
        if n == 126:
            n, offset = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, offset = struct.unpack("!Q", data[2:10])[0], 10
        if len(data) < offset + n:
            break
        payload = data[offset:offset + n]
        data = data[offset + n:]
        frames.append((opcode, payload))
        if opcode == 0x8 and len(payload) >= 2:
            close_code = struct.unpack("!H", payload[:2])[0]
    return frames, close_code


def nested(levels: int) -> bytes:
    return b'{"channel":"Amazon","topic":"Agent","subtopic":"SetNotReady","source":"f","data":{"ReasonCodeId":' + (
        b"[" * levels + b"]" * levels) + b"}}"


def as_json(value: Any) -> bytes:
    """JSON text of ``value`` (the standard library writes integers of any size, as a client might)."""
    return json.dumps(value).encode()


json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=15,
)
envelopes = st.fixed_dictionaries(
    {"channel": st.sampled_from(["Amazon", "Bridge", "Acme", ""]),
     "topic": st.sampled_from(["Agent", "Session", "Error"]),
     "subtopic": st.sampled_from(["SetNotReady", "SetAgentState", "Hello", "ApiError", "Mute"])},
    optional={"source": json_values, "data": json_values, "message": json_values, "id": json_values,
              "replyTo": json_values},
).map(as_json)
payloads = st.one_of(
    envelopes,
    json_values.map(as_json),
    st.binary(max_size=300),
    st.integers(1, 1500).map(nested),
)
frames_to_send = st.lists(
    st.one_of(
        st.tuples(st.sampled_from([0x1, 0x2]), payloads, st.booleans()),  # text or binary, maybe unfinished
        st.tuples(st.just(0x0), payloads, st.booleans()),  # a continuation, with or without a start
        st.tuples(st.sampled_from([0x9, 0xA]), st.binary(max_size=125), st.just(True)),  # ping, pong
        st.tuples(st.sampled_from([0x3, 0x7, 0xB]), st.binary(max_size=20), st.just(True)),  # reserved opcodes
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(role=st.sampled_from([None, "app", "provider"]), sends=frames_to_send, garbage=st.binary(max_size=40))
def test_whatever_arrives_the_hub_answers_in_protocol_and_keeps_serving(
    hub: HubThread, role: str | None, sends: list[tuple[int, bytes, bool]], garbage: bytes
) -> None:
    sock = connect(hub.port)
    try:
        if role is not None:
            sock.sendall(frame(0x1, hello(role, agent="fuzz").encode()))
        for opcode, payload, fin in sends:
            sock.sendall(frame(opcode, payload, fin=fin))
        if garbage:
            sock.sendall(garbage)
    except ConnectionError:
        pass  # the hub may close early; what it sent is still checked
    frames, close_code = read_frames(sock)
    sock.close()
    for opcode, payload in frames:
        assert opcode in (0x1, 0x8, 0x9, 0xA), opcode
        if opcode == 0x1:
            envelope = orjson.loads(payload)
            assert CATALOG.validate(envelope) is None, envelope
    assert close_code is None or close_code in DOCUMENTED_CLOSES, close_code
    # The hub still serves a well-behaved client.
    check = connect(hub.port)
    check.sendall(frame(0x1, hello("app", agent="fuzz-check").encode()))
    check.settimeout(5)
    welcome = check.recv(65536)
    check.close()
    assert b'"Welcome"' in welcome
