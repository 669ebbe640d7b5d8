"""Webhook endpoints and the delivery log in the read model: latest version, newest first."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hub.contract import Inbound
from schemas import catalog
from schemas.codec import Codec
from services.readmodel import store
from services.readmodel.queries import Queries
from services.readmodel.store import Writer

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
RESELLER = "yvelines-web"
URL = "https://crm.yvelines-web.example/hooks/passport"


def decoded(record: str, datum: dict[str, Any]) -> dict[str, Any]:
    """A datum as the read model gets it: through the codec (times come back as datetimes)."""
    codec = Codec.default()
    value: dict[str, Any] = codec.decode(codec.encode(record, datum)).datum
    return value


def endpoint(version: int, *, enabled: bool = True, reason: str | None = None,
             reseller: str = RESELLER, at: datetime = T0,
             failing_since: datetime | None = None) -> dict[str, Any]:
    return decoded("WebhookEndpoint", {
        "event_id": str(uuid.uuid4()), "occurred_at": at, "source": "crm_webhook",
        "reseller_id": reseller, "url": URL, "enabled": enabled, "disabled_reason": reason,
        "failing_since": failing_since,
        "secrets": [{"fingerprint": f"{version:012x}", "created_at": at, "expires_at": None},
                    {"fingerprint": "0123456789ab", "created_at": T0,
                     "expires_at": T0 + timedelta(days=1)}],
        "version": version})


def attempt(message: str, n: int, outcome: str, *, reseller: str = RESELLER,
            at: datetime = T0, status: int | None = None) -> dict[str, Any]:
    return decoded("WebhookDelivery", {
        "event_id": str(uuid.uuid4()), "occurred_at": at, "source": "crm_webhook",
        "reseller_id": reseller, "message_id": message, "type": "lead.assigned",
        "lead_id": "L1", "attempt": n, "url": URL, "outcome": outcome, "http_status": status,
        "latency_ms": 12 if status else None, "error": None if status == 200 else "timeout",
        "next_attempt_at": at + timedelta(seconds=5) if outcome == "retrying" else None,
        "replay": False})


def batch(record: str, topic: str, items: list[dict[str, Any]]) -> list[Inbound]:
    return [Inbound(topic, 0, n, None, record, datum, 0) for n, datum in enumerate(items)]


def endpoints(items: list[dict[str, Any]]) -> list[Inbound]:
    return batch("WebhookEndpoint", catalog.WEBHOOK_ENDPOINTS, items)


def deliveries(items: list[dict[str, Any]]) -> list[Inbound]:
    return batch("WebhookDelivery", catalog.DELIVERIES, items)


def test_the_endpoint_view_names_secrets_by_fingerprint(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    assert queries.webhook_endpoint(RESELLER) is None
    writer.apply(endpoints([endpoint(1, enabled=False, reason="failing",
                                     failing_since=T0 - timedelta(days=5))]))
    assert queries.webhook_endpoint(RESELLER) == {
        "reseller_id": RESELLER, "url": URL, "enabled": False, "disabled_reason": "failing",
        "failing_since": "2026-10-28T08:00:00.000+00:00",
        "secrets": [{"fingerprint": "000000000001", "created_at": "2026-11-02T08:00:00.000+00:00",
                     "expires_at": None},
                    {"fingerprint": "0123456789ab", "created_at": "2026-11-02T08:00:00.000+00:00",
                     "expires_at": "2026-11-03T08:00:00.000+00:00"}],
        "version": 1, "updated_at": "2026-11-02T08:00:00.000+00:00"}
    assert queries.webhook_endpoint("someone-else") is None


def test_the_highest_version_wins_whatever_the_order(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    v1, v2, v3 = (endpoint(v, at=T0 + timedelta(minutes=v)) for v in (1, 2, 3))
    assert writer.apply(endpoints([v1, v3])) == 2
    assert writer.apply(endpoints([v2])) == 0  # older than what is there
    assert writer.apply(endpoints([v3])) == 0  # the same event again
    found = queries.webhook_endpoint(RESELLER)
    assert found is not None
    assert (found["version"], found["secrets"][0]["fingerprint"]) == (3, "000000000003")
    writer.apply(endpoints([endpoint(4, enabled=False, reason="gone")]))
    found = queries.webhook_endpoint(RESELLER)
    assert found is not None
    assert (found["version"], found["enabled"], found["disabled_reason"]) == (4, False, "gone")


def test_deliveries_newest_first_deduplicated_and_by_message(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    first = attempt("msg_a", 1, "retrying", at=T0)
    writer.apply(deliveries([
        first,
        attempt("msg_b", 1, "delivered", at=T0 + timedelta(seconds=1), status=200),
        attempt("msg_a", 2, "delivered", at=T0 + timedelta(seconds=5), status=200),
        attempt("msg_c", 1, "skipped", reseller="paris-web"),
    ]))
    assert writer.apply(deliveries([first])) == 0  # the same attempt read again
    log = queries.deliveries(RESELLER)
    assert [(d["message_id"], d["attempt"], d["outcome"]) for d in log] == [
        ("msg_a", 2, "delivered"), ("msg_b", 1, "delivered"), ("msg_a", 1, "retrying")]
    assert log[-1] == {
        "message_id": "msg_a", "type": "lead.assigned", "lead_id": "L1", "attempt": 1,
        "url": URL, "outcome": "retrying", "http_status": None, "latency_ms": None,
        "error": "timeout", "next_attempt_at": "2026-11-02T08:00:05.000+00:00", "replay": False,
        "at": "2026-11-02T08:00:00.000+00:00"}
    assert [d["attempt"] for d in queries.deliveries(RESELLER, message_id="msg_a")] == [2, 1]
    assert len(queries.deliveries(RESELLER, limit=1)) == 1
    assert queries.deliveries(RESELLER, message_id="msg_c") == []  # another reseller's
    assert [d["message_id"] for d in queries.deliveries("paris-web")] == ["msg_c"]


def test_the_log_keeps_the_last_attempts_of_each_reseller(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    many = [attempt(f"msg_{n}", 1, "delivered", status=200)
            for n in range(store.MAX_DELIVERIES + 5)]
    writer.apply(deliveries([attempt("msg_other", 1, "delivered", reseller="paris-web")]))
    writer.apply(deliveries(many[:10]))
    writer.apply(deliveries(many[10:]))
    log = queries.deliveries(RESELLER, limit=store.MAX_DELIVERIES + 100)
    assert len(log) == store.MAX_DELIVERIES
    assert log[0]["message_id"] == f"msg_{store.MAX_DELIVERIES + 4}"
    assert log[-1]["message_id"] == "msg_5"
    assert len(queries.deliveries("paris-web")) == 1


def test_a_rebuild_gives_the_same_endpoints_and_log(tmp_path: Path) -> None:
    items = [attempt(f"msg_{n % 3}", n // 3 + 1, "retrying") for n in range(9)]
    states = [endpoint(v) for v in (1, 2)]
    paths = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    one = Writer(paths[0])
    for item in items:
        one.apply(deliveries([item]))
    one.apply(endpoints(states))
    one.close()
    other = Writer(paths[1])
    other.apply(endpoints(states) + deliveries(items))
    other.close()
    a, b = Queries(paths[0]), Queries(paths[1])
    assert a.deliveries(RESELLER) == b.deliveries(RESELLER)
    assert a.webhook_endpoint(RESELLER) == b.webhook_endpoint(RESELLER)
