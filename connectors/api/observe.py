"""Per-request observation: Prometheus counters and latencies by route template, one log event
(the events ingested: connectors/api/ingested.py).

Labels use the matched route's template (``/v1/passports/{siren}``), never the
raw path, so the series stay a bounded set whatever clients send. The log
event carries no body, query string or header: those may hold contact data
or keys; it names the caller by its key id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import logs

#: Label of requests that matched no route (404s, scanners).
UNMATCHED = "unmatched"
# Probes poll every few seconds: log them at debug so they do not drown the rest.
_QUIET = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
# Clients may send any token as a method; anything else is one "other" label.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class HttpMetrics:
    """What the API records about each request."""

    requests: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> HttpMetrics:
        return cls(
            requests=Counter(
                "passport_hub_http_requests", "HTTP requests answered, by route and status.",
                ["method", "route", "status"], registry=registry),
            duration=Histogram(
                "passport_hub_http_request_duration_seconds", "Time to answer an HTTP request.",
                ["method", "route"], registry=registry,
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                         10.0)),
        )


class Observe:
    """ASGI middleware: count, time and log every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.log = logs.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers if the app fails before starting a response

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            elapsed = time.perf_counter() - started
            # The router writes the matched route into the shared scope.
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(elapsed)
            log = self.log.debug if route in _QUIET else self.log.info
            # The key's id, set by authentication: never the token, nor its hash.
            key_id = scope.get("state", {}).get("key_id")
            log("http.request", method=method, route=route, status=status,
                duration_ms=round(elapsed * 1000, 2), **({"key_id": key_id} if key_id else {}))
