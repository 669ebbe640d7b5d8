"""The webhook, feed and read-your-writes routes with fakes of the read side and the publisher.

The app is the real one (``create_app``, served by uvicorn on a free port)
over a fake read side whose state a test sets and "commits" (waking
``wait_for_change`` as the read model does), and a fake publisher that
acknowledges everything (so no consistency token: the fakes' records have no
place; the integration tests check real tokens).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.api import create_app, keys
from connectors.api.auth import KeyRing
from connectors.api.commands import Expectations, registered, rotated
from connectors.api.idempotency import Accepted, AcceptedStore
from connectors.api.waiting import Changes
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.signing import fingerprint
from connectors.publish import Record, Sending, acks
from hub.config import Settings
from hub.errors import BrokerUnavailable
from schemas import catalog
from schemas.codec import Codec
from schemas.webhooks import iso, message_id
from services.readmodel.consistency import Token
from tests.integration.test_api import serve
from tests.unit.test_api_ingest import FakeWriter

NOW = 1_767_261_600_000  # 2026-01-01T10:00:00Z
DEV = "unit-dev-key"
SECRET_KEY = "unit-test-sealing-key-0123456789"  # noqa: S105 - a test key, sealing test data
PROBLEM = "application/problem+json"
CODEC = Codec.default()


class Side:
    """A read side whose state the test sets; ``commit`` wakes the long polls."""

    caught_up = True

    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.logged: list[dict[str, Any]] = []
        self.asked: list[tuple[Any, ...]] = []
        self.passports: dict[str, dict[str, Any]] = {}
        self.reflected = False
        self._changed = threading.Condition()
        self._batches = 0

    def commit(self, **state: Any) -> None:
        with self._changed:
            for name, value in state.items():
                setattr(self, name, value)
            self._batches += 1
            self._changed.notify_all()

    def wait_for_change(self, timeout_s: float) -> bool:
        with self._changed:
            seen = self._batches
            return self._changed.wait_for(lambda: self._batches != seen, timeout_s)

    def passport(self, siren: str) -> dict[str, Any] | None:
        return self.passports.get(siren)

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return []

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        return None

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        return (False, None)

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        return {"passports": [], "next_cursor": None, "total": 0}

    def stats(self) -> dict[str, Any]:
        return {}

    def kpi(self) -> dict[str, Any]:
        return {}

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        return self.endpoints.get(reseller_id)

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        self.asked.append(("deliveries", reseller_id, limit, message_id))
        return self.logged

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        self.asked.append(("feed", reseller_id, cursor, limit))
        if cursor not in (None, "c1"):
            raise ValueError("not a cursor of this feed")
        if cursor == "c1" or not self.events:
            return {"events": [], "next_cursor": cursor or "start"}
        return {"events": self.events, "next_cursor": "c1"}

    def reflects_passport(self, siren: str, token: Token) -> bool:
        return self.reflected

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        return self.reflected


class Writer(FakeWriter):
    """The ingest's fake publisher, with the generic record of a datum."""

    def datum_record(self, topic: str, key: str, record: str,
                     datum: dict[str, Any]) -> Record:
        return Record(topic, key.encode(), CODEC.encode(record, datum))

    def commands(self) -> list[dict[str, Any]]:
        return [CODEC.decode(r.value, millis=True).datum for r in self.published
                if r.topic == catalog.WEBHOOK_COMMANDS]


@pytest.fixture
def side() -> Side:
    return Side()


@pytest.fixture
def writer() -> Writer:
    return Writer()


class Client(httpx.Client):
    """An HTTP client of the app, the dev (admin) key by default, the resellers' keys known."""

    tokens: dict[str, str]


@pytest.fixture
def client(tmp_path: Path, side: Side, writer: Writer) -> Iterator[Client]:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", data_dir=tmp_path,
                        webhook_secret_key=SECRET_KEY, webhook_allow_hosts="127.0.0.1")
    tokens: dict[str, str] = {}
    stored = []
    for reseller in ("web-78", "paris-web"):
        tokens[reseller], key = keys.mint(reseller, "reseller", reseller)
        stored.append(key)
    keys.save(tmp_path / "keys.json", stored)
    store = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600)
    app = create_app(settings, publisher=writer, readside=side,
                     keyring=KeyRing(tmp_path / "keys.json", DEV), store=store,
                     registry=CollectorRegistry(), clock=lambda: NOW)
    try:
        with serve(app) as base, Client(base_url=base, timeout=20,
                                        headers={"Authorization": f"Bearer {DEV}"}) as http:
            http.tokens = tokens
            yield http
    finally:
        store.close()


def as_key(client: Client, reseller: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.tokens[reseller]}"}


