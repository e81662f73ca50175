"""The hub's one reach into ``websockets`` internals (bridge/hub/wire.py), checked against the installed release.

If a ``websockets`` release changes what the fan-out relies on, these fail
loudly; then update bridge/hub/wire.py and the version bound in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import gc
from importlib.metadata import version
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.protocol import State

from bridge.hub import wire


def test_the_installed_websockets_is_a_checked_release() -> None:
    major = int(version("websockets").split(".")[0])
    assert major in wire.CHECKED_MAJORS, (
        f"websockets {version('websockets')} is outside the releases bridge/hub/wire.py was checked with"
    )


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_frames_written_directly_arrive_whole_then_the_queued_close(compression: str | None) -> None:
    payloads = [b'{"n":1}', b'{"n":2}' * 50, b'{"n":2}' * 50, "é".encode() * 70000]
    checked: list[bool] = []
    outbox = wire.Outbox()

    async def handler(connection: ServerConnection) -> None:
        for payload in payloads:
            checked.append(outbox.write_text(connection, payload, 1 << 30))
        # Past the buffer bound nothing is written, and the caller is told: queued bytes count.
        checked.append(outbox.write_text(connection, b'{"dropped":true}', outbox.unsent(connection) - 1))
        outbox.flush(connection)
        wire.queue_close(connection, 4008, "too slow; reconnect")
        # Once closing, frames are taken and dropped.
        checked.append(outbox.write_text(connection, b'{"late":true}', 1 << 30))
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=compression, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=compression, max_size=None) as client:
            received = [await asyncio.wait_for(client.recv(), 5) for _ in payloads]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(client.recv(), 5)
    assert received == [p.decode() for p in payloads]
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
    assert checked == [True] * len(payloads) + [False, True]


async def test_the_frames_of_one_loop_turn_leave_in_one_write_each_its_own_frame() -> None:
    outbox = wire.Outbox()
    writes: list[int] = []
    data_writes: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        transport = connection.transport
        write = transport.write

        def counted(data: bytes | bytearray | memoryview) -> None:
            writes.append(len(data))
            write(data)

        transport.write = counted  # type: ignore[method-assign]
        for n in range(20):  # one turn: nothing awaited in between
            outbox.write_text(connection, b'{"n":%d}' % n, 1 << 30)
        await asyncio.sleep(0)  # the turn ends: the queued frames leave
        for n in range(20, 25):
            outbox.write_text(connection, b'{"n":%d}' % n, 1 << 30)
        await asyncio.sleep(0)
        data_writes.extend(writes)  # before the client's close is answered
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as client:
            received = [await asyncio.wait_for(client.recv(), 5) for _ in range(25)]
    # Each envelope is still its own WebSocket frame (one message each), in order...
    assert received == [f'{{"n":{n}}}' for n in range(25)]
    # ...and the 20 frames of the first turn went out in one write, the 5 of the next in another.
    assert len(data_writes) == 2


async def test_frames_queued_for_a_connection_the_client_closed_are_dropped() -> None:
    outbox = wire.Outbox()
    done = asyncio.Event()
    outcome: list[int] = []

    async def handler(connection: ServerConnection) -> None:
        with pytest.raises(websockets.ConnectionClosed):
            await connection.recv()  # the client's close arrives; websockets answers it
        outbox.write_text(connection, b'{"late":true}', 1 << 30)
        outcome.append(outbox.unsent(connection))
        outbox.flush_all()  # nothing is written after the close frame, and nothing raises
        done.set()

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None):
            pass
        await asyncio.wait_for(done.wait(), 5)
    assert outcome == [0]


def test_the_frame_cache_serializes_once_per_payload() -> None:
    cache = wire.FrameCache()
    payload = b'{"x":1}'
    first = cache.text(payload)
    assert cache.text(payload) is first
    assert cache.text(b'{"x":2}') is not first


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_the_hubs_text_frame_is_the_librarys_byte_for_byte(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    assert wire.text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


async def _budgeted_server(handler: Any) -> Any:
    return serve(handler, "127.0.0.1", 0, compression=None, max_queue=32,
                 create_connection=wire.BudgetedConnection)


async def test_a_burst_past_the_read_queue_and_fragmented_messages_arrive_whole_and_in_order() -> None:
    """The frame queue the hub swaps into websockets (wire.FrameQueue) behaves as its deque did."""
    got: list[str] = []
    kinds: list[type] = []

    async def handler(connection: ServerConnection) -> None:
        kinds.append(type(connection.recv_messages.frames.queue))
        for _ in range(200 + 2):
            got.append(await connection.recv())

    async with await _budgeted_server(handler) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as client:
            # 200 frames at once: more than max_queue, so reading pauses and resumes.
            await asyncio.gather(*(client.send(f'{{"n":{n}}}') for n in range(200)))
            await client.send(["frag", "mented", " one"])  # fragmented: three frames, one message
            await client.send(iter(["two", "!"]))
            for _ in range(100):
                if len(got) == 202:
                    break
                await asyncio.sleep(0.02)
    assert kinds == [wire.FrameQueue]
    assert got == [f'{{"n":{n}}}' for n in range(200)] + ["fragmented one", "two!"]


async def test_a_send_waiting_for_a_slow_reader_completes_once_it_reads() -> None:
    """websockets' drain waiters (a list in BudgetedConnection) still wake a paused writer."""
    sent = asyncio.Event()

    async def handler(connection: ServerConnection) -> None:
        assert isinstance(connection.drain_waiters, list)
        await connection.send("x" * (32 << 20))  # past the kernel buffers: the send waits for the reader
        sent.set()
        await connection.wait_closed()

    async with await _budgeted_server(handler) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}", compression=None, max_size=None) as client:
            client.transport.pause_reading()  # a client that stops reading
            await asyncio.sleep(0.3)
            assert not sent.is_set()
            client.transport.resume_reading()
            assert len(await asyncio.wait_for(client.recv(), 10)) == 32 << 20
            await asyncio.wait_for(sent.wait(), 10)


