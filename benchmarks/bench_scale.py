"""Scale curve (issue 15, goal 6): fan-out msgs/s and server RSS at 1,000 / 5,000 / 10,000 / 20,000 apps.

Layout: **all apps belong to one agent with one provider**, as in ``bench_fanout.py``, so every
event is delivered N times and the work per event grows with N. The bare ``websockets``
broadcast server (``baseline_servers.py broadcast``) can only relay to every app it holds, so
this is also the only layout in which the hub, the bare server and the Centrifuge peer (one
channel, ``GOMAXPROCS=1``) do the same work. A per-delivery cost that stays flat as N grows
shows as a flat msgs/s; what grows with the number of connections (cache misses over larger
per-connection state, the event loop's bookkeeping, memory) shows as msgs/s falling with N.

For each step and each repetition, the hub, the bare server and the peer run in turn (order
rotated at every repetition), each a fresh process pinned to core 0 (``connect-bridge serve``
with ``common.HUB_BENCH_FLAGS``, as the other benchmarks). The apps are spread over several load
processes on core 1 (``--app-procs``; default one per 5,000 apps, at least 2), which connect one
after the other; the provider is one more load process. Per run:

1. RSS (``VmRSS`` from ``/proc/PID/status``) of the fresh server: the base;
2. the apps and the provider connect; once quiet, RSS again: **idle**; KiB/app = (idle - base) / N;
3. two events go through as warm-up, read by every app;
4. **saturation**: the provider (``bench_fanout.Provider``) sends the seed SetAgentState as fast as
   the server takes it, at most ``ahead`` events ahead of what the apps have counted, for
   ``--blast`` seconds, then stops; the run's span ends when the server goes idle (its threads'
   ``/proc/PID/task/*/schedstat`` stop moving: everything sent is written). msgs/s = events sent x
   apps / span. Start and end of the span hold an exact count (nothing in flight at the start,
   everything written at the end), so the figure does not depend on when the apps happen to read;
   the apps then read what is left and every delivery is checked (``lost``);
5. RSS once more after the fan-out and the drain: **after**.

The apps read with ``SO_RCVLOWAT`` of 16 frames and the provider keeps 32 events ahead
(``--ahead``), at every step, as ``bench_fanout.py`` does at N = 1,000: the same settings
everywhere, so that the curve shows the server and not a change of load settings. Up to ~48
events per app wait in the kernel's socket buffers (at 20,000 apps about 1,000,000 frames: the
bare server writes one segment per frame, check the printed TCP memory against
``/proc/sys/net/ipv4/tcp_mem``); 64 events ahead was tried at 10,000 apps and is not used: in one
probe the hub was then runnable 96% instead of 82%, but the bare server slowed down and the peer
dropped apps. Each run prints the share of the span the server
was runnable (``/proc/PID/schedstat``: 100% = it never waited for input, so it is what
saturates; n/a for the peer, whose Go threads one schedstat does not cover), the CPU share of the
load processes together on core 1 (well below 100%: the load kept up), and the kernel's TCP
memory at the end of the blast.

Open files: the script raises ``RLIMIT_NOFILE`` soft to hard, and the hard limit too, to what the
largest step needs, when it may (``CAP_SYS_RESOURCE``; the 2-core machine's container has a hard
limit of 20,000 without it, so there the 20,000 step is measured with 19,936 apps, and says so); every process it starts raises its own soft limit (to at
most 65,536, ``common.raise_nofile``). A step the limit cannot hold is skipped with one line.

With thousands of apps each app gets only a few events a second, so 16 frames can take longer
than a server waits for the pong to its ping (Centrifuge: 2.8 s after each ping, every 25 s;
websockets: 20 s): while the low-water mark is up, every app also reads what it has once a
second (the mark drops to one byte for 5 ms; ``ScaleApps``). Without that, the peer closed
7,000-9,000 of 10,000 apps in a first full run. A run in which the server still closed apps or
lost deliveries is printed and left out of the medians.

The peer is skipped with one line when its binary is missing (``centrifuge_peer.problem``);
``--no-peer`` leaves it out. Prints medians with min-max over the repetitions, hub/bare and
hub/peer ratios (also per server CPU-second), and each side's msgs/s relative to its first step;
writes ``results/scale-<time>.json`` and ``scale-latest.json``.

    .venv/bin/python benchmarks/bench_scale.py                 # 4 steps, 3 reps, three sides  ~9-14 min
    .venv/bin/python benchmarks/bench_scale.py --quick         # 2 reps, shorter blasts
    .venv/bin/python benchmarks/bench_scale.py --steps 1000 5000 --no-peer --reps 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing as mp
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_fanout as fan
import centrifuge_peer as cp
import common as c

STEPS = [1000, 5000, 10000, 20000]
#: Apps per load process by default (at least two processes).
APPS_PER_PROC = 5000
#: File descriptors a server needs besides one per app: provider, listener, stdio, log, epoll, spare.
FD_MARGIN = 64


# --- /proc readings ---------------------------------------------------------------------

def vm_rss(pid: int) -> int:
    """VmRSS of a process, bytes."""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def settle_rss(pid: int, seconds: float) -> int:
    """VmRSS after ``seconds``, once two readings 0.25 s apart agree (at most 2 s more)."""
    time.sleep(seconds)
    last = vm_rss(pid)
    for _ in range(8):
        time.sleep(0.25)
        now = vm_rss(pid)
        if now == last:
            break
        last = now
    return last


def busy_ns(pid: int) -> int:
    """Nanoseconds all threads of a process spent running or runnable (waiting for a CPU)."""
    total = 0
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            running, waiting = c.proc_sched_ns(pid, tid)
            total += running + waiting
    return total


def wait_idle(pid: int, *, poll: float = 0.01, quiet: float = 0.1, limit: float = 120.0) -> tuple[float, int]:
    """Wait until the server has done nothing for ``quiet`` s; return (monotonic time, busy ns) of
    the last poll at which it was still busy. Busy = runnable over more than a fifth of a poll
    interval (an idle Go runtime still wakes now and then for microseconds)."""
    last_t, last_b = time.monotonic(), busy_ns(pid)
    active_t, active_b = last_t, last_b
    deadline = last_t + limit
    while True:
        time.sleep(poll)
        t, b = time.monotonic(), busy_ns(pid)
        if b - last_b > (t - last_t) * 1e9 / 5:
            active_t, active_b = t, b
        elif t - active_t >= quiet or t > deadline:
            return active_t, active_b
        last_t, last_b = t, b


def tcp_mem_bytes() -> int:
    """Memory the kernel holds in TCP socket buffers, all sockets (``/proc/net/sockstat``)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * c.PAGE
    return 0


