"""Per-key rate limits: a token bucket per API key, so that one partner's runaway script
cannot starve the others (a 429 with ``Retry-After``, as a problem document).

Each key has a bucket of ``burst`` tokens that refills at ``rate_per_s``; a
request takes one token, or is refused with the seconds until the next one.
A batch of up to 1,000 events is one request (``bodies.MAX_BATCH_EVENTS``
bounds what it may carry), and a long poll is one request however long it
waits.

The core (``Bucket``, ``take``) is pure: time comes in as an argument, so the
arithmetic is tested without sleeping. ``Limiter`` is the thin shell that
keeps one bucket per key id and reads its clock (``time.monotonic``: a wall
clock stepped back would refill nothing, stepped forward would refill all).

**Per process.** The buckets live in the API process's memory: N API
processes behind one Service let a key make N times the rate (each
process's share of its requests is what the load balancer sends it). That
bounds what one key takes of each process, which is what protects the
others; a cluster-wide budget would need a shared store on every request.

**Never limited**: the routes that take no key (the probes, ``/metrics``,
the documents, the KPI page when public), ``/kpi`` even when it asks for a
key (a browser page behind a proxy that adds one key for every viewer), and
the dev key (dev and demo stacks, the benchmarks: never production). Unknown,
revoked and expired keys are refused (401) before any bucket is looked at:
a bucket exists only for a key the keys file holds, so their number is bounded
by the file's.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.api import problems
from connectors.api.openapi import ref
from hub.config import Settings

#: Paths whose requests are never limited, even with a key (see the module's docstring).
UNLIMITED_PREFIXES = ("/kpi",)


@dataclass(frozen=True, slots=True)
class Limit:
    """A key's allowance: ``rate_per_s`` steadily, ``burst`` at once."""

    rate_per_s: float
    burst: int

    @property
    def enabled(self) -> bool:
        return self.rate_per_s > 0


@dataclass(frozen=True, slots=True)
class Bucket:
    """A key's tokens at an instant (``at``: seconds on the limiter's clock)."""

    tokens: float
    at: float


def take(bucket: Bucket | None, now: float, limit: Limit) -> tuple[Bucket, float]:
    """One request at ``now``: the bucket after it and 0.0 when a token was there (taken),
    else the bucket refilled to ``now`` and the seconds until a token is.

    A new key starts full. A clock that went back (it should not: monotonic) refills
    nothing rather than a negative amount.
    """
    if bucket is None:
        bucket = Bucket(float(limit.burst), now)
    elapsed = max(0.0, now - bucket.at)
    tokens = min(float(limit.burst), bucket.tokens + elapsed * limit.rate_per_s)
    if tokens >= 1.0:
        return Bucket(tokens - 1.0, now), 0.0
    return Bucket(tokens, now), (1.0 - tokens) / limit.rate_per_s


def retry_after(wait_s: float) -> int:
    """The ``Retry-After`` of a refusal: whole seconds, rounded up, at least 1 (a client
    that retries at once would only be refused again)."""
    return max(1, math.ceil(wait_s))


class Limiter:
    """One bucket per key id, over a clock (seconds; ``time.monotonic`` by default)."""

    def __init__(self, limit: Limit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._buckets: dict[str, Bucket] = {}
        # Taken on the event loop, but a route may authenticate from a worker thread:
        # the read-modify-write of a bucket must not interleave.
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings,
                      clock: Callable[[], float] = time.monotonic) -> Limiter:
        return cls(Limit(settings.api_rate_per_s, settings.api_rate_burst), clock)

    def check(self, key_id: str) -> float:
        """Take a token for ``key_id``: 0.0 when the request may go on, else the seconds
        until it may be retried."""
        if not self.limit.enabled:
            return 0.0
        with self._lock:
            bucket, wait = take(self._buckets.get(key_id), self._clock(), self.limit)
            self._buckets[key_id] = bucket
        return wait


def limited(path: str) -> bool:
    """Whether a request to ``path`` with a key counts against that key's bucket."""
    return not path.startswith(UNLIMITED_PREFIXES)


def refusal(key_id: str, wait_s: float, limit: Limit) -> dict[str, Any]:
    """The 429 problem document of a key over its limit."""
    return problems.rate_limited(
        f"key {key_id} is over its limit of {limit.rate_per_s:g} requests a second "
        f"(bursts of {limit.burst}); retry after the time Retry-After gives",
        retry_after(wait_s))


#: The documented 429 of every limited route (``document`` adds it).
RESPONSE: dict[str, Any] = {
    "description": "Too many requests: the key is over its rate limit. Retry after the "
                   "`Retry-After` seconds.",
    "content": {problems.MEDIA_TYPE: {"schema": ref("Problem")}},
    "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
}


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI document with the 429 on each operation that takes a key and is limited."""
    for path, item in openapi.get("paths", {}).items():
        if not limited(path):
            continue
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("security"):
                operation.setdefault("responses", {}).setdefault("429", RESPONSE)
    return openapi
