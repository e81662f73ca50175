"""Supervisor: one connection following 1,000 agents, each with its own provider.

One supervisor (``Hello`` with ``role: supervisor, agents: ["*"]`` on the open
hub) and ``--agents`` providers (1,000 by default, agents ``sup0`` ...), each
of which first publishes the seed SetAgentState once (retained state). Then,
for each target, a fresh server:

* ``hub``: one node; the supervisor and the providers on it;
* ``redis2``: two nodes sharing the local Redis; the providers on node B, the
  supervisor on node A, so every event crosses Redis;
* ``bare``: the bare ``websockets`` broadcast server (``baseline_servers.py
  broadcast``): each provider frame relayed to the one non-provider connection
  as it came, without parsing, validation or the ``agent`` key the hub adds.

Windows:

1. paced: every provider publishes one SetAgentState per second (the
   providers' sends evenly spread: ``--agents`` events/s in all), each
   carrying its send time (CLOCK_MONOTONIC ns) in ``message.data.name``;
   the supervisor times every event it receives: delivered events/s, p50/p99;
2. saturation: the providers publish as fast as the server takes it, round
   robin, kept at most ``EVENTS_AHEAD`` events ahead of what the supervisor has
   counted (so the server always has work and the supervisor is never dropped
   for reading too slowly): delivered events/s to the supervisor.

Memory (``hub`` only): the hub's RSS with the providers connected and their
states retained, then after 1 supervisor following every agent has joined and
received its replay, then after ``MEMORY_SUPERVISORS`` of them: KiB per
supervisor = RSS delta / supervisors (the replay's transient buffers are
included only as far as they stay allocated). For reference in the same run:
what the alternative costs, one app per agent (``--agents`` apps, each
following one of the agents).

    .venv/bin/python benchmarks/bench_supervisor.py            # ~2 min
    .venv/bin/python benchmarks/bench_supervisor.py --quick
    .venv/bin/python benchmarks/bench_supervisor.py --agents 1000 --targets hub bare
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import time
from array import array
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_memory
import common as c

#: Events the providers may be ahead of the supervisor in the saturation window.
EVENTS_AHEAD = 4000
#: Supervisors joined for the memory figure (their deltas averaged).
MEMORY_SUPERVISORS = 5


def supervisor_hello(agents: list[str]) -> bytes:
    return orjson.dumps({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "bench",
                         "data": {"role": "supervisor", "agents": agents}})


async def open_one(port: int, hello: bytes, tally: c.Tally) -> c.WSConn:
    """One connection that says ``hello`` and waits for its first frame (Welcome)."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: c.WSConn("127.0.0.1", port, tally), "127.0.0.1", port)
    await asyncio.wait_for(conn.opened, 30)
    conn.send(hello)
    await asyncio.wait_for(conn.first_text, 30)
    return conn


class Supervisors(c.Handler):
    """Supervisor connections (the first one counted into the shared slot and timed)."""

    def __init__(self, shared: Any) -> None:
        super().__init__()
        self.tally = c.Tally(shared, 0)
        self.others = c.Tally()
        self.samples = array("q")

    async def connect(self, port: int, hello: bytes) -> None:
        self.conns.append(await open_one(port, hello, self.tally if not self.conns else self.others))

    def _on_text(self, conn: c.WSConn, payload: bytes, now: int) -> None:
        i = payload.find(c.TS_MARKER)
        if i >= 0:
            i += len(c.TS_MARKER)
            sent = int(payload[i:i + c.TS_DIGITS])
            if sent:
                self.samples.append(now - sent)

    async def timing(self, on: bool) -> None:
        self.conns[0].on_text = self._on_text if on else None

    async def take_samples(self) -> bytes:
        data, self.samples = self.samples.tobytes(), array("q")
        return data

    async def status(self) -> dict[str, int]:
        return {"frames": self.tally.frames, "closed": self.tally.closed + self.others.closed}


class AppsOfAgents(c.Handler):
    """Apps, one per named agent (the memory reference)."""

    def __init__(self) -> None:
        super().__init__()
        self.tally = c.Tally()

    async def connect_agents(self, port: int, agents: list[str]) -> int:
        self.conns += await c.open_clients("127.0.0.1", port, [("app", a) for a in agents], self.tally, batch=100)
        return len(self.conns)