def problem(answer: Any, status: int, slug: str | None = None) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = answer.json()
    if slug is not None:
        assert body["type"].endswith(":" + slug), body
    return body


def endpoint(fp: str = "0a1b2c3d4e5f") -> dict[str, Any]:
    return {"reseller_id": "web-78", "url": "http://127.0.0.1:8099/hook", "enabled": True,
            "disabled_reason": None, "failing_since": None,
            "secrets": [{"fingerprint": fp, "created_at": iso(NOW), "expires_at": None}],
            "version": 1, "updated_at": iso(NOW)}


# -- the endpoint's commands -----------------------------------------------------------------

def test_a_first_registration_issues_the_secret_once_and_the_command_carries_it_sealed(
        client: Client, side: Side, writer: Writer) -> None:
    url = "http://127.0.0.1:8099/hook"
    first = client.put("/v1/resellers/web-78/webhook", json={"url": url},
                       headers=as_key(client, "web-78"))
    assert first.status_code == 202, first.text
    body = first.json()
    secret = body.pop("secret")
    assert secret.startswith("whsec_")
    assert body["secret_fingerprint"] == fingerprint(secret)
    assert (body["reseller_id"], body["url"], body["enabled"], body["status"]) == (
        "web-78", url, True, "accepted")
    assert body["consistency_token"] is None  # the fake's acknowledgement has no place
    [command] = writer.commands()
    assert (command["command"], command["reseller_id"], command["url"], command["enabled"],
            command["occurred_at"]) == ("register", "web-78", url, True, NOW)
    assert str(command["event_id"]) == body["event_id"]
    assert command["secret"].startswith("sealed:v1:")
    assert Sealer(SECRET_KEY).open(command["secret"]) == secret
    assert all(secret.encode() not in record.value for record in writer.published)

    # Known now: registering again changes the URL or the flag, and shows no secret.
    side.endpoints["web-78"] = endpoint(body["secret_fingerprint"])
    again = client.put("/v1/resellers/web-78/webhook", json={"url": url, "enabled": False})
    assert again.status_code == 202, again.text
    assert "secret" not in again.json()
    assert again.json()["secret_fingerprint"] == body["secret_fingerprint"]
    assert (writer.commands()[1]["secret"], writer.commands()[1]["enabled"]) == (None, False)


@pytest.mark.parametrize(("body", "slug", "field"), [
    ({"url": "https://10.0.0.1/hook"}, "url-refused", "url"),
    ({"url": "http://192.168.1.20/hook"}, "url-refused", "url"),
    ({"url": "not a url"}, "url-refused", "url"),
    ({"url": 5}, "invalid-input", "url"),
    ({}, "invalid-input", "url"),
    ({"url": "http://127.0.0.1/hook", "enabled": "perhaps"}, "invalid-input", "enabled"),
    ({"url": "http://127.0.0.1/hook", "secret": "whsec_mine"}, "invalid-input", "secret"),
])
def test_a_bad_registration_is_422_naming_the_field(
        client: Client, writer: Writer, body: dict[str, Any], slug: str, field: str) -> None:
    answer = problem(client.put("/v1/resellers/web-78/webhook", json=body), 422, slug)
    assert [e["field"] for e in answer["errors"]] == [field]
    assert writer.published == []


def test_a_reseller_manages_only_its_own_endpoint(client: Client, side: Side) -> None:
    side.endpoints["web-78"] = endpoint()
    other = as_key(client, "paris-web")
    body = {"url": "http://127.0.0.1/hook"}
    assert "paris-web" in problem(client.put("/v1/resellers/web-78/webhook", json=body,
                                             headers=other), 403)["detail"]
    for path in ("webhook/rotate", "webhook/test"):
        problem(client.post(f"/v1/resellers/web-78/{path}", headers=other), 403)
    for path in ("webhook", "deliveries"):
        problem(client.get(f"/v1/resellers/web-78/{path}", headers=other), 403)
    problem(client.put("/v1/resellers/Web_78/webhook", json=body), 422)
    problem(client.put("/v1/resellers/web-78/webhook", json=body,
                       headers={"Authorization": "Bearer nope"}), 401)