# --- open files -----------------------------------------------------------------------

def raise_open_files(need: int) -> tuple[int, int, int]:
    """Soft limit to the hard one, and the hard one to ``need`` when this process may (CAP_SYS_RESOURCE);
    returns (soft, hard, hard before)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = hard
    if hard != resource.RLIM_INFINITY and hard < need:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard, before


def child_open_files(hard: int) -> int:
    """The soft limit each started process gives itself (``common.raise_nofile()``)."""
    return 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)


# --- one run ------------------------------------------------------------------------------

#: Events the provider keeps ahead of what the apps have counted (``--ahead``): bench_fanout's at N >= 625.
AHEAD = 32


#: While SO_RCVLOWAT holds reads back, every app still reads what it has this often (seconds).
POKE_EVERY = 1.0


class ScaleApps(fan.Apps):
    """``bench_fanout.Apps`` whose ``set_lowat`` leaves out connections already closed (a server
    that drops an app must not end the whole run: the closed ones are counted and printed), and
    that, while the low-water mark is above one byte, lets every app read what it has once per
    :data:`POKE_EVERY`: with thousands of apps an app gets a few events a second, so 16 frames can
    take longer than a server waits for the pong to its ping (the peer: 2.8 s)."""

    def __init__(self, shared: Any, slot: int, frames_shared: Any = None) -> None:
        super().__init__(shared, slot, frames_shared)
        self.poker: asyncio.Task[None] | None = None

    def _apply(self, nbytes: int) -> None:
        for conn in self.conns:
            if not conn.closed:
                with contextlib.suppress(OSError):
                    conn.set_lowat(nbytes)

    async def set_lowat(self, nbytes: int) -> None:
        if self.poker is not None:
            self.poker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.poker
            self.poker = None
        self._apply(nbytes)
        if nbytes > 1:
            self.poker = asyncio.create_task(self._poke(nbytes))

    async def _poke(self, nbytes: int) -> None:
        # Lowering SO_RCVLOWAT wakes the sockets that hold data (tcp_set_rcvlowat), so each reads
        # what it has, and answers a ping, within the few milliseconds before the mark goes back.
        while True:
            await asyncio.sleep(POKE_EVERY)
            self._apply(1)
            await asyncio.sleep(0.005)
            self._apply(nbytes)


def session(target: str, n: int, procs: int, blast: float, ahead: int, cleanup: c.Cleanup) -> dict[str, Any]:
    """One run of ``target`` (hub, bare or peer) with ``n`` apps of one agent."""
    peer = target == "peer"
    if target == "hub":
        server = cleanup.add(c.start_hub(log_name="scale-hub"))
    elif target == "bare":
        server = cleanup.add(c.start_baseline("broadcast", log_name="scale-bare"))
    else:
        server = cleanup.add(cp.start_peer(log_name="scale-peer"))
    shared = mp.RawArray("q", procs)  # messages counted, per load process
    frames_shared = mp.RawArray("q", procs)  # frames (the peer's apps; unused for the others)
    apps = [cleanup.add(c.Worker(ScaleApps, shared, i, frames_shared)) for i in range(procs)]
    provider = cleanup.add(c.Worker(fan.Provider, shared))
    workers = [*apps, provider]

    def total() -> int:
        return sum(shared)

    try:
        rss_base = settle_rss(server.pid, 0.3)
        t = time.monotonic()
        connected = 0
        # One load process after the other: at most 50 handshakes in flight (the listen backlog).
        for w, size in zip(apps, [n // procs + (1 if i < n % procs else 0) for i in range(procs)], strict=True):
            connected += w.call("connect", [server.port], size, fan.AGENT, peer, timeout=600)
        provider.call("connect", server.port, fan.AGENT, peer)
        connect_s = time.monotonic() - t
        c.wait_quiet(total)
        rss_idle = settle_rss(server.pid, 1.0)

        template = c.timestamped_event_template()
        payload = c.timestamped_event(0, template)
        frame_len = len(payload) + 4  # the event as the hub and bare send it (4-byte header)
        if peer:  # the same event as the data of one publish command per frame
            template = cp.publish_template(cp.channel_of(fan.AGENT), template)
            payload = c.timestamped_event(0, template)
        base = total()
        warm = provider.call("paced", 20.0, 0.1, template)  # 2 events through the whole path
        c.wait_for_count(total, base + warm * connected, limit=60)
        wait_idle(server.pid)

        lowat = fan.LOWAT_FRAMES
        c.call_all(apps, "set_lowat", lowat * frame_len)
        base = total()
        cpu = c.CpuWindow(server.pid, [w.pid for w in workers])
        t0, b0 = time.monotonic(), busy_ns(server.pid)
        provider.call("start_blast", payload, connected, ahead)
        time.sleep(blast)
        tcp_mem = tcp_mem_bytes()
        rss_blast = vm_rss(server.pid)
        sent = provider.call("stop_blast")
        t1, b1 = wait_idle(server.pid)
        shares = cpu.end()  # its window also has the ~0.1 s of idle that wait_idle needs
        c.call_all(apps, "set_lowat", 1)
        delivered = c.wait_for_count(total, base + sent * connected, limit=60)
        lost = base + sent * connected - delivered
        rss_after = settle_rss(server.pid, 0.5)
        closed = sum(s["closed"] for s in c.call_all(apps, "status"))
        span = t1 - t0
        msgs = sent * connected
        return {
            "target": target, "n": n, "connected": connected, "app_procs": procs, "connect_s": connect_s,
            "lowat_frames": lowat, "events_ahead": ahead, "blast_s": blast, "span_s": span, "events": sent,
            "throughput": msgs / span,
            "per_server_cpu_s": msgs / max(shares["server_cpu"] * shares["wall"], 1e-9),
            "server_runnable": float("nan") if peer else (b1 - b0) / 1e9 / span,
            "server_cpu": shares["server_cpu"], "server_core_busy": shares["server_core_busy"],
            "load_cpu": shares["load_cpu"], "load_runnable": shares["load_runnable"],
            "tcp_mem_bytes": tcp_mem, "lost": lost, "closed_early": closed,
            "rss_base": rss_base, "rss_idle": rss_idle, "rss_blast": rss_blast, "rss_after": rss_after,
            "idle_kib_per_app": (rss_idle - rss_base) / max(connected, 1) / 1024,
        }
    finally:
        cleanup.stop(*workers, server)


# --- output ---------------------------------------------------------------------------------

def spread(values: list[float], scale: float = 1.0, fmt: str = ",.0f") -> str:
    """'median (min-max)' of the values (divided by ``scale``)."""
    values = [v / scale for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    med = c.median(values)
    if len(values) == 1:
        return format(med, fmt)
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def counted(run: dict[str, Any]) -> bool:
    """A run whose server delivered everything to every app (one that dropped apps or
    deliveries did less work than it was given: it is printed, and left out of the medians)."""
    return bool(run["lost"] == 0 and run["closed_early"] == 0)


def summarize(runs: list[dict[str, Any]], steps: list[int], sides: list[str]) -> list[dict[str, Any]]:
    """Per step: medians, ranges and ratios over the counted runs."""
    out = []
    for n in steps:
        s: dict[str, Any] = {"n": n}
        for side in sides:
            every = [r for r in runs if r["n"] == n and r["target"] == side]
            mine = [r for r in every if counted(r)]
            s[f"{side}_left_out"] = len(every) - len(mine)
            if not mine:
                continue
            for key in ("throughput", "per_server_cpu_s", "rss_idle", "rss_after", "rss_blast",
                        "idle_kib_per_app", "server_runnable", "server_cpu", "load_cpu", "span_s", "connect_s"):
                values = [r[key] for r in mine]
                s[f"{side}_{key}"] = c.median(values)
                s[f"{side}_{key}_range"] = [min(values), max(values)]
            s[f"{side}_lost"] = sum(r["lost"] for r in mine)
            s[f"{side}_reps"] = len(mine)
        for other in ("bare", "peer"):
            if f"{other}_throughput" in s and "hub_throughput" in s:
                s[f"hub_over_{other}"] = c.ratio(s["hub_throughput"], s[f"{other}_throughput"])
                s[f"hub_over_{other}_per_cpu_s"] = c.ratio(s["hub_per_server_cpu_s"], s[f"{other}_per_server_cpu_s"])
                s[f"hub_over_{other}_rss_idle"] = c.ratio(s["hub_rss_idle"], s[f"{other}_rss_idle"])
                s[f"hub_over_{other}_rss_after"] = c.ratio(s["hub_rss_after"], s[f"{other}_rss_after"])
        out.append(s)
    first = {side: next((s[f"{side}_throughput"] for s in out if f"{side}_throughput" in s), float("nan"))
             for side in sides}
    for s in out:
        for side in sides:
            if f"{side}_throughput" in s:
                s[f"{side}_vs_first_step"] = c.ratio(s[f"{side}_throughput"], first[side])
    return out


def print_tables(runs: list[dict[str, Any]], summary: list[dict[str, Any]], sides: list[str], reps: int) -> None:
    def pick(n: int, side: str, key: str) -> list[float]:
        return [r[key] for r in runs if r["n"] == n and r["target"] == side and counted(r)]

    peer = "peer" in sides
    head = ["N"] + [f"{side} msg/s" for side in sides] + ["hub/bare"] + (["hub/peer"] if peer else []) + [
        "hub/bare per CPU-s"] + (["hub/peer per CPU-s"] if peer else []) + [
        "vs first step " + "/".join(sides), "srv runnable " + "/".join(s for s in sides if s != "peer"),
        "load cpu (max)"]
    rows = []
    for s in summary:
        n = s["n"]
        rows.append([n] + [spread(pick(n, side, "throughput")) for side in sides]
                    + [s.get("hub_over_bare", float("nan"))] + ([s.get("hub_over_peer", float("nan"))] if peer else [])
                    + [s.get("hub_over_bare_per_cpu_s", float("nan"))]
                    + ([s.get("hub_over_peer_per_cpu_s", float("nan"))] if peer else [])
                    + [" / ".join(f"{s.get(f'{side}_vs_first_step', float('nan')):.2f}" for side in sides),
                       " / ".join(f"{s.get(f'{side}_server_runnable', float('nan')):.0%}" for side in sides
                                  if side != "peer"),
                       f"{max((v for side in sides for v in pick(n, side, 'load_cpu')), default=float('nan')):.0%}"])
    print(f"\nscale curve, fan-out (one provider, N apps of one agent), medians of {reps} reps "
          f"(min-max); msg/s = events x apps / span until the server is idle")
    print(c.table(head, rows))

    head = ["N"] + [f"{side} {what}" for side in sides for what in ("idle MiB", "after MiB", "KiB/app")] + [
        "hub/bare idle", "hub/bare after"] + (["hub/peer idle", "hub/peer after"] if peer else [])
    rows = []
    for s in summary:
        n = s["n"]
        row: list[Any] = [n]
        for side in sides:
            row += [spread(pick(n, side, "rss_idle"), 2**20, ",.1f"), spread(pick(n, side, "rss_after"), 2**20, ",.1f"),
                    spread(pick(n, side, "idle_kib_per_app"), 1.0, ".1f")]
        row += [s.get("hub_over_bare_rss_idle", float("nan")), s.get("hub_over_bare_rss_after", float("nan"))]
        if peer:
            row += [s.get("hub_over_peer_rss_idle", float("nan")), s.get("hub_over_peer_rss_after", float("nan"))]
        rows.append(row)
    print(f"\nserver RSS (VmRSS), medians of {reps} reps (min-max): idle = all apps connected, after = after the "
          f"fan-out and its drain; KiB/app = (idle - fresh process) / N")
    print(c.table(head, rows))


# --- main ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.set_defaults(timeout=3600)
    parser.add_argument("--steps", type=int, nargs="+", default=STEPS, help="App counts (default 1000 5000 10000 20000).")
    parser.add_argument("--app-procs", type=int, default=None,
                        help=f"Load processes holding the apps (default one per {APPS_PER_PROC:,} apps, at least 2).")
    parser.add_argument("--blast", type=float, default=None, help="Seconds the provider sends (default 3, quick 2).")
    parser.add_argument("--ahead", type=int, default=AHEAD,
                        help=f"Events the provider keeps ahead of the apps' count (default {AHEAD}).")
    parser.add_argument("--no-peer", action="store_true", help="Leave out the Centrifuge peer (hub and bare only).")
    args = parser.parse_args()
    steps = sorted(args.steps)
    reps = args.reps or (2 if args.quick else 3)
    blast = args.blast or (2.0 if args.quick else 3.0)

    soft, hard, hard_before = raise_open_files(max(steps) + FD_MARGIN + 1024)
    started = time.monotonic()
    cleanup, info = c.begin(args, nofile=soft)
    children = child_open_files(hard)
    info["open_files"] = {"soft": soft, "hard": hard, "hard_before": hard_before, "children": children}
    print(f"scale: steps {steps}, {reps} reps, blast {blast:g} s; open files: script {soft}, hard limit {hard}"
          + (f" (raised from {hard_before})" if hard != hard_before else "") + f", started processes {children}",
          flush=True)
    sides, peer_problem = cp.sides(args.no_peer, info)

    runs: list[dict[str, Any]] = []
    skipped: list[str] = []
    try:
        for n in steps:
            if n + FD_MARGIN > children:
                fits = children - FD_MARGIN
                if fits < 0.95 * n:
                    line = (f"N={n} skipped: a server holding {n:,} apps needs about {n + FD_MARGIN:,} open files, "
                            f"the limit is {children:,} (hard {hard:,})")
                    print(line, flush=True)
                    skipped.append(line)
                    continue
                # Within 5%: measured at what the limit holds, and said (the step is labelled by its real count).
                line = (f"N={n} measured with {fits:,} apps: a server holding {n:,} needs about {n + FD_MARGIN:,} "
                        f"open files, the limit is {children:,} (hard {hard:,}; raising it needs CAP_SYS_RESOURCE)")
                print(line, flush=True)
                skipped.append(line)
                n = fits
            procs = args.app_procs or max(2, -(-n // APPS_PER_PROC))
            for rep in range(reps):
                for target in sides[rep % len(sides):] + sides[:rep % len(sides)]:  # rotated each rep
                    try:
                        r = session(target, n, procs, blast, args.ahead, cleanup)
                    except (RuntimeError, TimeoutError, OSError) as exc:  # one failed run, said in one line
                        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
                        print(f"  N={n:<6} rep {rep} {target:4}: FAILED: {first}", flush=True)
                        skipped.append(f"N={n} rep {rep} {target}: failed: {first}")
                        continue
                    r["rep"] = rep
                    runs.append(r)
                    runnable = "n/a" if target == "peer" else f"{r['server_runnable']:.0%}"
                    print(f"  N={n:<6} rep {rep} {target:4}: {r['throughput']:>9,.0f} msg/s "
                          f"({r['events']} events in {r['span_s']:.2f} s; {r['per_server_cpu_s']:>9,.0f} per server "
                          f"CPU-s; server cpu {r['server_cpu']:.0%}, runnable {runnable}; load cpu "
                          f"{r['load_cpu']:.0%}, runnable {r['load_runnable']:.0%}; tcp mem "
                          f"{r['tcp_mem_bytes'] / 2**20:,.0f} MiB)  RSS MiB base {r['rss_base'] / 2**20:.1f}, "
                          f"idle {r['rss_idle'] / 2**20:,.1f} ({r['idle_kib_per_app']:.1f} KiB/app), "
                          f"after {r['rss_after'] / 2**20:,.1f}  [{r['connected']} apps in {procs} procs, "
                          f"connected in {r['connect_s']:.1f} s; lost {r['lost']}, {r['closed_early']} closed]",
                          flush=True)
    finally:
        cleanup()

    summary = summarize(runs, sorted({r["n"] for r in runs}), sides)
    print()
    c.print_machine(info)
    print_tables(runs, summary, sides, reps)
    for r in runs:
        if not counted(r):
            print(f"left out of the medians: N={r['n']} rep {r['rep']} {r['target']}: {r['closed_early']} apps "
                  f"closed by the server, {r['lost']:,} deliveries lost")
    for line in skipped:
        print(line)
    if peer_problem:
        print(peer_problem)
    wall = time.monotonic() - started
    print(f"wall time {wall / 60:.1f} min")
    path = c.save_results("scale", {"machine": info, "params": {
        "steps": steps, "reps": reps, "blast_s": blast, "hub_flags": c.HUB_BENCH_FLAGS,
        "lowat_frames": fan.LOWAT_FRAMES, "ahead": args.ahead, "peer": peer_problem or "GOMAXPROCS=1", "wall_s": wall},
        "skipped": skipped, "summary": summary, "runs": runs})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
