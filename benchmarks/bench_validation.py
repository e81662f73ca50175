"""Validation: µs per envelope through the hub's own validation path, seed request and seed event.

In one process pinned to core 0 (no sockets), timed with ``perf_counter_ns``
over loops of thousands of calls, repeated; the median and the best of the
repetitions are printed. Rows:

* ``Catalog.check``: the check on a parsed envelope (cached kind/sender
  decision + the compiled jsonschema-rs validator) -- the validation itself;
* ``loads + Catalog.check``: parse the frame with orjson, then check it;
* ``Router.receive``: the whole routing decision for a frame: parse, kind,
  check, metrics hook, outputs (for a request: the id the hub adds when the
  seed has none, the pending-request table). Built exactly as ``HubServer``
  builds it, with the Prometheus ``frames_in`` counter as ``on_frame``;
* baselines: ``orjson.loads`` alone (what the bare forwarder pays per frame)
  and the compiled validator's ``is_valid`` alone (the floor for validation).

Goal: at most 2 µs per envelope.

    .venv/bin/python benchmarks/bench_validation.py          # ~15 s
    .venv/bin/python benchmarks/bench_validation.py --quick
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as c
import orjson

import bridge
from bridge.hub.core.pending import PendingRequests
from bridge.hub.core.outputs import Forward, Publish
from bridge.hub.core.router import Peer, Router
from bridge.hub.metrics import Metrics
from bridge.protocol import Role, kind_of
from bridge.protocol.catalog import Catalog


def per_call_ns(run_batch: Callable[[], float], repeat: int) -> list[float]:
    """``run_batch`` does some calls and returns ns spent per call (its own clock)."""
    out: list[float] = []
    for _ in range(repeat):
        out.append(run_batch())
    return out


def loop(fn: Callable[[], Any], number: int) -> Callable[[], float]:
    def batch() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(number):
            fn()
        return (time.perf_counter_ns() - t0) / number
    return batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.common_args(parser)
    args = parser.parse_args()
    c.apply_common(args)
    number = 5_000 if args.quick else 20_000
    repeat = args.reps or (5 if args.quick else 9)
    c.pin(c.SERVER_CORE)
    c.set_nice(c.NICE)
    info = c.machine_info()
    info["bridge_imported_from"] = str(Path(bridge.__file__).parent)
    c.print_machine(info)
    print(f"bridge imported from {info['bridge_imported_from']}")

    catalog = Catalog.load()
    metrics = Metrics(dict)
    router = Router(catalog, secret=None, open_mode=True, on_frame=metrics.frame_in)
    bare_router = Router(catalog, secret=None, open_mode=True)
    app = Peer("c-app", Role.APP, "bench", ("agent1",))
    provider = Peer("c-provider", Role.PROVIDER, "bench", ("agent1",))

    request = c.seed_request()
    event = c.seed_event()
    request_frame = orjson.dumps(request).decode()
    event_frame = orjson.dumps(event).decode()
    request_kind, event_kind = kind_of(request), kind_of(event)
    assert request_kind is not None and event_kind is not None
    req_env, ev_env = orjson.loads(request_frame), orjson.loads(event_frame)
    with_id_probe = orjson.dumps({**request, "id": "probe"}).decode()
    assert catalog.check(req_env, request_kind, Role.APP).problem is None
    assert catalog.check(ev_env, event_kind, Role.PROVIDER).problem is None
    assert isinstance(router.receive(provider, event_frame)[0], Publish)
    assert isinstance(router.receive(app, with_id_probe)[0], Forward)
    router.pending = PendingRequests()
    request_spec = catalog.spec(request_kind, "request")
    event_spec = catalog.spec(event_kind, "event")
    assert request_spec is not None and event_spec is not None

    # Frames with ids of their own, unique per call (a request id in flight twice is refused).
    with_id = []
    for i in range(number):
        r = dict(request)
        r["id"] = f"r-{i}"
        with_id.append(orjson.dumps(r).decode())

    def receive_requests(r: Router, frames: list[str] | None) -> Callable[[], float]:
        def batch() -> float:
            r.pending = PendingRequests()
            receive = r.receive
            t0 = time.perf_counter_ns()
            if frames is None:
                for _ in range(number):
                    receive(app, request_frame)
            else:
                for frame in frames:
                    receive(app, frame)
            return (time.perf_counter_ns() - t0) / number
        return batch

    check = catalog.check
    loads = orjson.loads
    cases: list[tuple[str, str, str, Callable[[], float]]] = [
        # (envelope, path, group, batch)
        ("request", "Catalog.check", "hub", loop(lambda: check(req_env, request_kind, Role.APP), number)),
        ("event", "Catalog.check", "hub", loop(lambda: check(ev_env, event_kind, Role.PROVIDER), number)),
        ("request", "loads + Catalog.check", "hub",
         loop(lambda: check(loads(request_frame), request_kind, Role.APP), number)),
        ("event", "loads + Catalog.check", "hub",
         loop(lambda: check(loads(event_frame), event_kind, Role.PROVIDER), number)),
        ("request (seed, no id)", "Router.receive", "hub", receive_requests(router, None)),
        ("request (+ id)", "Router.receive", "hub", receive_requests(router, with_id)),
        ("event", "Router.receive", "hub", loop(lambda: router.receive(provider, event_frame), number)),
        ("request (+ id)", "Router.receive, no metrics", "hub", receive_requests(bare_router, with_id)),
        ("event", "Router.receive, no metrics", "hub", loop(lambda: bare_router.receive(provider, event_frame), number)),
        ("request", "orjson.loads", "bare", loop(lambda: loads(request_frame), number)),
        ("event", "orjson.loads", "bare", loop(lambda: loads(event_frame), number)),
        ("request", "jsonschema-rs is_valid", "floor", loop(lambda: request_spec.fast.is_valid(req_env), number)),
        ("event", "jsonschema-rs is_valid", "floor", loop(lambda: event_spec.fast.is_valid(ev_env), number)),
    ]
    print(f"validation: {number:,} calls x {repeat} repetitions per row", flush=True)
    results: list[dict[str, Any]] = []
    for batch in (case[3] for case in cases):
        batch()  # warm-up
    for envelope, path, group, batch in cases:
        gc.collect()
        samples = per_call_ns(batch, repeat)
        results.append({"envelope": envelope, "path": path, "group": group,
                        "median_us": statistics.median(samples) / 1e3, "best_us": min(samples) / 1e3,
                        "samples_us": [s / 1e3 for s in samples]})

    def find(envelope_prefix: str, path: str) -> dict[str, Any]:
        return next(r for r in results if r["envelope"].startswith(envelope_prefix) and r["path"] == path)

    goal = c.Goal("<=", 2.0)
    rows = []
    for r in results:
        bare = find(r["envelope"].split(" ")[0], "orjson.loads")
        rows.append([r["envelope"], r["path"], r["median_us"], r["best_us"],
                     c.ratio(r["median_us"], bare["median_us"]) if r["group"] != "bare" else 1.0,
                     goal.text(r["median_us"]) if r["group"] == "hub" else "-"])
    print()
    c.print_machine(info)
    print("validation, µs per envelope (median and best of the repetitions; x loads = times the bare parse)")
    print(c.table(["envelope", "path", "median µs", "best µs", "x loads", "goal <= 2 µs"], rows))
    saved = c.save_results("validation", {"machine": info, "params": {"number": number, "repeat": repeat},
                                         "results": results})
    print(f"results: {saved}")


if __name__ == "__main__":
    main()
