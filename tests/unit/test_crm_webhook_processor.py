"""The delivery processor over a real SQLite store, with a fake of its transport.

Every emitted record is encoded with its Avro schema, and every request's
signatures are checked against the secrets that should have made them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from connectors.crm_webhook.processor import PENDING_NS, DeliveryProcessor
from connectors.crm_webhook.schedule import RetryPolicy, parse_schedule
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.sender import Request, Result
from connectors.crm_webhook.signing import new_secret
from hub.ids import derive
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec

T0 = 1_790_000_000_000
DAY_MS = 86_400_000
#: A kept secret neither sealed nor marked plain.
NEITHER = "garbage"
SHORT = RetryPolicy(parse_schedule("0,5,60"), 15_000, 5 * DAY_MS)


def lead_change(lead_id: str, *, holder: str | None = "r1", change: str = "assigned",
                status: str = "assigned", previous: str | None = None,
                reason: str | None = None, version: int = 1, at: int = T0,
                email: str | None = "contact@example.fr") -> dict[str, Any]:
    """A ``LeadAssigned`` (v2) datum, as the router writes it (times in epoch ms)."""
    return {"event_id": derive(lead_id, f"lead-v{version}"), "occurred_at": at,
            "source": "routing", "schema_version": 2, "lead_id": lead_id, "siren": "123456789",
            "category": "e-commerce", "departement": "78", "region": "11", "status": status,
            "reseller_id": holder, "rule": "departement",
            "candidates": [holder] if holder else [], "business_name": "Boulangerie Martin",
            "contact_email": email, "change": change, "version": version,
            "previous_reseller_id": previous, "reason": reason, "hops": 0,
            "excluded_resellers": [], "requested_at": at, "assigned_at": at,
            "deadline_at": at + 2 * DAY_MS, "sla_breached": False, "duplicate_of": None,
            "decision": {"rule": "departement", "scope": "78", "winner": holder,
                         "candidates": [], "excluded": []},
            "input_offsets": {}}


def withdrawal(lead_id: str, holder: str, *, reason: str = "erased", version: int = 2,
               at: int = T0) -> dict[str, Any]:
    return lead_change(lead_id, holder=None, change="withdrawn", status="withdrawn",
                       previous=holder, reason=reason, version=version, at=at, email=None)


def command(reseller: str, kind: str, *, at: int = T0, **fields: Any) -> dict[str, Any]:
    """A ``WebhookCommand`` datum (``secret`` already sealed)."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": at, "source": "api",
            "schema_version": 1, "reseller_id": reseller, "command": kind, "url": None,
            "enabled": None, "secret": None, "overlap_ms": None, "since": None, "until": None,
            **fields}


def signed_by(request: Request, secret: str) -> bool:
    """Whether one of the request's signatures is ``secret``'s (the library's own sign)."""
    headers = request.headers
    at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(headers["webhook-id"], at, request.body)
    return expected in headers["webhook-signature"].split(" ")


class FakeSender:
    """Takes requests; the test answers them."""

    def __init__(self) -> None:
        self.sent: list[Request] = []
        self._answers: list[Result] = []

    def submit(self, request: Request) -> None:
        self.sent.append(request)

    def results(self) -> list[Result]:
        out, self._answers = self._answers, []
        return out

    def answer(self, request: Request, status: int | None = 200, *, error: str | None = None,
               retry_after: str | None = None, refused: bool = False) -> None:
        self._answers.append(Result(request.key, status, 7, error, retry_after, refused))

    def take(self) -> list[Request]:
        out, self.sent = self.sent, []
        return out


