"""Prometheus metrics for one hub node, served at ``/metrics``.

Each hub gets its own registry, so several hubs in one process (tests,
embedding) never share counters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Live(Collector):
    """Gauges read from the node when scraped, so they are never stale."""

    def __init__(
        self, stats: Callable[[], dict[str, Any]], frames_in: dict[str, int], frames_out: dict[str, int]
    ) -> None:
        self.stats = stats
        self.frames_in = frames_in
        self.frames_out = frames_out

    def collect(self) -> Any:
        stats = self.stats()
        for name, help_text, counts in (
            ("bridge_frames_in", "Frames received, by message kind", self.frames_in),
            ("bridge_frames_out", "Frames sent to clients, by what they carried", self.frames_out),
        ):
            family = CounterMetricFamily(name, help_text, labels=["kind"])
            for kind, count in list(counts.items()):
                family.add_metric([kind], count)
            yield family
        connections = GaugeMetricFamily(
            "bridge_connections", "Joined connections on this node, by role", labels=["role"]
        )
        for role, count in stats["connections"].items():
            connections.add_metric([role], count)
        yield connections
        yield GaugeMetricFamily("bridge_agents", "Agents with a connection on this node", value=stats["agents"])
        yield GaugeMetricFamily(
            "bridge_pending_requests", "Requests waiting for their provider", value=stats["pendingRequests"]
        )
        # A summary kept by the router as a plain sum and count: a histogram
        # observation per frame would cost more than the validation itself.
        yield SummaryMetricFamily(
            "bridge_validation_seconds",
            "Time spent validating frames against their schemas",
            count_value=stats["validations"],
            sum_value=stats["validationSeconds"],
        )
        yield GaugeMetricFamily(
            "bridge_broker_healthy",
            "1 when the broker's backend is reachable, 0 when degraded",
            value=1 if stats["status"] == "ok" else 0,
        )


class Metrics:
    """Counters the node and server bump; implements :class:`bridge.node.Observer`."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.errors = Counter(
            "bridge_errors", "Error envelopes sent, by errorType", ["type"], registry=self.registry
        )
        self.request_seconds = Histogram(
            "bridge_request_seconds",
            "From a request's arrival to its answer",
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30),
            registry=self.registry,
        )
        self.disconnects = Counter(
            "bridge_disconnects",
            "Connections the hub closed, by reason",
            ["reason"],
            registry=self.registry,
        )
        # Labelled by status only: the hub answers a fixed handful of them (400, 403, 404, 405,
        # 421, 426, 503), so no client can grow the label set.
        self.http_errors = Counter(
            "bridge_http_errors",
            "HTTP responses and refused WebSocket handshakes with an error status, by status",
            ["status"],
            registry=self.registry,
        )
        # Per-frame counts are plain dicts, exported when scraped: a Prometheus
        # counter increment costs more than validating the frame.
        self.frames_in: dict[str, int] = {}
        self.frames_out: dict[str, int] = {}
        self.registry.register(_Live(stats, self.frames_in, self.frames_out))

    def frame_in(self, kind: str) -> None:
        counts = self.frames_in
        counts[kind] = counts.get(kind, 0) + 1

    def frame_out(self, kind: str, count: int) -> None:
        counts = self.frames_out
        counts[kind] = counts.get(kind, 0) + count

    def error_sent(self, error_type: str) -> None:
        self.errors.labels(error_type).inc()

    def request_done(self, seconds: float) -> None:
        self.request_seconds.observe(seconds)

    def disconnected(self, reason: str) -> None:
        self.disconnects.labels(reason).inc()

    def http_error(self, status: int) -> None:
        self.http_errors.labels(str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