def test_rotate_and_test_need_an_endpoint(client: Client, side: Side,
                                          writer: Writer) -> None:
    problem(client.post("/v1/resellers/web-78/webhook/rotate"), 404)
    problem(client.post("/v1/resellers/web-78/webhook/test"), 404)
    problem(client.get("/v1/resellers/web-78/webhook"), 404)
    side.endpoints["web-78"] = endpoint()

    rotated_ = client.post("/v1/resellers/web-78/webhook/rotate",
                           headers=as_key(client, "web-78"))
    assert rotated_.status_code == 202, rotated_.text
    body = rotated_.json()
    assert body["secret_fingerprint"] == fingerprint(body["secret"])
    assert body["secret_fingerprint"] != endpoint()["secrets"][0]["fingerprint"]
    assert body["previous_valid_until"] == iso(NOW + 86_400_000)
    [command] = writer.commands()
    assert (command["command"], command["overlap_ms"]) == ("rotate", 86_400_000)
    assert Sealer(SECRET_KEY).open(command["secret"]) == body["secret"]

    ping = client.post("/v1/resellers/web-78/webhook/test")
    assert ping.status_code == 202, ping.text
    assert ping.json()["message_id"] == message_id(ping.json()["event_id"], "web-78", "ping")
    assert writer.commands()[-1]["command"] == "test"
    assert client.get("/v1/resellers/web-78/webhook").json() == endpoint()