class Harness:
    """A processor over a store file, fed and flushed by the test, on a simulated clock."""

    def __init__(self, path: Path, *, policy: RetryPolicy = SHORT, per_endpoint: int = 4,
                 sender: FakeSender | None = None) -> None:
        self.store = Store(path)
        self.now = T0
        self.sender = sender or FakeSender()
        self.sealer = Sealer(None)
        self.processor = DeliveryProcessor(sender=self.sender, sealer=self.sealer,
                                           policy=policy, per_endpoint=per_endpoint,
                                           max_in_flight=100, rotation_overlap_ms=DAY_MS,
                                           clock=lambda: self.now)
        self._offset = 0
        self.codec = Codec.default()

    def feed(self, *items: tuple[str, str, dict[str, Any]]) -> list[Emit]:
        batch = []
        for topic, record, datum in items:
            self._offset += 1
            key = datum.get("lead_id") or datum["reseller_id"]
            batch.append(Inbound(topic, 0, self._offset, str(key).encode(), record, datum,
                                 self.now))
        with self.store.transaction() as txn:
            out = list(self.processor.apply(txn, batch))
            out.extend(self.processor.flush(txn, frozenset({0}), caught_up=False))
        return self._checked(out)

    def lead(self, *datums: dict[str, Any]) -> list[Emit]:
        return self.feed(*((catalog.LEADS, "LeadAssigned", d) for d in datums))

    def cmd(self, *datums: dict[str, Any]) -> list[Emit]:
        return self.feed(*((catalog.WEBHOOK_COMMANDS, "WebhookCommand", d) for d in datums))

    def flush(self) -> list[Emit]:
        with self.store.transaction() as txn:
            return self._checked(list(self.processor.flush(txn, frozenset({0}))))

    def register(self, reseller: str = "r1", *, url: str = "https://crm.example/hook",
                 secret: str | None = None, enabled: bool | None = True) -> str:
        secret = secret or new_secret()
        self.cmd(command(reseller, "register", at=self.now, url=url, enabled=enabled,
                         secret=self.sealer.seal(secret)))
        return secret

    def _checked(self, out: list[Emit]) -> list[Emit]:
        for emit in out:
            if isinstance(emit, Outbound):
                self.codec.encode(emit.record, emit.datum)  # fits its schema
        return out

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def hub(tmp_path: Path) -> Iterable[Harness]:
    harness = Harness(tmp_path / "crm.sqlite")
    yield harness
    harness.close()


def deliveries(out: Iterable[Emit]) -> list[dict[str, Any]]:
    return [dict(e.datum) for e in out
            if isinstance(e, Outbound) and e.topic == catalog.DELIVERIES]


def endpoints(out: Iterable[Emit]) -> list[dict[str, Any]]:
    return [dict(e.datum) for e in out
            if isinstance(e, Outbound) and e.topic == catalog.WEBHOOK_ENDPOINTS]


def body(request: Request) -> dict[str, Any]:
    parsed: dict[str, Any] = orjson.loads(request.body)
    return parsed


def test_a_lead_is_signed_posted_and_its_delivery_recorded(hub: Harness) -> None:
    out = hub.cmd(command("r1", "register", url="https://crm.example/hook", enabled=True,
                          secret=hub.sealer.seal(secret := new_secret())))
    [ep] = endpoints(out)
    assert (ep["enabled"], ep["version"], len(ep["secrets"])) == (True, 1, 1)
    assert secret not in repr(out)
    hub.lead(lead_change("lead-1"))
    [request] = hub.sender.take()
    assert request.url == "https://crm.example/hook"
    assert signed_by(request, secret)
    sent = body(request)
    assert (sent["type"], sent["data"]["lead_id"]) == ("lead.assigned", "lead-1")
    assert sent["data"]["business"]["contact_email"] == "contact@example.fr"
    assert request.headers["webhook-id"] == sent["id"]
    hub.now += 40
    hub.sender.answer(request, 204)
    [record] = deliveries(hub.flush())
    assert (record["outcome"], record["attempt"], record["http_status"], record["message_id"],
            record["replay"], record["lead_id"]) == (
        "delivered", 1, 204, sent["id"], False, "lead-1")
    assert not hub.processor.deliveries.pending


def test_a_message_without_an_enabled_endpoint_is_kept_skipped_and_replayed(
        hub: Harness) -> None:
    [skipped] = deliveries(hub.lead(lead_change("lead-1")))
    assert (skipped["outcome"], skipped["attempt"], skipped["error"]) == (
        "skipped", 0, "no endpoint registered")
    secret = hub.register()
    assert hub.sender.take() == []  # registering sends nothing of the past
    hub.now += 1000
    hub.cmd(command("r1", "replay", at=hub.now, since=T0 - 1, until=T0 + 1))
    [request] = hub.sender.take()
    assert request.headers["webhook-id"] == skipped["message_id"]  # the original id
    assert signed_by(request, secret)
    hub.sender.answer(request, 200)
    [done] = deliveries(hub.flush())
    assert (done["outcome"], done["replay"], done["attempt"]) == ("delivered", True, 1)
    hub.cmd(command("r1", "replay", at=hub.now, since=T0 + 1))  # nothing in that range
    hub.cmd(command("r1", "replay", at=hub.now, since=T0))
    [again] = hub.sender.take()
    hub.sender.answer(again, 200)
    [twice] = deliveries(hub.flush())
    assert again.headers["webhook-id"] == skipped["message_id"]
    assert twice["event_id"] != done["event_id"]  # another generation


