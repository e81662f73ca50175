"""The wallboard in Chromium with 2,000 agents each changing state once a second.

The hub (``connect-bridge serve --open``, one process on core 0) serves
``static/``; load processes on core 1 join 2,000 lean providers (``common.WSConn``)
and publish one ``SetAgentState`` per agent per second, spread evenly over the
second, cycling each agent through Available, Busy, AfterCallWork, Break and
Lunch. Debian's Chromium (headless, the browser tests' flags, free to use both cores) opens
``wallboard.html?agents=*&control=1&perf=1`` as a supervisor of every agent,
and the page measures itself (``js/pages/wallboard-perf.js``):

* frame time: the interval between ``requestAnimationFrame`` callbacks, median,
  p99 and max (a frame whose work overran the display period shows as a long
  interval; headless Chromium paces frames at 60 Hz, 16.7 ms);
* long tasks (> 50 ms) Chromium reported, their count and total time;
* events applied per second (frames the page's model took) and draws.

Variants, each on a fresh page against the same floor:

* ``batched``: the page as shipped: each frame applied to the model at once,
  the rows drawn once per animation frame, only those in view;
* ``batched, longest first``: the same with the list sorted by time in state,
  so rows move on every frame (the order is computed again per frame);
* ``per event``: ``&batch=0``, the baseline: the counts and rows are drawn at
  every event (still a virtual list; what batching saves is the per-event work).

Beside them a bare supervisor (a ``WSConn`` in a load process) counts what
the hub delivered in the same window: the rate the page had to keep up with.

    .venv/bin/python benchmarks/bench_wallboard.py             # ~2 min
    .venv/bin/python benchmarks/bench_wallboard.py --quick     # ~1 min
    .venv/bin/python benchmarks/bench_wallboard.py --agents 2000 --seconds 15 --reps 2
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
from typing import Any

import orjson

import common as c

CHROMIUM = "/usr/bin/chromium"
#: As tests/browser/conftest.py: no sandbox (root), none of Chromium's background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: (state, Streams type, coarse state) each agent goes through, one a second.
CYCLE = [("Available", "routable", "Ready"), ("Busy", "system", "Not_Ready"),
         ("AfterCallWork", "system", "Not_Ready"), ("Available", "routable", "Ready"),
         ("Break", "not_routable", "Not_Ready"), ("Lunch", "not_routable", "Not_Ready")]

VARIANTS = [("batched", "", None), ("batched, longest first", "", "longest"), ("per event", "&batch=0", None)]


def state_event(agent: str, step: int) -> bytes:
    """The seed SetAgentState for ``agent`` at ``step`` of its cycle, begun now."""
    name, type_, coarse = CYCLE[step % len(CYCLE)]
    event = c.seed_event()
    message, data = event["message"], event["message"]["data"]
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    data.update(loginName=agent, name=agent, state=coarse, type=type_, stateChangeTime=now)
    if type_ == "not_routable":
        data["reasonCode"] = {"id": name}
    else:
        data.pop("reasonCode", None)
    message["event"] = name
    message["rules"]["ResponseActual"].update(type=type_, name=name, startTimestamp=now)
    return orjson.dumps(event)


class Floor(c.Handler):
    """Providers of a share of the agents; publishes their states at a steady rate."""

    def __init__(self) -> None:
        super().__init__()
        self.tally = c.Tally()
        self.agents: list[str] = []
        self.step: list[int] = []

    async def connect(self, port: int, agents: list[str]) -> int:
        self.agents = agents
        self.conns = await c.open_clients("127.0.0.1", port, [("provider", a) for a in agents], self.tally)
        self.step = [index % len(CYCLE) for index in range(len(agents))]
        for index, conn in enumerate(self.conns):
            conn.send(state_event(agents[index], self.step[index]))
        return len(self.conns)

    async def run(self, rate: float, seconds: float, phase: float) -> int:
        """Each agent publishes ``rate`` states a second for ``seconds``, spread evenly; ``phase``
        (0-1) offsets this process's agents within the period so processes interleave."""
        loop = asyncio.get_running_loop()
        n = len(self.conns)
        total = int(seconds * rate * n)
        gap = 1 / (rate * n)
        start = loop.time() + 0.05 + phase * gap
        sent = 0
        while sent < total:
            now = loop.time()
            while sent < total and start + sent * gap <= now:
                index = sent % n
                self.step[index] += 1
                self.conns[index].send(state_event(self.agents[index], self.step[index]))
                sent += 1
            await asyncio.sleep(0.004)
        return sent


class Supervisor(c.Handler):
    """A bare supervisor of every agent: counts the frames the hub delivers."""

    def __init__(self) -> None:
        super().__init__()
        self.tally = c.Tally()

    async def connect(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: c.WSConn("127.0.0.1", port, self.tally), "127.0.0.1", port)
        await asyncio.wait_for(conn.opened, 30)
        conn.send(orjson.dumps({"channel": "Bridge", "topic": "Session", "subtopic": "Hello", "source": "bench",
                                "data": {"role": "supervisor", "agents": ["*"]}}))
        await asyncio.wait_for(conn.first_text, 30)
        self.conns = [conn]

    async def frames(self) -> int:
        return self.tally.frames