def test_a_replay_is_an_admins_only(client: Client, side: Side, writer: Writer) -> None:
    side.endpoints["web-78"] = endpoint()
    window = {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T02:00:00+01:00"}
    problem(client.post("/v1/resellers/web-78/deliveries/replay", json=window,
                        headers=as_key(client, "web-78")), 403)
    bad = problem(client.post("/v1/resellers/web-78/deliveries/replay",
                              json={**window, "until": "2025-12-31T23:00:00Z"}), 422)
    assert "until" in bad["errors"][0]["message"]
    problem(client.post("/v1/resellers/web-78/deliveries/replay", json={}), 422)
    problem(client.post("/v1/resellers/web-78/deliveries/replay",
                        json={"since": "2026-01-01T00:00:00"}), 422)  # no time zone
    problem(client.post("/v1/resellers/paris-web/deliveries/replay", json=window), 404)
    assert writer.published == []

    answer = client.post("/v1/resellers/web-78/deliveries/replay", json=window)
    assert answer.status_code == 202, answer.text
    assert (answer.json()["since"], answer.json()["until"]) == (
        "2026-01-01T00:00:00.000Z", "2026-01-01T01:00:00.000Z")
    [command] = writer.commands()
    assert (command["command"], command["since"], command["until"]) == (
        "replay", NOW - 10 * 3_600_000, NOW - 9 * 3_600_000)


def test_the_delivery_log_is_the_read_models(client: Client, side: Side) -> None:
    side.logged = [{"message_id": "msg_1", "type": "lead.assigned", "attempt": 1,
                    "outcome": "delivered"}]
    answer = client.get("/v1/resellers/web-78/deliveries?limit=5&message_id=msg_1",
                        headers=as_key(client, "web-78"))
    assert answer.json() == {"reseller_id": "web-78", "deliveries": side.logged}
    assert side.asked == [("deliveries", "web-78", 5, "msg_1")]
    problem(client.get("/v1/resellers/web-78/deliveries?limit=1001"), 422)


# -- the pull feed ---------------------------------------------------------------------------

def test_the_leads_route_is_the_feed_with_a_cursor(client: Client, side: Side) -> None:
    mine = as_key(client, "web-78")
    listed = client.get("/v1/resellers/web-78/leads", headers=mine)
    assert listed.json() == {"reseller_id": "web-78", "leads": []}
    side.events = [{"id": "msg_a", "type": "lead.assigned"}]
    for start in ("", "start"):
        page = client.get(f"/v1/resellers/web-78/leads?cursor={start}", headers=mine)
        assert page.json() == {"reseller_id": "web-78", "events": side.events,
                               "next_cursor": "c1"}
    assert side.asked[-1] == ("feed", "web-78", None, 100)
    bad = problem(client.get("/v1/resellers/web-78/leads?cursor=garbage", headers=mine), 422)
    assert bad["errors"] == [{"field": "cursor", "message": "not a cursor of this feed"}]
    problem(client.get("/v1/resellers/web-78/leads?cursor=&limit=501", headers=mine), 422)
    problem(client.get("/v1/resellers/web-78/leads?cursor=&wait=31", headers=mine), 422)
    problem(client.get("/v1/resellers/paris-web/leads?cursor=", headers=mine), 403)
    problem(client.get("/v1/lead-events?cursor=", headers=mine), 403)
    every = client.get("/v1/lead-events?cursor=start")
    assert every.json() == {"events": side.events, "next_cursor": "c1"}
    assert side.asked[-1] == ("feed", None, None, 100)


def test_a_long_poll_answers_once_an_event_lands(client: Client, side: Side) -> None:
    quiet = client.get("/v1/resellers/web-78/leads?cursor=c1&wait=0")
    assert quiet.json()["events"] == []
    assert quiet.json()["next_cursor"] == "c1"

    later = threading.Timer(0.2, side.commit, kwargs={"events": [{"id": "msg_b"}]})
    later.start()
    try:
        page = client.get("/v1/resellers/web-78/leads?cursor=&wait=10")
    finally:
        later.join()
    assert page.json()["events"] == [{"id": "msg_b"}]


# -- read your writes ------------------------------------------------------------------------

def test_a_read_after_a_token_waits_for_it_or_says_504(client: Client,
                                                       side: Side) -> None:
    side.passports["732829320"] = {"siren": "732829320"}
    token = Token(catalog.ENROLMENTS, 2, 17, "732829320").encode()
    bad = problem(client.get("/v1/passports/732829320?after=nonsense"), 422)
    assert [e["field"] for e in bad["errors"]] == ["after"]
    late = problem(client.get(f"/v1/passports/732829320?after={token}&wait=0"), 504,
                   "not-yet-consistent")
    assert "pn.enrolments.v1 partition 2 offset 17" in late["detail"]
    assert "waited 0 s" in late["detail"]

    soon = threading.Timer(0.2, side.commit, kwargs={"reflected": True})
    soon.start()
    try:
        answer = client.get(f"/v1/passports/732829320?after={token}&wait=10")
    finally:
        soon.join()
    assert answer.status_code == 200, answer.text
    problem(client.get(f"/v1/leads/lead-1?after={token}&wait=0"), 404)  # reflected, unknown
    problem(client.get("/v1/passports/552100554?wait=0"), 404)


def test_wait_alone_waits_for_the_thing_to_appear(client: Client, side: Side) -> None:
    appear = threading.Timer(0.2, side.commit,
                             kwargs={"endpoints": {"web-78": endpoint()}})
    appear.start()
    try:
        answer = client.get("/v1/resellers/web-78/webhook?wait=10")
    finally:
        appear.join()
    assert answer.status_code == 200, answer.text


# -- the pieces ------------------------------------------------------------------------------

def test_the_watcher_runs_only_while_someone_waits(side: Side) -> None:
    changes = Changes(side.wait_for_change, beat_s=0.05, nap_s=0.05)
    calls: list[int] = []

    def probe() -> int | None:
        calls.append(1)
        return None

    assert asyncio.run(changes.until(probe, 0.2)) is None
    assert len(calls) >= 2  # checked again after every nap
    deadline = time.monotonic() + 5
    while changes.watching and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not changes.watching
    assert asyncio.run(changes.until(lambda: "now", 10)) == "now"


def test_expectations_say_when_a_command_shows() -> None:
    expected = Expectations(capacity=2)
    tokens = [Token(catalog.WEBHOOK_COMMANDS, 0, offset, "web-78") for offset in range(3)]
    expected.expect(tokens[0].encode(), registered("https://a/h", True, "fp-new"))
    view = {"url": "https://a/h", "enabled": True, "secrets": [{"fingerprint": "fp-old"}]}
    assert not expected.reflected(tokens[0], view)
    assert expected.reflected(tokens[0], {**view, "secrets": [{"fingerprint": "fp-new"}]})
    assert expected.reflected(tokens[0], {**view, "secrets": [{"fingerprint": "fp-new"}],
                                          "enabled": False, "disabled_reason": "refused"})
    assert not expected.reflected(tokens[0], None)
    expected.expect(tokens[1].encode(), rotated("fp-2"))
    expected.expect(tokens[2].encode(), rotated("fp-3"))
    assert expected.reflected(tokens[0], view)  # forgotten: only the endpoint's existence
    assert not expected.reflected(tokens[2], view)


def test_the_store_keeps_where_each_event_was_written(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:  # the layout before consistency tokens
        old.execute("CREATE TABLE accepted_log (event_id TEXT NOT NULL, body_sha256 TEXT NOT "
                    "NULL, topic TEXT NOT NULL, accepted_at INTEGER NOT NULL)")
        old.execute("INSERT INTO accepted_log VALUES ('old', 'a', 't', ?)",
                    (int(time.time() * 1000),))
    old.close()
    store = AcceptedStore(path, retention_s=3600)
    store.remember([Accepted("new", "b", "t", 4, 1234)])
    assert store.flush()
    store.close()
    again = AcceptedStore(path, retention_s=3600)
    try:
        assert again.lookup(["old", "new"]) == {"old": Accepted("old", "a", "t"),
                                                "new": Accepted("new", "b", "t", 4, 1234)}
    finally:
        again.close()


def test_records_not_sent_have_no_place() -> None:
    sending = Sending(None, [object()], BrokerUnavailable("down"), 3, 0.0)
    assert acks(sending) == [None, None, None]