async def test_the_handshake_headers_are_not_kept_once_the_client_is_in() -> None:
    """A connection keeps neither its request's nor its response's headers (memory per idle app)."""
    from bridge.hub.config import HubConfig
    from bridge.hub.server import HubServer

    async with HubServer(HubConfig(port=0, open_mode=True)) as hub, connect(hub.url, compression=None) as client:
        await client.send('{"channel":"Bridge","topic":"Session","subtopic":"Hello",'
                          '"source":"t","data":{"agent":"agent1","role":"app"}}')
        await asyncio.wait_for(client.recv(), 5)
        assert hub._server is not None
        (connection,) = list(hub._server.connections)
        assert connection.request is not None and len(connection.request.headers) == 0
        assert connection.response is not None and len(connection.response.headers) == 0


class _FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def get_write_buffer_size(self) -> int:
        return 0

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


class _FakeConnection:
    """Only what the Outbox reads of a connection."""

    def __init__(self) -> None:
        self.protocol = type("P", (), {"state": State.OPEN, "extensions": []})()
        self.transport = _FakeTransport()


async def test_queuing_for_many_connections_leaves_the_garbage_collector_nothing_to_walk() -> None:
    """Per recipient and turn, the outbox keeps no object the cyclic collector tracks: such objects,
    alive until the flush, would be promoted by every collection meanwhile and bring on full
    collections (tens of milliseconds at a thousand apps) mid fan-out."""
    outbox = wire.Outbox()
    connections: list[Any] = [_FakeConnection() for _ in range(500)]
    payloads = [b'{"n":%d}' % n for n in range(3)]
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for connection in connections:
            outbox.write_text(connection, payloads[0], 1 << 20)
            outbox.write_texts(connection, payloads[1:], 1 << 20)
        grown = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert grown < 20, f"{grown} tracked objects for {len(connections)} connections"
    outbox.flush_all()
    assert connections[0].transport.written == [b"".join(wire.text_frame(p) for p in payloads)]
