"""The API's limits: a token bucket per key (429 with Retry-After), and the size of bodies and
batches (413).

The bucket's arithmetic is tested on its own, time given by the test; the rest
goes through the whole app in process (httpx's ASGI transport), with the
limiter on a clock the test moves.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.api import bodies, create_app, keys, ratelimit
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.api.ratelimit import Bucket, Limit, Limiter, take
from connectors.api.webhooks import MAX_COMMAND_BYTES
from hub.config import Settings
from tests.unit.test_api_webhooks import SECRET_KEY, Writer
from tests.unit.test_auth_matrix import DEPARTEMENT, LEAD, OWN, RESELLER, World, event

PROBLEM = "application/problem+json"
DEV = "limits-dev-key"


# -- the bucket, pure -------------------------------------------------------------------------

def test_a_new_key_has_its_burst_then_waits_for_the_refill() -> None:
    limit = Limit(rate_per_s=2.0, burst=3)
    bucket: Bucket | None = None
    waits = []
    for _ in range(4):
        bucket, wait = take(bucket, 100.0, limit)
        waits.append(wait)
    assert waits == [0.0, 0.0, 0.0, 0.5]  # one token comes back every 1/2 s
    bucket, wait = take(bucket, 100.25, limit)
    assert wait == pytest.approx(0.25)  # half a token back: a quarter second to go
    bucket, wait = take(bucket, 100.5, limit)
    assert wait == 0.0
    assert bucket.tokens == pytest.approx(0.0)


def test_the_bucket_never_holds_more_than_its_burst_and_a_clock_going_back_refills_nothing(
        ) -> None:
    limit = Limit(rate_per_s=10.0, burst=2)
    bucket, _ = take(None, 0.0, limit)
    bucket, _ = take(bucket, 3600.0, limit)  # an hour idle: full, not 36,000 tokens
    assert bucket.tokens == pytest.approx(1.0)
    bucket, _ = take(bucket, 3600.0, limit)
    bucket, wait = take(bucket, 3000.0, limit)  # the clock went back
    assert bucket.tokens == 0.0
    assert wait == pytest.approx(0.1)


@pytest.mark.parametrize(("wait", "header"), [(0.01, 1), (0.5, 1), (1.0, 1), (1.2, 2),
                                              (59.9, 60)])
def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one(wait: float,
                                                                 header: int) -> None:
    assert ratelimit.retry_after(wait) == header


def test_each_key_has_its_own_bucket_and_a_zero_rate_is_no_limit() -> None:
    now = [0.0]
    limiter = Limiter(Limit(1.0, 2), clock=lambda: now[0])
    assert [limiter.check("runaway") for _ in range(3)] == [0.0, 0.0, 1.0]
    assert limiter.check("quiet") == 0.0  # the runaway one took nothing of the others'
    now[0] = 1.0
    assert limiter.check("runaway") == 0.0
    unlimited = Limiter(Limit(0.0, 1), clock=lambda: now[0])
    assert all(unlimited.check("k") == 0.0 for _ in range(1000))


def test_the_settings_name_the_limits() -> None:
    default = Settings(kafka_bootstrap_servers="127.0.0.1:9")
    assert (default.api_rate_per_s, default.api_rate_burst) == (50.0, 100)
    limiter = Limiter.from_settings(default.model_copy(
        update={"api_rate_per_s": 5.0, "api_rate_burst": 7}))
    assert limiter.limit == Limit(5.0, 7)


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSPORT_HUB_API_RATE_PER_S", "0.5")
    monkeypatch.setenv("PASSPORT_HUB_API_RATE_BURST", "3")
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9")
    assert (settings.api_rate_per_s, settings.api_rate_burst) == (0.5, 3)


# -- over HTTP --------------------------------------------------------------------------------

@dataclass
class Api:
    """The app in process, its keys' tokens, the limiter's clock and the publisher."""

    http: httpx.AsyncClient
    tokens: dict[str, str]
    now: list[float]
    writer: Writer
    registry: CollectorRegistry

    def key(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get(name, name)}"}


Scenario = Callable[[Api], Awaitable[None]]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[[Scenario], None]]:
    """Runs a scenario against the app: rate 1/s, burst 3, the KPI page behind a key."""
    tokens: dict[str, str] = {}
    stored = []
    for name, (partner, role, reseller, departements) in {
            "delegation": ("cefac-78", "delegation", None, [DEPARTEMENT[OWN]]),
            "other-delegation": ("cefac-95", "delegation", None, ["95"]),
            "reseller": (RESELLER[OWN], "reseller", RESELLER[OWN], []),
            "admin": ("ops", "admin", None, [])}.items():
        tokens[name], key = keys.mint(partner, role, reseller, departements=departements)
        stored.append(key)
    keys.save(tmp_path / "keys.json", stored)
    tokens["dev"] = DEV
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", data_dir=tmp_path,
                        webhook_secret_key=SECRET_KEY, webhook_allow_hosts="127.0.0.1",
                        kpi_public=False, api_rate_per_s=1.0, api_rate_burst=3)
    now = [1000.0]
    writer, registry = Writer(), CollectorRegistry()
    store = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600)
    app = create_app(settings, publisher=writer, readside=World(),
                     keyring=KeyRing(tmp_path / "keys.json", DEV), store=store,
                     registry=registry, limiter=Limiter.from_settings(settings, lambda: now[0]))

    def run(scenario: Scenario) -> None:
        async def main() -> None:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
                await scenario(Api(http, tokens, now, writer, registry))
        asyncio.run(main())

    try:
        yield run
    finally:
        store.close()


def limited_problem(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 429, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    assert body["type"].endswith(":rate-limited")
    assert (body["status"], body["title"]) == (429, "Too many requests")
    assert answer.headers["retry-after"] == str(body["retry_after"])
    return body


def test_a_key_over_its_limit_gets_429_with_retry_after_and_others_go_on(
        served: Callable[[Scenario], None]) -> None:
    async def scenario(api: Api) -> None:
        stats = [await api.http.get("/v1/stats", headers=api.key("delegation"))
                 for _ in range(3)]
        assert [a.status_code for a in stats] == [200, 200, 200]
        body = limited_problem(await api.http.get("/v1/stats", headers=api.key("delegation")))
        assert body["retry_after"] == 1
        assert "cefac-78-" in body["detail"]
        assert api.tokens["delegation"] not in json.dumps(body)
        # Every route of the key counts against the same bucket, writes as reads.
        answer = await api.http.post("/v1/events", headers=api.key("delegation"),
                                     json=event("business_enrolled", OWN))
        limited_problem(answer)
        assert api.writer.published == []  # refused before the body was even read
        # Another delegation's key, and a reseller's, have their own buckets.
        other = await api.http.get("/v1/stats", headers=api.key("other-delegation"))
        assert other.status_code == 200
        leads = await api.http.get(f"/v1/resellers/{RESELLER[OWN]}/leads",
                                   headers=api.key("reseller"))
        assert leads.status_code == 200
        # A second later, one token is back: one request, then 429 again.
        api.now[0] += 1.0
        assert (await api.http.get("/v1/stats", headers=api.key("delegation"))).status_code \
            == 200
        limited_problem(await api.http.get("/v1/stats", headers=api.key("delegation")))
        # The 429s are counted under their route, as every answer.
        assert api.registry.get_sample_value("passport_hub_http_requests_total", {
            "method": "GET", "route": "/v1/stats", "status": "429"}) == 2.0
    served(scenario)


def test_the_probes_metrics_kpi_documents_and_dev_key_are_never_limited(
        served: Callable[[Scenario], None]) -> None:
    async def scenario(api: Api) -> None:
        for _ in range(3):
            await api.http.get("/v1/stats", headers=api.key("admin"))
        limited_problem(await api.http.get("/v1/stats", headers=api.key("admin")))
        # The same key, exhausted, still reads the KPI page (behind a key here) and its data.
        for path in ("/livez", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs",
                     "/asyncapi.json", "/kpi", "/kpi/data.json", "/kpi/assets/kpi.js"):
            for _ in range(5):
                answer = await api.http.get(path, headers=api.key("admin"))
                assert answer.status_code == 200, (path, answer.text[:200])
        for _ in range(20):
            answer = await api.http.get("/v1/stats", headers=api.key("dev"))
            assert answer.status_code == 200
        # Without a valid key there is no bucket to take from: 401, and the keys' buckets
        # are untouched by them.
        for _ in range(10):
            assert (await api.http.get("/v1/stats", headers=api.key("nope"))).status_code \
                == 401
        assert (await api.http.get("/v1/stats", headers=api.key("delegation"))).status_code \
            == 200
    served(scenario)


def test_the_openapi_document_shows_the_429_of_the_limited_routes_only(
        served: Callable[[Scenario], None]) -> None:
    async def scenario(api: Api) -> None:
        document = (await api.http.get("/openapi.json")).json()
        operations = [(path, method, op) for path, item in document["paths"].items()
                      for method, op in item.items()]
        assert operations
        for path, method, op in operations:
            assert ("429" in op["responses"]) == bool(op.get("security")), (method, path)
            if "429" in op["responses"]:
                assert "Retry-After" in op["responses"]["429"]["headers"]
        assert not any(path.startswith("/kpi") for path in document["paths"])
    served(scenario)


# -- body and batch sizes ---------------------------------------------------------------------

async def _chunks(data: bytes, size: int = 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_every_body_has_its_size_limit_declared_or_not(served: Callable[[Scenario], None],
                                                       ) -> None:
    """413 over each route's limit, whether the Content-Length says so or the body is
    streamed without one (the limit is then counted as the body arrives)."""
    padded = {"answer": "accepted", "pad": "x"}

    async def scenario(api: Api) -> None:
        admin = api.key("admin") | {"content-type": "application/json"}
        cases = [
            ("POST", "/v1/events", bodies.MAX_EVENT_BYTES),
            ("POST", "/v1/events:batch", bodies.MAX_BATCH_BYTES),
            ("POST", f"/v1/leads/{LEAD[OWN]}/answer", bodies.MAX_EVENT_BYTES),
            ("PUT", f"/v1/resellers/{RESELLER[OWN]}/webhook", MAX_COMMAND_BYTES),
            ("POST", f"/v1/resellers/{RESELLER[OWN]}/deliveries/replay", MAX_COMMAND_BYTES),
        ]
        for method, path, limit in cases:
            over = json.dumps({**padded, "pad": "x" * limit}).encode()
            for content in (over, _chunks(over)):
                api.now[0] += 10  # the limits under test here are the bodies'
                answer = await api.http.request(method, path, content=content, headers=admin)
                assert answer.status_code == 413, (method, path, answer.text[:200])
                assert answer.json()["type"].endswith(":too-large")
        assert api.writer.published == []
    served(scenario)


def test_a_batch_holds_at_most_a_thousand_events(served: Callable[[Scenario], None]) -> None:
    async def scenario(api: Api) -> None:
        events = [event("business_enrolled", OWN) for _ in range(bodies.MAX_BATCH_EVENTS)]
        full = await api.http.post("/v1/events:batch", json={"events": events},
                                   headers=api.key("admin"))
        assert full.status_code == 202, full.text[:300]
        assert [r["status"] for r in full.json()["results"]] == [202] * 1000
        assert len(api.writer.published) == 1000
        over = await api.http.post(
            "/v1/events:batch", headers=api.key("admin"),
            json={"events": [*events, event("business_enrolled", OWN)]})
        assert over.status_code == 413
        assert "1000" in over.json()["detail"]
        assert len(api.writer.published) == 1000  # nothing of the refused batch
    served(scenario)