def renderer_metrics(cdp: Any) -> dict[str, float]:
    """Chromium's own counters for the page (seconds of main-thread time since it started)."""
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def measure(browser: Any, url: str, sort: str | None, agents: int, floors: list[c.Worker],
            supervisor: c.Worker, args: argparse.Namespace, server: c.Server) -> dict[str, Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("(n) => window.connectBridgeWallboard && "
                           "window.connectBridgeWallboard.floor.agents.size >= n", arg=agents, timeout=60_000)
    if sort:
        page.select_option("#wb-sort", sort)
    for index, worker in enumerate(floors):
        worker.send("run", args.rate, args.warmup + args.seconds + 0.5, index / len(floors))
    cdp = page.context.new_cdp_session(page)
    cdp.send("Performance.enable")
    time.sleep(args.warmup)
    before = renderer_metrics(cdp)
    page.evaluate("() => window.wallboardPerf.reset()")
    delivered0 = supervisor.call("frames")
    hub_cpu0, t0 = server.cpu(), time.monotonic()
    time.sleep(args.seconds)
    figures = page.evaluate("() => window.wallboardPerf.snapshot()")
    after = renderer_metrics(cdp)
    # Where the renderer's main thread went, ms per second: script, style, layout, and all tasks.
    for key in ("ScriptDuration", "RecalcStyleDuration", "LayoutDuration", "TaskDuration"):
        figures[key] = 1000 * (after[key] - before[key]) / figures["seconds"]
    delivered = supervisor.call("frames") - delivered0
    window = time.monotonic() - t0
    hub_share = (server.cpu() - hub_cpu0) / window
    sent = sum(worker.result("run", timeout=args.seconds + 60) for worker in floors)
    page.close()
    if errors:
        raise RuntimeError(f"the page failed: {errors}")
    figures["delivered_per_s"] = delivered / window
    # What the providers managed to publish (a starved load core publishes less than asked).
    figures["published_per_s"] = sent / (args.warmup + args.seconds + 0.5)
    figures["hub_cpu"] = hub_share
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1.0, help="States per agent per second (default 1).")
    parser.add_argument("--seconds", type=float, default=None, help="Measured window per variant (default 10, quick 5).")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--procs", type=int, default=2, help="Load processes for the providers.")
    args = parser.parse_args()
    args.seconds = args.seconds or (5.0 if args.quick else 10.0)
    reps = args.reps or (1 if args.quick else 2)
    cleanup, info = c.begin(args)
    from playwright.sync_api import sync_playwright

    hub = cleanup.add(c.start_hub(extra=["--static", str(c.ROOT / "static")], log_name="hub-wallboard"))
    names = [f"agent{i + 1}" for i in range(args.agents)]
    floors = [cleanup.add(c.Worker(Floor)) for _ in range(args.procs)]
    shares = [names[i::args.procs] for i in range(args.procs)]
    joined = sum(worker.call("connect", hub.port, share, timeout=300) for worker, share in zip(floors, shares, strict=True))
    supervisor = cleanup.add(c.Worker(Supervisor))
    supervisor.call("connect", hub.port)
    print(f"{joined} providers joined; {args.rate:g} state/s each; {args.seconds:g} s measured per variant, "
          f"{reps} repetition(s)", flush=True)

    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in VARIANTS}
    # Chromium inherits this process's CPU affinity: let it use every core, as a browser on its
    # own machine would, rather than share the load core with the providers.
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        os.sched_setaffinity(0, pinned)
        try:
            # A first window on a fresh browser was seen to carry no load at all (the
            # providers' sends did not reach the hub while Chromium settled): measure once
            # and discard it, so that no variant pays for being first.
            warmup_url = f"http://127.0.0.1:{hub.port}/wallboard.html?agents=*&control=1&perf=1"
            measure(browser, warmup_url, None, args.agents, floors, supervisor, args, hub)
            for rep in range(reps):
                order = VARIANTS if rep % 2 == 0 else list(reversed(VARIANTS))
                for label, flag, sort in order:
                    url = f"http://127.0.0.1:{hub.port}/wallboard.html?agents=*&control=1&perf=1{flag}"
                    figures = measure(browser, url, sort, args.agents, floors, supervisor, args, hub)
                    results[label].append(figures)
                    print(f"  {label:<24} median {figures['medianMs']:.1f} ms, p99 {figures['p99Ms']:.1f} ms, "
                          f"max {figures['maxMs']:.1f} ms, long tasks {figures['longTasks']}, "
                          f"{figures['eventsPerSecond']:.0f} events/s applied, {figures['draws']} draws "
                          f"({figures['drawMs']:.0f} ms drawing); main thread per s: script "
                          f"{figures['ScriptDuration']:.0f} ms, style {figures['RecalcStyleDuration']:.0f} ms, "
                          f"layout {figures['LayoutDuration']:.0f} ms, all tasks {figures['TaskDuration']:.0f} ms; "
                          f"published {figures['published_per_s']:.0f}/s, bare supervisor got {figures['delivered_per_s']:.0f}/s",
                          flush=True)
        finally:
            browser.close()
    cleanup()

    def med(label: str, key: str) -> float:
        return c.median(r[key] for r in results[label] if r[key] is not None)

    rows = [[label, f"{med(label, 'medianMs'):.1f}", f"{med(label, 'p99Ms'):.1f}", f"{med(label, 'maxMs'):.1f}",
             f"{med(label, 'longTasks'):.0f}", f"{med(label, 'longTaskMs'):.0f}",
             f"{med(label, 'eventsPerSecond'):.0f}", f"{med(label, 'draws') / args.seconds:.1f}",
             f"{med(label, 'published_per_s'):.0f}", f"{med(label, 'delivered_per_s'):.0f}",
             f"{100 * med(label, 'hub_cpu'):.0f}%"]
            for label, _, _ in VARIANTS]
    print()
    print(f"wallboard, {args.agents} agents x {args.rate:g} state/s, 1280x800, medians of {reps} run(s):")
    print(c.table(["variant", "frame median ms", "frame p99 ms", "frame max ms", "long tasks", "long-task ms",
                   "events/s applied", "draws/s", "published/s", "bare supervisor/s", "hub CPU"], rows))
    path = c.save_results("wallboard", {"machine": info, "args": vars(args), "results": results})
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