class Providers(c.Handler):
    """Provider connections of agents ``sup<first>`` .. in one load process."""

    def __init__(self, shared: Any) -> None:
        super().__init__()
        self.tally = c.Tally()
        self.shared = shared
        self.running = False
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    async def connect(self, port: int, first: int, count: int) -> int:
        pairs = [("provider", f"sup{i}") for i in range(first, first + count)]
        self.conns += await c.open_clients("127.0.0.1", port, pairs, self.tally, batch=100)
        return len(self.conns)

    async def publish_once(self, payload: bytes) -> None:
        for conn in self.conns:
            conn.send(payload)

    async def paced(self, per_agent: float, seconds: float, template: tuple[bytes, bytes], offset: float) -> int:
        """Each provider once every ``1/per_agent`` s, the sends spread evenly (``offset``:
        this process's share of the spacing, so that several processes interleave)."""
        loop = asyncio.get_running_loop()
        n = len(self.conns)
        rate = per_agent * n
        count = int(rate * seconds)
        start = loop.time() + 0.05 + offset / rate
        for i in range(count):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.conns[i % n].send(c.timestamped_event(time.monotonic_ns(), template))
        return count

    async def start_blast(self, payload: bytes, events_ahead: int, share: float) -> None:
        self.running, self.sent = True, 0
        self.task = asyncio.create_task(self._blast(c.client_frame(payload), int(events_ahead * share), share))

    async def _blast(self, frame: bytes, ahead: int, share: float) -> None:
        shared, conns = self.shared, self.conns
        base = shared[0]
        k = 0
        while self.running:
            # This process's part of what the supervisor counted, estimated by its share.
            if self.sent - (shared[0] - base) * share >= ahead:
                await asyncio.sleep(0.0005)
                continue
            for _ in range(32):
                conn = conns[k % len(conns)]
                k += 1
                if conn.closed or not conn.writable.is_set():
                    continue
                conn.send_raw(frame)
                self.sent += 1
            await asyncio.sleep(0)

    async def stop_blast(self) -> int:
        self.running = False
        if self.task is not None:
            await self.task
        return self.sent

    async def status(self) -> dict[str, int]:
        return {"closed": self.tally.closed, "conns": len(self.conns)}