def test_a_re_emitted_change_creates_no_second_message(hub: Harness) -> None:
    hub.register()
    change = lead_change("lead-1")
    hub.lead(change, change)
    [request] = hub.sender.take()
    hub.sender.answer(request, 200)
    hub.flush()
    hub.lead(change)
    assert hub.sender.take() == []
    assert hub.flush() == []


def test_a_lead_s_later_message_waits_for_its_first_whatever_the_retries(hub: Harness) -> None:
    hub.register()
    hub.lead(lead_change("lead-1"), lead_change("lead-2"))
    first, other = hub.sender.take()
    hub.sender.answer(first, 500)
    hub.sender.answer(other, 200)
    hub.lead(withdrawal("lead-1", "r1", reason="consent_withdrawn"))  # while first waits
    assert hub.sender.take() == []
    hub.now += 5_000
    hub.flush()
    [retry] = hub.sender.take()
    assert retry.headers["webhook-id"] == first.headers["webhook-id"]
    hub.sender.answer(retry, 200)
    hub.flush()
    [withdrawn] = hub.sender.take()
    assert body(withdrawn)["type"] == "lead.withdrawn"


def test_erasure_scrubs_the_kept_messages_so_a_replay_sends_no_contact(hub: Harness) -> None:
    hub.register()
    hub.lead(lead_change("lead-1"))
    [assigned] = hub.sender.take()
    assert "contact@example.fr" in assigned.body.decode()
    hub.sender.answer(assigned, 200)
    hub.lead(withdrawal("lead-1", "r1"))
    [withdrawn] = hub.sender.take()
    hub.sender.answer(withdrawn, 200)
    hub.flush()
    hub.cmd(command("r1", "replay", at=hub.now, since=0))
    replayed = hub.sender.take()
    assert [body(r)["type"] for r in replayed] == ["lead.assigned"]  # withdrawn waits its turn
    assert "contact@example.fr" not in replayed[0].body.decode()
    assert body(replayed[0])["data"]["business"]["name"] == "Boulangerie Martin"


def test_rotation_signs_with_both_secrets_until_the_overlap_ends(hub: Harness) -> None:
    old = hub.register()
    new = new_secret()
    hub.now += 1000
    [rotated] = endpoints(hub.cmd(command("r1", "rotate", at=hub.now,
                                          secret=hub.sealer.seal(new))))
    assert len(rotated["secrets"]) == 2
    assert rotated["secrets"][1]["expires_at"] == hub.now + DAY_MS
    hub.lead(lead_change("lead-1", at=hub.now))
    [both] = hub.sender.take()
    assert len(both.headers["webhook-signature"].split(" ")) == 2
    assert signed_by(both, old)
    assert signed_by(both, new)
    hub.now += DAY_MS
    [pruned] = endpoints(hub.flush())
    assert [s["expires_at"] for s in pruned["secrets"]] == [None]
    hub.lead(lead_change("lead-2", at=hub.now))
    [one] = hub.sender.take()
    assert signed_by(one, new)
    assert not signed_by(one, old)


def test_a_410_disables_the_endpoint_and_registering_again_resumes(hub: Harness) -> None:
    hub.register()
    hub.lead(lead_change("lead-1"), lead_change("lead-2"))
    first, second = hub.sender.take()
    hub.sender.answer(first, 410)
    out = hub.flush()
    [disabled] = endpoints(out)
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "gone")
    [gone] = deliveries(out)
    assert (gone["outcome"], gone["http_status"]) == ("failed", 410)
    hub.sender.answer(second, 200)  # in flight when it was disabled: recorded all the same
    assert deliveries(hub.flush())[0]["outcome"] == "delivered"
    [skipped] = deliveries(hub.lead(lead_change("lead-3")))
    assert (skipped["outcome"], skipped["error"]) == ("skipped", "endpoint disabled (gone)")
    hub.now += 1000
    hub.cmd(command("r1", "register", at=hub.now, enabled=True))
    [resumed] = hub.sender.take()  # at once, not after the schedule's wait
    assert resumed.headers["webhook-id"] == first.headers["webhook-id"]


