"""Round trip: SetNotReady from 1 and from 50 agents' apps, each answered by its agent's provider.

N agents, each with one app and one provider (``agent1`` ... ``agentN``).
Each app keeps one request in flight (closed loop): it sends the seed
SetNotReady with a fresh ``id``, and sends the next one as soon as its
provider's answer, the seed SetAgentState with ``replyTo`` = that id, reaches
it. An answer is an event for every app of its agent: here that is the
requester alone, so each round trip is one request in and one answer out.

Servers, each a fresh process on core 0, in alternating order:

* the hub (``connect-bridge serve --open``), which validates both frames;
* a bare forwarder (``baseline_servers.py forwarder``): ``websockets``, each
  app paired with its own agent's provider as the hub pairs them, each
  request parsed with ``orjson.loads`` and given a request id of the
  forwarder's own, each answer parsed to find its requester and its bytes
  sent back; no validation.

The apps and the providers are two load processes on core 1. Prints round
trips/s and p50/p99 latency (medians over the repetitions), the hub/bare
ratios, CPU shares, and round trips per server CPU-second.

    .venv/bin/python benchmarks/bench_roundtrip.py             # ~1 min
    .venv/bin/python benchmarks/bench_roundtrip.py --quick
    .venv/bin/python benchmarks/bench_roundtrip.py --apps 50 --profile
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
import orjson
import profiling

PLACEHOLDER = "@@ID@@"
REPLY_TO = b'"replyTo":"'
ID_KEY = b'"id":"'


def request_template() -> tuple[bytes, bytes]:
    request = c.seed_request()
    request["id"] = PLACEHOLDER
    prefix, suffix = orjson.dumps(request).split(PLACEHOLDER.encode())
    return prefix, suffix


def reply_template() -> tuple[bytes, bytes]:
    event = c.seed_event()
    event["replyTo"] = PLACEHOLDER
    prefix, suffix = orjson.dumps(event).split(PLACEHOLDER.encode())
    return prefix, suffix


class _App:
    __slots__ = ("outstanding", "prefix", "sent", "seq")

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        self.seq = 0
        self.outstanding: bytes | None = None
        self.sent = 0


class Apps(c.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.tally = c.Tally()
        self.samples = array("q")
        self.errors = 0
        self.running = False
        self.template = request_template()

    async def connect(self, port: int, agents: list[str]) -> int:
        """One app per agent."""
        self.conns = await c.open_clients("127.0.0.1", port, [("app", agent) for agent in agents], self.tally)
        for i, conn in enumerate(self.conns):
            conn.user = _App(b"a%d" % i)
            conn.on_text = self._on_text
        return len(self.conns)

    def _send(self, conn: c.WSConn) -> None:
        app: _App = conn.user
        app.seq += 1
        app.outstanding = rid = b"%s-%d" % (app.prefix, app.seq)
        app.sent = time.monotonic_ns()
        conn.send(self.template[0] + rid + self.template[1])

    def _on_text(self, conn: c.WSConn, payload: bytes, now: int) -> None:
        i = payload.find(REPLY_TO)
        if i < 0:
            return
        i += len(REPLY_TO)
        app: _App = conn.user
        if payload[i:payload.index(b'"', i)] != app.outstanding:
            return  # not this app's request (an agent's events reach all of its apps)
        if b'"topic":"Error"' in payload:
            self.errors += 1
        else:
            self.samples.append(now - app.sent)
        app.outstanding = None
        if self.running:
            self._send(conn)

    async def start(self) -> None:
        self.running = True
        for conn in self.conns:
            self._send(conn)

    async def mark(self) -> None:
        self.samples, self.errors = array("q"), 0

    async def take(self) -> tuple[bytes, int]:
        data, self.samples = self.samples.tobytes(), array("q")
        return data, self.errors

    async def stop(self) -> int:
        self.running = False
        for _ in range(500):  # up to 5 s for the answers still on their way
            if all(conn.user.outstanding is None for conn in self.conns):
                break
            await asyncio.sleep(0.01)
        return sum(conn.user.outstanding is not None for conn in self.conns)


class Provider(c.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.tally = c.Tally()
        self.template = reply_template()
        self.answered = 0

    async def connect(self, port: int, agents: list[str]) -> None:
        """One provider per agent."""
        self.conns = await c.open_clients("127.0.0.1", port, [("provider", agent) for agent in agents], self.tally)
        for conn in self.conns:
            conn.on_text = self._on_text

    def _on_text(self, conn: c.WSConn, payload: bytes, now: int) -> None:
        i = payload.rfind(ID_KEY)
        if i < 0:
            return
        i += len(ID_KEY)
        conn.send(self.template[0] + payload[i:payload.index(b'"', i)] + self.template[1])
        self.answered += 1


def session(target: str, n: int, secs: float, cleanup: c.Cleanup, profile_to: Path | None = None,
            redis_prefix: str | None = None) -> dict[str, Any]:
    """One run against ``target`` (see :func:`common.start_servers`): ``n`` agents, one app and one
    provider each. With two nodes the providers join the first and the apps the second: every
    request and answer crosses Redis."""
    servers = [cleanup.add(s) for s in c.start_servers(target, log_name="roundtrip", bare_kind="forwarder",
                                                          redis_prefix=redis_prefix)]
    server = servers[0]
    others = c.redis_server_pids() if target == "redis2" else []
    providers = cleanup.add(c.Worker(Provider))
    apps = cleanup.add(c.Worker(Apps))
    try:
        agents = [f"agent{i}" for i in range(1, n + 1)]
        providers.call("connect", server.port, agents)
        apps.call("connect", servers[-1].port, agents)
        apps.call("start")
        time.sleep(0.5)  # warm-up
        profiler = profiling.start(server.pid, secs, profile_to) if profile_to else None
        cpu = c.CpuWindow([s.pid for s in servers], [apps.pid, providers.pid], other_pids=others)
        apps.call("mark")
        t0 = time.monotonic()
        time.sleep(secs)
        blob, errors = apps.call("take")
        t1 = time.monotonic()
        shares = cpu.end()
        stuck = apps.call("stop")
        if profiler is not None:
            profiler.wait()
        samples = array("q")
        samples.frombytes(blob)
        lat = sorted(x / 1e3 for x in samples)
        rate = len(lat) / (t1 - t0)
        return {
            "target": target, "apps": n, "round_trips": len(lat), "errors": errors, "stuck": stuck,
            "rt_per_s": rate, "per_server_cpu_s": len(lat) / max(shares["server_cpu"] * shares["wall"], 1e-9),
            "server_cpu": shares["server_cpu"], "load_cpu": shares["load_cpu"],
            "server_core_busy": shares["server_core_busy"], "server_runnable": shares["server_runnable"],
            "load_runnable": shares["load_runnable"], "redis_cpu": shares["other_cpu"] if others else None,
            "p50_us": c.percentile(lat, 50), "p99_us": c.percentile(lat, 99),
        }
    finally:
        cleanup.stop(apps, providers, *servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.add_argument("--apps", type=int, action="append",
                        help="Agents, one app and one provider each (repeatable; default 1 and 50).")
    parser.add_argument("--profile", action="store_true", help="One extra hub run per app count under py-spy.")
    args = parser.parse_args()
    counts = args.apps or [1, 50]
    reps = args.reps or (2 if args.quick else 3)
    secs = 1.5 if args.quick else 3.0

    cleanup, info = c.begin(args)
    print(f"round trip: apps={counts} (one agent each, with its own provider), {reps} reps of {secs:g} s", flush=True)

    runs: list[dict[str, Any]] = []
    profiles: dict[int, str] = {}
    try:
        for n in counts:
            for rep in range(reps):
                for target in (("hub", "bare") if rep % 2 == 0 else ("bare", "hub")):
                    r = session(target, n, secs, cleanup)
                    r["rep"] = rep
                    runs.append(r)
                    print(f"  apps={n:<3} rep {rep} {target:4}: {r['rt_per_s']:>8,.0f} rt/s "
                          f"({r['per_server_cpu_s']:>8,.0f} per server CPU-s; server cpu {r['server_cpu']:.0%}, "
                          f"runnable {r['server_runnable']:.0%}; load cpu {r['load_cpu']:.0%}, "
                          f"runnable {r['load_runnable']:.0%})  "
                          f"p50 {r['p50_us']:,.0f} µs  p99 {r['p99_us']:,.0f} µs  "
                          f"[{r['errors']} errors, {r['stuck']} unanswered]", flush=True)
        if args.profile:
            for n in counts:
                out = c.RESULTS / f"profile-roundtrip-hub-apps{n}.txt"
                session("hub", n, max(secs, 4.0), cleanup, profile_to=out)
                profiles[n] = str(out)
                print(f"\npy-spy profile of the hub, {n} apps:")
                print(profiling.summary(out))
    finally:
        cleanup()

    goal = c.Goal(">=", 1.0)  # issue 15, goal 2
    summary, rows = [], []
    for n in counts:
        def med(target: str, key: str, n: int = n) -> float:
            return c.median(r[key] for r in runs if r["apps"] == n and r["target"] == target)

        s: dict[str, Any] = {"apps": n}
        for key in ("rt_per_s", "per_server_cpu_s", "p50_us", "p99_us", "server_cpu", "load_cpu"):
            s[f"hub_{key}"], s[f"bare_{key}"] = med("hub", key), med("bare", key)
        s["rt_ratio"] = c.ratio(s["hub_rt_per_s"], s["bare_rt_per_s"])
        s["cpu_normalized_ratio"] = c.ratio(s["hub_per_server_cpu_s"], s["bare_per_server_cpu_s"])
        s["p50_ratio"] = c.ratio(s["hub_p50_us"], s["bare_p50_us"])
        s["p99_ratio"] = c.ratio(s["hub_p99_us"], s["bare_p99_us"])
        s["goal"] = goal.text(s["rt_ratio"])
        summary.append(s)
        rows.append([n, s["hub_rt_per_s"], s["bare_rt_per_s"], s["rt_ratio"], s["cpu_normalized_ratio"],
                     f"{s['hub_server_cpu']:.0%}/{s['hub_load_cpu']:.0%}", s["hub_p50_us"], s["bare_p50_us"],
                     s["hub_p99_us"], s["bare_p99_us"], s["p99_ratio"], "ok" if goal.met(s["rt_ratio"]) else "MISS"])
    print()
    c.print_machine(info)
    print(f"round trip, medians of {reps} reps (rt/s; ratio/cpu = per server CPU-second; cpu h/l = hub's core / "
          "load core; latency µs)")
    print(c.table(["apps", "hub rt/s", "bare rt/s", "ratio", "ratio/cpu", "cpu h/l", "hub p50", "bare p50",
                   "hub p99", "bare p99", "p99 ratio", "goal >=1.0x"], rows))
    path = c.save_results("roundtrip", {"machine": info, "params": {"apps": counts, "reps": reps, "secs": secs,
                                        "hub_flags": c.HUB_BENCH_FLAGS},
                                        "summary": summary, "runs": runs, "profiles": profiles})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