def session(target: str, agents: int, procs: int, paced_secs: float, sat_secs: float, cleanup: c.Cleanup,
            redis_prefix: str | None = None) -> dict[str, Any]:
    servers = [cleanup.add(s) for s in c.start_servers(target, log_name="supervisor", bare_kind="broadcast",
                                                          redis_prefix=redis_prefix)]
    supervisor_port, provider_port = servers[0].port, servers[-1].port
    others = c.redis_server_pids() if target == "redis2" else []
    shared = mp.RawArray("q", 1)
    sup = cleanup.add(c.Worker(Supervisors, shared))
    providers = [cleanup.add(c.Worker(Providers, shared)) for _ in range(procs)]
    workers = [sup, *providers]

    def total() -> int:
        return int(shared[0])

    try:
        sizes = [agents // procs + (1 if i < agents % procs else 0) for i in range(procs)]
        first = 0
        for w, size in zip(providers, sizes, strict=True):
            w.send("connect", provider_port, first, size)
            first += size
        connected = sum(w.result("connect", timeout=300) for w in providers)
        template = c.timestamped_event_template()
        payload = c.timestamped_event(0, template)
        c.call_all(providers, "publish_once", payload)
        time.sleep(0.5)
        sup.call("connect", supervisor_port, supervisor_hello(["*"]))
        # The replay (Welcome, then ProviderStatus and SetAgentState per agent; the bare server: its welcome).
        replayed = c.wait_for_count(total, 1 if target == "bare" else 2 * connected + 1, limit=60)
        c.wait_quiet(total, quiet=0.3, limit=10)

        # -- paced: one SetAgentState per agent per second ------------------------------------
        base = total()
        sup.call("timing", True)
        cpu = c.CpuWindow([s.pid for s in servers], [w.pid for w in workers], other_pids=others)
        t0 = time.monotonic()
        for i, w in enumerate(providers):
            w.send("paced", 1.0, paced_secs, template, i / procs)
        sent = sum(w.result("paced", timeout=paced_secs + 60) for w in providers)
        delivered = c.wait_for_count(total, base + sent, limit=20) - base
        paced_wall = time.monotonic() - t0
        paced_cpu = cpu.end()
        sup.call("timing", False)
        samples = array("q")
        samples.frombytes(sup.call("take_samples"))
        lat = sorted(x / 1e3 for x in samples)  # µs

        # -- saturation ------------------------------------------------------------------------
        base = total()
        for w, size in zip(providers, sizes, strict=True):
            w.send("start_blast", payload, EVENTS_AHEAD, size / connected)
        for w in providers:
            w.result("start_blast")
        time.sleep(1.0)  # warm-up
        cpu = c.CpuWindow([s.pid for s in servers], [w.pid for w in workers], other_pids=others)
        f0, t0 = total(), time.monotonic()
        time.sleep(sat_secs)
        f1, t1 = total(), time.monotonic()
        shares = cpu.end()
        blasted = sum(c.call_all(providers, "stop_blast"))
        drained = c.wait_for_count(total, base + blasted, limit=20)
        status = sup.call("status")
        provider_closed = sum(s["closed"] for s in c.call_all(providers, "status"))
        return {
            "target": target, "agents": connected, "replayed": replayed,
            "paced_sent": sent, "paced_delivered": delivered, "paced_per_s": delivered / paced_wall,
            "paced_server_cpu": paced_cpu["server_cpu"],
            "p50_us": c.percentile(lat, 50), "p99_us": c.percentile(lat, 99), "max_us": lat[-1] if lat else None,
            "lat_samples": len(lat),
            "throughput": (f1 - f0) / (t1 - t0), "server_cpu": shares["server_cpu"],
            "server_runnable": shares["server_runnable"], "load_runnable": shares["load_runnable"],
            "load_cpu": shares["load_cpu"], "redis_cpu": shares["other_cpu"] if others else None,
            "lost": base + blasted - drained, "supervisor_closed": status["closed"],
            "providers_closed": provider_closed,
        }
    finally:
        cleanup.stop(*workers, *servers)


def memory(agents: int, procs: int, cleanup: c.Cleanup, settle: float) -> dict[str, Any]:
    """RSS of one hub: providers only; + 1 supervisor of every agent; + MEMORY_SUPERVISORS; then as many apps."""
    server = cleanup.add(c.start_hub(log_name="supervisor-memory-hub"))
    shared = mp.RawArray("q", 1)
    sup = cleanup.add(c.Worker(Supervisors, shared))
    providers = [cleanup.add(c.Worker(Providers, shared)) for _ in range(procs)]
    apps = cleanup.add(c.Worker(AppsOfAgents))
    try:
        sizes = [agents // procs + (1 if i < agents % procs else 0) for i in range(procs)]
        first = 0
        for w, size in zip(providers, sizes, strict=True):
            w.send("connect", server.port, first, size)
            first += size
        for w in providers:
            w.result("connect", timeout=300)
        c.call_all(providers, "publish_once", c.timestamped_event(0, c.timestamped_event_template()))
        # Warm-up: a supervisor of one agent and an app (first-use costs), then the base.
        sup.call("connect", server.port, supervisor_hello(["sup0"]))
        apps.call("connect_agents", server.port, ["warm-up"])
        base = bench_memory.settle_rss(server, settle)
        sup.call("connect", server.port, supervisor_hello(["*"]))
        time.sleep(1.0)  # its replay: 2 frames per agent
        one = bench_memory.settle_rss(server, settle)
        for _ in range(MEMORY_SUPERVISORS - 1):
            sup.call("connect", server.port, supervisor_hello(["*"]))
        time.sleep(1.0)
        many = bench_memory.settle_rss(server, settle)
        apps.call("connect_agents", server.port, [f"sup{i}" for i in range(agents)], timeout=300)
        with_apps = bench_memory.settle_rss(server, settle)
        return {"agents": agents, "rss_providers_kib": base / 1024, "rss_one_kib": one / 1024,
                "rss_many_kib": many / 1024, "one_supervisor_kib": (one - base) / 1024,
                "per_supervisor_kib": (many - base) / MEMORY_SUPERVISORS / 1024,
                "apps_kib": (with_apps - many) / 1024, "per_app_kib": (with_apps - many) / agents / 1024,
                "closed": sup.call("status")["closed"]}
    finally:
        cleanup.stop(apps, sup, *providers, server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.add_argument("--agents", type=int, default=1000, help="Agents, one provider each (default 1000).")
    parser.add_argument("--provider-procs", type=int, default=2, help="Load processes holding the providers.")
    parser.add_argument("--targets", nargs="+", default=["hub", "redis2", "bare"], choices=["hub", "redis2", "bare"])
    parser.add_argument("--no-memory", action="store_true", help="Skip the memory figure.")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 2)
    paced_secs, sat_secs = (3.0, 2.0) if args.quick else (5.0, 3.0)

    cleanup, info = c.begin(args, nofile=max(65536, 4 * args.agents + 1000))
    targets = list(args.targets)
    problem = c.redis_problem() if "redis2" in targets else None
    if problem is not None:
        print(f"redis2: NOT RUN: {problem}", flush=True)
        targets.remove("redis2")
    prefix = f"bench-sup-{os.getpid()}"
    print(f"supervisor: {args.agents} agents, targets {targets}, {reps} reps, paced {paced_secs:g} s at 1 event/s "
          f"per agent, saturation {sat_secs:g} s", flush=True)

    runs: list[dict[str, Any]] = []
    mem: dict[str, Any] | None = None
    try:
        for rep in range(reps):
            order = targets[rep % len(targets):] + targets[:rep % len(targets)]
            for target in order:
                r = session(target, args.agents, args.provider_procs, paced_secs, sat_secs, cleanup,
                            redis_prefix=f"{prefix}-{rep}" if target == "redis2" else None)
                r["rep"] = rep
                runs.append(r)
                print(f"  rep {rep} {target:6}: paced {r['paced_per_s']:>7,.0f} ev/s "
                      f"({r['paced_delivered']}/{r['paced_sent']}) p50 {r['p50_us']:,.0f} µs p99 {r['p99_us']:,.0f} µs"
                      f"  | saturation {r['throughput']:>8,.0f} ev/s (server cpu {r['server_cpu']:.0%}, runnable "
                      f"{r['server_runnable']:.0%}; load runnable {r['load_runnable']:.0%})  replay {r['replayed']}, "
                      f"lost {r['lost']}, closed {r['supervisor_closed']}/{r['providers_closed']}", flush=True)
        if not args.no_memory:
            mem = memory(args.agents, args.provider_procs, cleanup, 0.5 if args.quick else 1.0)
            print(f"  memory: providers only {mem['rss_providers_kib'] / 1024:,.1f} MiB; first supervisor "
                  f"+{mem['one_supervisor_kib']:,.1f} KiB; {MEMORY_SUPERVISORS} supervisors "
                  f"{mem['per_supervisor_kib']:,.1f} KiB each; {args.agents} apps (one per agent) "
                  f"{mem['apps_kib']:,.1f} KiB ({mem['per_app_kib']:,.1f} KiB each)", flush=True)
    finally:
        cleanup()
        if "redis2" in targets:
            for rep in range(reps):
                c.redis_cleanup(f"{prefix}-{rep}")

    rows = []
    summary = []
    for target in targets:
        def med(key: str, target: str = target) -> float:
            return c.median(r[key] for r in runs if r["target"] == target)

        s = {"target": target, **{k: med(k) for k in ("paced_per_s", "p50_us", "p99_us", "throughput",
                                                      "server_cpu", "server_runnable")}}
        summary.append(s)
        rows.append([target, s["paced_per_s"], s["p50_us"], s["p99_us"], s["throughput"],
                     f"{s['server_cpu']:.0%}/{s['server_runnable']:.0%}"])
    print()
    c.print_machine(info)
    print(f"one supervisor following {args.agents} agents, medians of {reps} reps (paced: every agent publishes "
          f"1 SetAgentState/s; saturation: as fast as the server takes them)")
    print(c.table(["target", "paced ev/s", "p50 µs", "p99 µs", "saturation ev/s", "server cpu/runnable"], rows))
    if mem is not None:
        print(f"memory of a supervisor following {args.agents} agents (hub RSS delta): first "
              f"{mem['one_supervisor_kib']:,.1f} KiB, {mem['per_supervisor_kib']:,.1f} KiB each over "
              f"{MEMORY_SUPERVISORS}; the alternative, {args.agents} apps (one per agent): {mem['apps_kib']:,.1f} KiB")
    path = c.save_results("supervisor", {"machine": info, "params": {"agents": args.agents, "reps": reps,
                                         "paced_secs": paced_secs, "sat_secs": sat_secs,
                                         "events_ahead": EVENTS_AHEAD, "hub_flags": c.HUB_BENCH_FLAGS},
                                         "summary": summary, "runs": runs, "memory": mem})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
