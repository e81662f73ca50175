"""With Redis: fan-out and round trip across two hub nodes sharing the Redis at 127.0.0.1:6379.

The same runs as ``bench_fanout.py`` and ``bench_roundtrip.py``, against three
targets, in rotating order over the repetitions:

* ``redis2``: two hub nodes (``--redis ... --redis-prefix bench-<pid>``), both
  on core 0. Fan-out: the provider joins node A, the apps are spread over A
  and B. Round trip: the provider on A, the apps on B, so every request and
  every answer crosses Redis;
* ``hub``: one hub node with the in-memory broker (the reference);
* ``bare``: the bare baseline of each benchmark.

Ratios printed: redis2 / hub and redis2 / bare. ``--versus PATH`` adds a
fourth target, ``redis2-vs``: the same two nodes run from the copy of the
``bridge`` package at PATH (made with ``git archive HEAD bridge schemas | tar
-x -C PATH``, then changed), in the same rotation, so a change to the Redis
path is measured against the tree in one run (ratio redis2-vs / redis2).
Redis itself is the
machine's service (not pinned, shared with anything else using it); its CPU
over the window is printed. Keys under the run's prefix are deleted at the
end. Needs ``bridge.brokers.redis`` and a reachable Redis
(``$BENCH_REDIS_URL`` to use another local one); otherwise the script says
why and exits 0 without figures.

    .venv/bin/python benchmarks/bench_redis.py            # ~3 min
    .venv/bin/python benchmarks/bench_redis.py --quick
    .venv/bin/python benchmarks/bench_redis.py --quick --versus /tmp/other-copy
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fanout
import bench_roundtrip
import common as c

TARGETS = ("redis2", "hub", "bare")
#: The two nodes run from the copy of the package given with --versus.
VERSUS = "redis2-vs"


def rotate(targets: tuple[str, ...], rep: int) -> tuple[str, ...]:
    k = rep % len(targets)
    return targets[k:] + targets[:k]


@contextlib.contextmanager
def servers_of(target: str, versus: str | None) -> Iterator[str]:
    """The target a session starts: VERSUS is "redis2" with its hubs run from ``versus``."""
    if target != VERSUS:
        yield target
        return
    saved = c.HUB_PYTHONPATH
    c.HUB_PYTHONPATH = versus  # read by common.start_hub at each start
    try:
        yield "redis2"
    finally:
        c.HUB_PYTHONPATH = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.add_argument("--n", type=int, action="append", help="Fan-out apps (repeatable; default 100 and 1000).")
    parser.add_argument("--apps", type=int, action="append", help="Round-trip apps (repeatable; default 1 and 50).")
    parser.add_argument("--versus", metavar="PATH",
                        help=f"Add the target {VERSUS}: two nodes run from the bridge package copy at PATH.")
    args = parser.parse_args()
    ns = args.n or [100, 1000]
    counts = args.apps or [1, 50]
    reps = args.reps or (1 if args.quick else 2)
    targets = (*TARGETS, VERSUS) if args.versus else TARGETS
    versus = str(Path(args.versus).resolve()) if args.versus else None
    sat_secs, lat_secs, rt_secs = (1.5, 2.5, 1.5) if args.quick else (2.0, 3.5, 2.5)

    c.apply_common(args)
    c.pin(c.LOAD_CORE)
    c.raise_nofile()
    info = c.machine_info()
    c.print_machine(info)
    problem = c.redis_problem()
    if problem is not None:
        print(f"with Redis: NOT RUN: {problem}")
        c.save_results("redis", {"machine": info, "not_run": problem})
        return
    prefix = f"bench-{os.getpid()}"
    cleanup = c.Cleanup()
    c.install_deadline(args.timeout, cleanup)
    print(f"with Redis ({c.REDIS_URL}, prefix {prefix}): fan-out N={ns}, round trip apps={counts}, {reps} reps"
          + (f"; {VERSUS} from {versus}" if versus else ""), flush=True)

    def prefix_of(kind: str, n: int, rep: int, target: str) -> str:
        # Each two-node target has its own keys: the second must not start on the first's streams.
        return f"{prefix}-{kind}{n}-{rep}" + ("v" if target == VERSUS else "")

    fan: list[dict[str, Any]] = []
    rt: list[dict[str, Any]] = []
    try:
        for n in ns:
            procs = 2 if n >= 500 else 1
            for rep in range(reps):
                for target in rotate(targets, rep):
                    with servers_of(target, versus) as started:
                        r = bench_fanout.session(started, n, procs, sat_secs, lat_secs, cleanup,
                                                 redis_prefix=prefix_of("f", n, rep, target))
                    r["target"], r["rep"] = target, rep
                    fan.append(r)
                    redis_cpu = f", redis cpu {r['redis_cpu']:.0%}" if r.get("redis_cpu") is not None else ""
                    print(f"  fan-out N={n:<5} rep {rep} {target:9}: {r['throughput']:>9,.0f} msg/s (server cpu "
                          f"{r['server_cpu']:.0%}, load cpu {r['load_cpu']:.0%}{redis_cpu})  p50 {r['p50_us']:,.0f} µs"
                          f"  p99 {r['p99_us']:,.0f} µs  [{r['lat_samples']}/{r['lat_expected']} samples, "
                          f"lost {r['lost']}]", flush=True)
        for n in counts:
            for rep in range(reps):
                for target in rotate(targets, rep):
                    with servers_of(target, versus) as started:
                        r = bench_roundtrip.session(started, n, rt_secs, cleanup,
                                                    redis_prefix=prefix_of("r", n, rep, target))
                    r["target"], r["rep"] = target, rep
                    rt.append(r)
                    redis_cpu = f", redis cpu {r['redis_cpu']:.0%}" if r.get("redis_cpu") is not None else ""
                    print(f"  round trip apps={n:<3} rep {rep} {target:9}: {r['rt_per_s']:>8,.0f} rt/s (server cpu "
                          f"{r['server_cpu']:.0%}, load cpu {r['load_cpu']:.0%}{redis_cpu})  p50 {r['p50_us']:,.0f} µs"
                          f"  p99 {r['p99_us']:,.0f} µs  [{r['errors']} errors, {r['stuck']} unanswered]", flush=True)
    finally:
        cleanup()
        removed = 0
        for kind, values in (("f", ns), ("r", counts)):
            for n in values:
                for rep in range(reps):
                    for target in ("redis2", VERSUS):
                        removed += c.redis_cleanup(prefix_of(kind, n, rep, target))
        print(f"(deleted {removed} Redis keys left under {prefix}-*)")

    def med(runs: list[dict[str, Any]], field: str, value: int, target: str, key: str) -> float:
        return c.median(r[key] for r in runs if r[field] == value and r["target"] == target)

    fan_summary, fan_rows = [], []
    for n in ns:
        s: dict[str, Any] = {"n": n}
        for t in targets:
            for key in ("throughput", "p50_us", "p99_us"):
                s[f"{t}_{key}"] = med(fan, "n", n, t, key)
        s["vs_hub"] = c.ratio(s["redis2_throughput"], s["hub_throughput"])
        s["vs_bare"] = c.ratio(s["redis2_throughput"], s["bare_throughput"])
        s["p99_vs_hub"] = c.ratio(s["redis2_p99_us"], s["hub_p99_us"])
        s["p99_vs_bare"] = c.ratio(s["redis2_p99_us"], s["bare_p99_us"])
        fan_summary.append(s)
        fan_rows.append([n, s["redis2_throughput"], s["hub_throughput"], s["bare_throughput"], s["vs_hub"],
                         s["vs_bare"], s["redis2_p50_us"], s["redis2_p99_us"], s["hub_p99_us"], s["bare_p99_us"],
                         s["p99_vs_bare"]])
    rt_summary, rt_rows = [], []
    for n in counts:
        s = {"apps": n}
        for t in targets:
            for key in ("rt_per_s", "p50_us", "p99_us"):
                s[f"{t}_{key}"] = med(rt, "apps", n, t, key)
        s["vs_hub"] = c.ratio(s["redis2_rt_per_s"], s["hub_rt_per_s"])
        s["vs_bare"] = c.ratio(s["redis2_rt_per_s"], s["bare_rt_per_s"])
        rt_summary.append(s)
        rt_rows.append([n, s["redis2_rt_per_s"], s["hub_rt_per_s"], s["bare_rt_per_s"], s["vs_hub"], s["vs_bare"],
                        s["redis2_p50_us"], s["hub_p50_us"], s["redis2_p99_us"], s["hub_p99_us"]])
    print()
    c.print_machine(info)
    print(f"with Redis, fan-out, medians of {reps} reps (msg/s at saturation; latency µs at 20 events/s)")
    print(c.table(["N", "2 nodes msg/s", "1 node msg/s", "bare msg/s", "x 1 node", "x bare", "2n p50", "2n p99",
                   "1n p99", "bare p99", "p99 x bare"], fan_rows))
    print(f"\nwith Redis, round trip, medians of {reps} reps (rt/s; latency µs)")
    print(c.table(["apps", "2 nodes rt/s", "1 node rt/s", "bare rt/s", "x 1 node", "x bare", "2n p50", "1n p50",
                   "2n p99", "1n p99"], rt_rows))
    if versus:
        print(f"\n{VERSUS} (two nodes from {versus}) against redis2 (two nodes from the tree), same runs")
        rows = []
        for fs in fan_summary:
            rows.append([f"fan-out N={fs['n']}", fs[f"{VERSUS}_throughput"], fs["redis2_throughput"],
                         c.ratio(fs[f"{VERSUS}_throughput"], fs["redis2_throughput"]),
                         c.ratio(fs[f"{VERSUS}_throughput"], fs["hub_throughput"]), fs["vs_hub"]])
        for rs in rt_summary:
            rows.append([f"round trip apps={rs['apps']}", rs[f"{VERSUS}_rt_per_s"], rs["redis2_rt_per_s"],
                         c.ratio(rs[f"{VERSUS}_rt_per_s"], rs["redis2_rt_per_s"]),
                         c.ratio(rs[f"{VERSUS}_rt_per_s"], rs["hub_rt_per_s"]), rs["vs_hub"]])
        print(c.table(["run", f"{VERSUS} /s", "redis2 /s", "x redis2", f"{VERSUS} x 1 node", "redis2 x 1 node"],
                      rows))
    path = c.save_results("redis", {"machine": info, "params": {"n": ns, "apps": counts, "reps": reps,
                                    "redis": c.REDIS_URL, "hub_flags": c.HUB_BENCH_FLAGS,
                                               "versus": versus},
                                    "fanout_summary": fan_summary, "roundtrip_summary": rt_summary,
                                    "fanout_runs": fan, "roundtrip_runs": rt})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