def test_an_endpoint_failing_for_days_is_disabled(tmp_path: Path) -> None:
    policy = RetryPolicy(parse_schedule("0,3600,3600,3600"), 15_000, 2 * 3_600_000)
    hub = Harness(tmp_path / "crm.sqlite", policy=policy)
    hub.register()
    hub.lead(lead_change("lead-1"))
    out: list[Emit] = []
    for _ in range(3):
        [request] = hub.sender.take()
        hub.sender.answer(request, 500)
        out = hub.flush()
        hub.now += 3_600_000
        hub.flush()
    [disabled] = endpoints(out)
    assert (disabled["enabled"], disabled["disabled_reason"], disabled["failing_since"]) == (
        False, "failing", T0)
    assert hub.sender.take() == []  # the message waits for its owner
    hub.close()


def test_what_was_in_flight_at_a_crash_is_sent_again_under_the_same_id(tmp_path: Path) -> None:
    hub = Harness(tmp_path / "crm.sqlite")
    hub.register()
    hub.lead(lead_change("lead-1"))
    [lost] = hub.sender.take()
    hub.close()  # killed before the answer: nothing of it was recorded
    again = Harness(tmp_path / "crm.sqlite")
    again.flush()
    [request] = again.sender.take()
    assert request.headers["webhook-id"] == lost.headers["webhook-id"]
    assert request.body == lost.body
    again.sender.answer(request, 200)
    [record] = deliveries(again.flush())
    assert (record["attempt"], record["outcome"]) == (1, "delivered")
    with again.store.transaction() as txn:
        assert list(txn.items(PENDING_NS)) == []
    again.close()


def test_commands_apply_once_and_stale_tests_and_replays_are_ignored(hub: Harness) -> None:
    hub.register()
    test = command("r1", "test", at=hub.now)
    hub.cmd(test, test)
    [ping] = hub.sender.take()
    assert body(ping)["type"] == "ping"
    hub.now += 2 * 3_600_000
    hub.cmd(command("r1", "test", at=T0), command("r1", "replay", at=T0, since=0))
    assert hub.sender.take() == []


def test_commands_that_cannot_apply_are_dead_lettered(hub: Harness) -> None:
    out = hub.cmd(command("r9", "rotate", secret=hub.sealer.seal(new_secret())),
                  command("r9", "register", url="https://x.example"),
                  command("r9", "register", url="https://x.example",
                          secret=hub.sealer.seal("nope!")),  # not whsec_
                  command("r9", "register", url="https://x.example", secret=NEITHER),
                  command("r9", "explode"))
    assert [type(e) for e in out] == [Rejected] * 5
    assert all(isinstance(e, Rejected) and e.stage == "validate" for e in out)


def test_kept_messages_carry_the_contact_only_for_the_holder_of_an_open_lead(
        hub: Harness) -> None:
    hub.register("r1")
    hub.register("r2")
    hub.lead(lead_change("lead-1", holder="r1"))
    for request in hub.sender.take():
        hub.sender.answer(request, 200)
    hub.lead(lead_change("lead-1", holder=None, change="expired", status="expired",
                         previous="r1", version=2, email="contact@example.fr"),
             lead_change("lead-1", holder="r2", change="reassigned", version=3))
    for request in hub.sender.take():
        hub.sender.answer(request, 200)
    hub.flush()

    def replayed(reseller: str) -> list[Request]:
        hub.now += 1
        hub.cmd(command(reseller, "replay", at=hub.now, since=0))
        out: list[Request] = []
        while sent := hub.sender.take():  # a lead's messages go one after the other
            out.extend(sent)
            for request in sent:
                hub.sender.answer(request, 200)
            hub.flush()
        assert {r.key.partition("|")[0] for r in out} == {reseller}
        return out

    # r1 lost the lead: nothing it is sent again names the business's contact.
    assert all("contact@example.fr" not in r.body.decode() for r in replayed("r1"))
    # r2 holds it: its lead.assigned still does, until the lead closes.
    assert "contact@example.fr" in replayed("r2")[0].body.decode()
    hub.lead(lead_change("lead-1", holder="r2", change="won", status="won", version=4,
                         email=None))
    for request in hub.sender.take():
        hub.sender.answer(request, 200)
    hub.flush()
    assert all("contact@example.fr" not in r.body.decode() for r in replayed("r2"))
