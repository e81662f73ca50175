"""Recovery (issue 14): how long an app takes to get back 1,000 missed events, and what history costs in memory.

Two figures, each on a single node (memory broker) and across two nodes sharing
the Redis at ``$BENCH_REDIS_URL`` (the provider on node A, the recovering app
on node B, so the history is read from Redis):

* **Recovery time**: an app that saw position P reconnects with
  ``recover: P`` after its agent's provider published ``--missed`` events
  (default 1,000, the default history bound). Timed from the Hello sent to the
  last recovered event received. Beside it, in the same run, the time the
  same events take to reach a connected app *live* (the provider sending them
  back to back), as the yardstick: recovery should cost no more than the
  live path it replaces.
* **History memory per agent**: hub RSS after ``--agents`` agents (default
  100) each published ``--missed`` events, against the same with
  ``--history-size 0`` (history off), in fresh processes; the difference per
  agent is what the default bound costs. Redis: ``MEMORY USAGE`` of one
  agent's stream after the same load.

    .venv/bin/python benchmarks/bench_recovery.py            # ~1 min
    .venv/bin/python benchmarks/bench_recovery.py --quick
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c

AGENT = "bench-agent"


def event_frame(n: int) -> str:
    """The seed SetAgentState with ``message.data.name`` = ``event-N``, as a text frame."""
    event = c.seed_event()
    event["message"]["data"]["name"] = f"event-{n}"
    return orjson.dumps(event).decode()


async def join(url: str, role: str, agent: str, recover: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
    """A raw client that said Hello and read its Welcome (and nothing more)."""
    ws = await websockets.connect(url, max_size=None, compression=None)
    data: dict[str, Any] = {"role": role, "agent": agent}
    if recover is not None:
        data["recover"] = recover
    await ws.send(orjson.dumps({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "bench",
                                "data": data}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("subtopic") == "Welcome":
            return ws, frame["message"]
        if frame.get("topic") == "ApiError":
            raise RuntimeError(f"{role} {agent} refused: {frame}")


async def last_position(ws: Any, quiet: float = 0.3) -> dict[str, Any]:
    """Read until the connection is quiet for ``quiet`` seconds; the last position seen."""
    position: dict[str, Any] = {}
    while True:
        try:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), quiet))
        except TimeoutError:
            return position
        if "offset" in frame:
            position = {"epoch": frame["epoch"], "offset": frame["offset"]}


async def publish(provider: Any, start: int, count: int) -> None:
    for n in range(start, start + count):
        await provider.send(event_frame(n))


async def receive(ws: Any, count: int, marker: str) -> dict[str, Any]:
    """Read until ``count`` frames carrying ``marker`` arrived; the last position among them."""
    seen = 0
    last = b""
    while seen < count:
        frame = await ws.recv()
        if marker in frame:
            seen += 1
            last = frame
    parsed = orjson.loads(last)
    return {"epoch": parsed["epoch"], "offset": parsed["offset"]}


async def one_run(url_provider: str, url_app: str, missed: int) -> dict[str, float]:
    """Live delivery of ``missed`` events to a connected app, then recovery of ``missed`` more after a drop."""
    provider, _ = await join(url_provider, "provider", AGENT)
    app, _ = await join(url_app, "app", AGENT)
    await last_position(app)
    # Live: the provider sends back to back; timed until the app has them all.
    started = time.perf_counter()
    sending = asyncio.create_task(publish(provider, 0, missed))
    seen = await receive(app, missed, '"name":"event-')
    live = time.perf_counter() - started
    await sending
    await app.close()
    # Missed while away, then recovered.
    await publish(provider, missed, missed)
    await asyncio.sleep(0.5)  # published and kept (Redis: written) before the app comes back
    started = time.perf_counter()
    app, welcome = await join(url_app, "app", AGENT, recover=seen)
    await receive(app, missed, '"recovered":true')
    recovery = time.perf_counter() - started
    await app.close()
    await provider.close()
    if welcome.get("recovered") is not True:
        raise RuntimeError(f"not recovered: {welcome}")
    return {"live_ms": live * 1000, "recovery_ms": recovery * 1000}


async def fill(url: str, agents: int, events: int) -> None:
    """``events`` events from each of ``agents`` providers, then all of them gone."""
    for a in range(agents):
        provider, _ = await join(url, "provider", f"mem-{a}")
        await publish(provider, 0, events)
        await provider.close()


def memory_per_agent(agents: int, events: int, extra: list[str]) -> dict[str, float]:
    sizes: dict[str, float] = {}
    for label, flags in (("history", []), ("no-history", ["--history-size", "0"])):
        hub = c.start_hub(f"hub-{label}", extra=[*extra, *flags], log_name=f"recovery-{label}")
        try:
            before = hub.rss()
            asyncio.run(fill(f"ws://127.0.0.1:{hub.port}/ws", agents, events))
            time.sleep(0.5)
            sizes[label] = hub.rss() - before
        finally:
            hub.stop()
    return {"kib_per_agent": (sizes["history"] - sizes["no-history"]) / agents / 1024,
            "rss_growth_history_kib": sizes["history"] / 1024, "rss_growth_off_kib": sizes["no-history"] / 1024}


def redis_stream_bytes(prefix: str) -> int | None:
    import redis

    client = redis.Redis.from_url(c.REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        if key.decode().endswith(AGENT) and client.type(key) == b"stream":
            return int(client.memory_usage(key, samples=0) or 0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.add_argument("--missed", type=int, default=1000, help="Events missed and recovered (default 1000).")
    parser.add_argument("--agents", type=int, default=100, help="Agents for the memory figure (default 100).")
    args = parser.parse_args()
    reps = args.reps or (2 if args.quick else 5)
    cleanup, info = c.begin(args)
    try:
        run(args, reps, cleanup, info)
    finally:
        cleanup()  # every server this run started, whatever happened


def run(args: argparse.Namespace, reps: int, cleanup: c.Cleanup, info: dict[str, Any]) -> None:
    results: dict[str, Any] = {"machine": info, "missed": args.missed, "runs": {}}

    single = cleanup.add(c.start_hub("hub", log_name="recovery-hub"))
    url = f"ws://127.0.0.1:{single.port}/ws"
    runs = [asyncio.run(one_run(url, url, args.missed)) for _ in range(reps)]
    cleanup.stop(single)
    results["runs"]["single node"] = runs

    problem = c.redis_problem()
    prefix = f"bench-recovery-{os.getpid()}"
    if problem is None:
        flags = ["--redis", c.REDIS_URL, "--redis-prefix", prefix]
        node_a = cleanup.add(c.start_hub("node-a", extra=flags, log_name="recovery-node-a"))
        node_b = cleanup.add(c.start_hub("node-b", extra=flags, log_name="recovery-node-b"))
        runs = [asyncio.run(one_run(f"ws://127.0.0.1:{node_a.port}/ws", f"ws://127.0.0.1:{node_b.port}/ws",
                                    args.missed)) for _ in range(reps)]
        results["runs"]["two nodes over Redis"] = runs
        results["redis_stream_bytes"] = redis_stream_bytes(prefix)
        cleanup.stop(node_a, node_b)
        c.redis_cleanup(prefix)
    else:
        print(f"Redis runs skipped: {problem}")

    results["memory"] = memory_per_agent(args.agents, args.missed, [])
    rows = []
    for name, runs in results["runs"].items():
        live = sorted(run["live_ms"] for run in runs)
        recovery = sorted(run["recovery_ms"] for run in runs)
        rows.append([name, f"{c.median(live):.1f}", f"{c.median(recovery):.1f}",
                     f"{c.ratio(c.median(recovery), c.median(live)):.2f}",
                     f"{recovery[0]:.1f}-{recovery[-1]:.1f}"])
    print(f"\n{args.missed} events, {reps} runs each (medians, ms)")
    print(c.table(["where", "live delivery", "recovery", "recovery / live", "recovery spread"], rows))
    memory = results["memory"]
    print(f"\nhistory memory per agent ({args.agents} agents x {args.missed} events, single node): "
          f"{memory['kib_per_agent']:.0f} KiB (RSS growth {memory['rss_growth_history_kib']:.0f} KiB with history, "
          f"{memory['rss_growth_off_kib']:.0f} KiB with --history-size 0)")
    if results.get("redis_stream_bytes") is not None:
        print(f"Redis: one agent's stream after {2 * args.missed * reps} events (trimmed to ~{args.missed}): "
              f"{results['redis_stream_bytes'] / 1024:.0f} KiB (MEMORY USAGE)")
    print(f"results: {c.save_results('recovery', results)}")


if __name__ == "__main__":
    main()
