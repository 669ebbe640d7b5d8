"""What one run left behind, as plain data: the topics, the API's answers, the deliveries.

``Observed`` is what the checks (reliability/checks.py) compare: with the oracle, with
the crash-free run, with itself. It holds projections, not the raw records: a lead
change without its times (which differ between two runs by nature) but with everything
a decision is made of; a passport as the API shows it; a delivery as the CRM got it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.crm_webhook.receiver import Delivery
from reliability.chaos import Killed
from reliability.leaks import Findings
from services.readmodel import views


@dataclass(frozen=True, slots=True)
class Change:
    """One record of ``pn.leads.v1``, without its times."""

    offset: int
    event_id: str
    lead_id: str
    version: int
    change: str
    status: str
    reseller_id: str | None
    previous_reseller_id: str | None
    reason: str | None
    hops: int
    siren: str
    category: str
    departement: str
    region: str
    duplicate_of: str | None
    has_contact: bool
    decision: tuple[Any, ...]
    """Rule, scope, winner, each candidate's standing, the exclusions: the whole why."""

    def decided(self) -> tuple[Any, ...]:
        """What two runs of one plan must agree on (no offset, no event id: the same
        decision re-sent after a crash is the same decision)."""
        return (self.version, self.change, self.status, self.reseller_id,
                self.previous_reseller_id, self.reason, self.hops, self.duplicate_of,
                self.decision)


def change(offset: int, datum: Mapping[str, Any]) -> Change:
    """The projection of one ``LeadAssigned`` datum."""
    trace = datum.get("decision")
    decision: tuple[Any, ...] = ()
    if trace:
        decision = (trace["rule"], trace.get("scope"), trace.get("winner"),
                    tuple((c["reseller_id"], int(c["weight"]), int(c["received"]),
                           round(float(c["entitlement"]), 6), int(c["open"]), int(c["capacity"]))
                          for c in trace.get("candidates") or ()),
                    tuple(sorted((e["reseller_id"], e["reason"])
                                 for e in trace.get("excluded") or ())))
    return Change(offset=offset, event_id=str(datum["event_id"]), lead_id=str(datum["lead_id"]),
                  version=int(datum.get("version", 1)), change=str(datum.get("change")),
                  status=str(datum["status"]), reseller_id=datum.get("reseller_id"),
                  previous_reseller_id=datum.get("previous_reseller_id"),
                  reason=datum.get("reason"), hops=int(datum.get("hops", 0)),
                  siren=str(datum["siren"]), category=str(datum["category"]),
                  departement=str(datum["departement"]), region=str(datum["region"]),
                  duplicate_of=datum.get("duplicate_of"),
                  has_contact=bool(datum.get("contact_email")), decision=decision)


@dataclass(frozen=True, slots=True)
class Received:
    """One delivery a CRM receiver got."""

    reseller_id: str
    webhook_id: str
    type: str
    lead_id: str | None
    version: int | None
    verified: bool | None
    has_contact: bool
    status: str | None = None
    """The lead's status the message tells of."""

    @property
    def message(self) -> tuple[str, str | None, int | None, str]:
        """What the message is about, whatever id it came under."""
        return (self.reseller_id, self.lead_id, self.version, self.type)


def received(delivery: Delivery) -> Received:
    """A receiver's record of one request, as the campaign counts it."""
    try:
        body = delivery.json()
    except ValueError:
        body = {}
    data = body.get("data") if isinstance(body, dict) else None
    data = data if isinstance(data, dict) else {}
    business = data.get("business")
    business = business if isinstance(business, dict) else {}
    version = data.get("version")
    return Received(reseller_id=delivery.path.strip("/"),
                    webhook_id=delivery.headers.get("webhook-id", ""),
                    type=str(body.get("type") if isinstance(body, dict) else ""),
                    lead_id=data.get("lead_id"),
                    version=int(version) if isinstance(version, int) else None,
                    verified=delivery.verified, has_contact="contact_email" in business,
                    status=data.get("status"))


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One lead event the read model's feed holds for a reseller (what a CRM must get)."""

    reseller_id: str
    message_id: str
    type: str
    lead_id: str | None
    version: int | None

    @property
    def message(self) -> tuple[str, str | None, int | None, str]:
        return (self.reseller_id, self.lead_id, self.version, self.type)


def feed_item(event: Mapping[str, Any]) -> FeedItem:
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    assert isinstance(data, dict)
    version = data.get("version")
    return FeedItem(str(event.get("reseller_id")), str(event.get("id")), str(event.get("type")),
                    data.get("lead_id"), int(version) if isinstance(version, int) else None)


def passport_view(datum: Mapping[str, Any]) -> dict[str, Any]:
    """A snapshot as the API shows it (so topic and read model compare directly)."""
    return views.passport(datum)


@dataclass
class Observed:
    """Everything one run left behind."""

    accepted: dict[str, str] = field(default_factory=dict)
    """Event id → record, for every event the hub acknowledged."""
    channels: Counter[str] = field(default_factory=Counter)
    http: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    inputs: dict[str, Counter[str]] = field(default_factory=dict)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The latest snapshot of each business, as the API view of it."""
    erased_contact: dict[str, bool] = field(default_factory=dict)
    """Per business: whether its latest snapshot still holds a contact e-mail."""
    snapshot_records: int = 0
    passports: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    """What ``GET /v1/passports/{siren}`` answered (None: no passport)."""
    changes: list[Change] = field(default_factory=list)
    lead_requests: list[tuple[str, str, str]] = field(default_factory=list)
    """``pn.lead-requests.v1`` in order: (record, lead id, event id)."""
    lead_views: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    feed: list[FeedItem] = field(default_factory=list)
    deliveries: list[Received] = field(default_factory=list)
    answers: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    """Answer event id → (lead id, version answered, answer)."""
    kills: list[Killed] = field(default_factory=list)
    starts: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, int] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    """Per process: the log lines at level error or above (the first 200)."""
    timings: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    leaks: Findings = field(default_factory=Findings)
    """The leak scan of the run's logs, metrics and dead letters (reliability/leaks.py)."""
