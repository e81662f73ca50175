"""Memory: resident memory per idle connected app at 1,000 and 5,000 connections.

For the hub and for a bare ``websockets`` server holding the same idle
connections (``baseline_servers.py idle``: it answers the Hello and waits),
each a fresh process on core 0:

1. 20 warm-up apps connect (first-connection costs: code paths, caches);
   the server's RSS is read after a short settle: the base;
2. apps connect up to 1,000, then up to 5,000, each one finishing its Hello
   (the hub's Welcome and retained ProviderStatus received) and then idle;
   after each step and a settle, RSS is read again.

Per-app memory = (RSS - base) / apps added. The apps are spread over agents,
5 per agent (``--apps-per-agent``), as widgets around real agents would be;
there is no provider. The script raises its open-file limit
(``resource.setrlimit``) and so does every process it starts. RSS counts the
server's user-space memory only: kernel socket buffers are not in it (for
either server).

The Go Centrifuge peer of issue 15 (``centrifuge_peer.py``, ``GOMAXPROCS=1``)
holds the same connections the same way: each app connects and subscribes to
its agent's channel (``agent:<agent>``), then idles. Its RSS is read as for the
other two and, after each step, once more after the peer's ``/gc`` (a forced
garbage collection and ``debug.FreeOSMemory``), against a base read the same
way: the "after GC" figure. When its binary is missing the script says so in
one line and measures the other two; ``--no-peer`` leaves it out.

An informative run (``--no-deflate`` skips it): the bare server at
every ``websockets`` default with clients that offer permessage-deflate, as
browsers do (the compression contexts are what ``websockets`` documents as
~70 KiB per connection). The hub has compression off by default and declines.

Goal: at most 40 KiB per app.

    .venv/bin/python benchmarks/bench_memory.py            # ~1 min
    .venv/bin/python benchmarks/bench_memory.py --quick    # 1 repetition
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import centrifuge_peer as cp
import common as c

WARMUP = 20


class Apps(c.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.tally = c.Tally()

    async def connect(self, port: int, first: int, count: int, per_agent: int, deflate: bool = False,
                      peer: bool = False) -> int:
        if peer:  # Centrifuge: connect and subscribe to the agent's channel
            subs: list[tuple[str, str | None]] = [("app", cp.channel_of(f"agent{i // per_agent}"))
                                                  for i in range(first, first + count)]
            self.conns += await cp.open_peer_clients(port, subs, self.tally, batch=100)
            return len(self.conns)
        pairs = [("app", f"agent{i // per_agent}") for i in range(first, first + count)]
        self.conns += await c.open_clients("127.0.0.1", port, pairs, self.tally, batch=100, offer_deflate=deflate)
        return len(self.conns)

    async def status(self) -> dict[str, int]:
        return {"conns": len(self.conns), "closed": self.tally.closed}


def settle_rss(server: c.Server, seconds: float) -> int:
    """RSS after ``seconds``, once it stops changing (read every 0.25 s; the last value)."""
    time.sleep(seconds)
    last = server.rss()
    for _ in range(8):
        time.sleep(0.25)
        now = server.rss()
        if now == last:
            break
        last = now
    return last


def session(target: str, steps: list[int], per_agent: int, procs: int, settle: float,
            cleanup: c.Cleanup) -> dict[str, Any]:
    peer = target == "peer"
    if target == "hub":
        server = cleanup.add(c.start_hub(log_name="memory-hub"))
    elif peer:
        server = cleanup.add(cp.start_peer(log_name="memory-peer"))
    else:
        server = cleanup.add(c.start_baseline("idle-defaults" if target == "bare-deflate" else "idle",
                                              log_name=f"memory-{target}"))
    deflate = target == "bare-deflate"  # the clients offer permessage-deflate, as browsers do
    workers = [cleanup.add(c.Worker(Apps)) for _ in range(procs)]
    try:
        rss0 = server.rss()
        # warm-up apps, agents of their own
        workers[0].call("connect", server.port, 10**6, WARMUP, per_agent, deflate, peer)
        base = settle_rss(server, settle)
        out: dict[str, Any] = {"target": target, "rss_start_kib": rss0 / 1024, "rss_base_kib": base / 1024,
                               "steps": []}
        if peer:
            cp.stats(server, gc=True)
            base_gc = settle_rss(server, settle)
            out["rss_base_gc_kib"] = base_gc / 1024
        have = 0
        for step in steps:
            add = step - have
            t0 = time.monotonic()
            shares = [add // procs + (1 if i < add % procs else 0) for i in range(procs)]
            first = have
            for w, k in zip(workers, shares, strict=True):
                w.send("connect", server.port, first, k, per_agent, deflate, peer)
                first += k
            for w in workers:
                w.result("connect", timeout=300)
            connect_s = time.monotonic() - t0
            have = step
            rss = settle_rss(server, settle)
            closed = sum(s["closed"] for s in c.call_all(workers, "status"))
            out["steps"].append({"apps": step, "rss_kib": rss / 1024, "per_app_kib": (rss - base) / step / 1024,
                                 "connect_s": connect_s, "closed": closed})
            if peer:
                st = cp.stats(server, gc=True)
                rss_gc = settle_rss(server, settle)
                out["steps"][-1].update({"rss_gc_kib": rss_gc / 1024,
                                         "per_app_gc_kib": (rss_gc - base_gc) / step / 1024,
                                         "clients": st.get("clients"), "goroutines": st.get("goroutines")})
        return out
    finally:
        cleanup.stop(*workers, server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.add_argument("--steps", type=int, nargs="+", default=[1000, 5000], help="Connection counts, ascending.")
    parser.add_argument("--apps-per-agent", type=int, default=5)
    parser.add_argument("--load-procs", type=int, default=2, help="Load processes holding the connections.")
    parser.add_argument("--no-peer", action="store_true", help="Leave out the Centrifuge peer.")
    parser.add_argument("--no-deflate", action="store_true",
                        help="Skip the extra bare run at websockets defaults with permessage-deflate offered.")
    args = parser.parse_args()
    reps = args.reps or (1 if args.quick else 2)
    settle = 0.5 if args.quick else 1.0

    cleanup, info = c.begin(args, nofile=max(65536, 2 * max(args.steps) + 1000))
    limit = info["open_files"]
    print(f"memory: steps {args.steps}, {args.apps_per_agent} apps per agent, {reps} reps, open-file limit {limit}",
          flush=True)

    sides, peer_problem = cp.sides(args.no_peer, info)

    runs: list[dict[str, Any]] = []
    try:
        for rep in range(reps):
            targets = sides[rep % len(sides):] + sides[:rep % len(sides)]  # rotated each rep
            for target in targets + (() if args.no_deflate else ("bare-deflate",)):
                r = session(target, args.steps, args.apps_per_agent, args.load_procs, settle, cleanup)
                r["rep"] = rep
                runs.append(r)
                steps = "  ".join(f"{s['apps']}: {s['rss_kib'] / 1024:,.1f} MiB = {s['per_app_kib']:.1f} KiB/app "
                                  + (f"({s['per_app_gc_kib']:.1f} after GC, {s['clients']} clients) "
                                     if "per_app_gc_kib" in s else "")
                                  + f"(connected in {s['connect_s']:.1f} s, {s['closed']} closed)" for s in r["steps"])
                print(f"  rep {rep} {target:12}: base {r['rss_base_kib'] / 1024:,.1f} MiB  {steps}", flush=True)
    finally:
        cleanup()

    goal = c.Goal("<=", 40.0)
    rows, summary = [], []
    for step in args.steps:
        def med(target: str, key: str, step: int = step) -> float:
            return c.median(s[key] for r in runs if r["target"] == target for s in r["steps"] if s["apps"] == step)

        s = {"apps": step, "hub_per_app_kib": med("hub", "per_app_kib"), "bare_per_app_kib": med("bare", "per_app_kib"),
             "hub_rss_mib": med("hub", "rss_kib") / 1024, "bare_rss_mib": med("bare", "rss_kib") / 1024}
        s["ratio"] = c.ratio(s["hub_per_app_kib"], s["bare_per_app_kib"])
        s["bare_deflate_per_app_kib"] = med("bare-deflate", "per_app_kib")
        s["peer_per_app_kib"] = med("peer", "per_app_kib")
        s["peer_per_app_gc_kib"] = med("peer", "per_app_gc_kib")
        s["hub_over_peer"] = c.ratio(s["hub_per_app_kib"], s["peer_per_app_kib"])
        s["peer_over_bare"] = c.ratio(s["peer_per_app_kib"], s["bare_per_app_kib"])
        s["goal"] = goal.text(s["hub_per_app_kib"])
        summary.append(s)
        rows.append([step, s["hub_per_app_kib"], s["bare_per_app_kib"], s["ratio"], s["hub_rss_mib"],
                     s["bare_rss_mib"], s["bare_deflate_per_app_kib"], s["goal"]])
    print()
    c.print_machine(info)
    print(f"memory per idle app, medians of {reps} reps (RSS delta over the warmed-up server / apps)")
    print(c.table(["apps", "hub KiB/app", "bare KiB/app", "ratio", "hub RSS MiB", "bare RSS MiB",
                   "bare+deflate KiB/app", "goal <= 40 KiB"], rows))
    print("(bare+deflate: the bare server at every websockets default, clients offering permessage-deflate "
          "as browsers do; the hub, compression off by default, declines the offer)")
    if peer_problem:
        print(peer_problem)
    else:
        print("\nagainst the Centrifuge peer (GOMAXPROCS=1; each app connected and subscribed to its agent's channel)")
        print(c.table(["apps", "hub KiB/app", "bare KiB/app", "peer KiB/app", "peer after GC", "hub/bare",
                       "peer/bare", "hub/peer"],
                      [[s["apps"], s["hub_per_app_kib"], s["bare_per_app_kib"], s["peer_per_app_kib"],
                        s["peer_per_app_gc_kib"], s["ratio"], s["peer_over_bare"], s["hub_over_peer"]]
                       for s in summary]))
    path = c.save_results("memory", {"machine": info, "params": {"steps": args.steps, "reps": reps,
                                     "apps_per_agent": args.apps_per_agent}, "summary": summary, "runs": runs})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
