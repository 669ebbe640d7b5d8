"""The KPI page's figures in the read model, from real records: passports per day, resellers.

The records are the services' own: passport snapshots from the passport rules
(``services.passport.rules`` and ``outputs.snapshot``, one after every event, as
the service emits them), lead changes from the router (``Router`` over profiles
parsed as the router parses them), reseller profiles as partners send them; all
of them through the codec, as the read model reads them from the topics.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.synthetic.identities import siren as random_siren
from hub.contract import Inbound
from schemas import catalog
from schemas.codec import Codec
from schemas.reference import region_of
from services.passport import events, outputs, rules
from services.readmodel import aggregates, kpi
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from services.routing import records
from services.routing.registry import Registry, parse_profile
from services.routing.router import Answer, LeadRequest, Router
from services.routing.state import Change

CODEC = Codec.default()
#: A Monday, 09:00 in Paris: a business day (the SLA counts those).
NOW = int(datetime(2026, 11, 2, 8, 0, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
DAY = 24 * HOUR
HOLDER, RIVAL, THIRD = "yvelines-web", "paris-web", "rival-net"
NAMES = {HOLDER: "Yvelines Web", RIVAL: "Paris Web </script>", THIRD: "Rival & Net"}
RESELLER_EMAIL = "ventes@yvelines-web.example"
BUSINESS_EMAIL = "contact@boulangerie.example"
SIRENS = [random_siren(random.Random(seed)) for seed in range(5)]


# -- records -----------------------------------------------------------------------------------

def decoded(record: str, datum: dict[str, Any]) -> dict[str, Any]:
    """A datum as a reader of the topic gets it back."""
    return CODEC.decode(CODEC.encode(record, datum)).datum


class Topics:
    """Records at increasing offsets per topic, as the read model's reader hands them over."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}
        self.read: list[Inbound] = []

    def add(self, topic: str, record: str, datum: dict[str, Any]) -> None:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        self.read.append(Inbound(topic, 0, offset, None, record, decoded(record, datum), 0))


def profile(reseller_id: str, weight: int) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": datetime(2026, 10, 1, tzinfo=UTC),
            "source": "api", "schema_version": 3, "reseller_id": reseller_id,
            "name": NAMES[reseller_id], "departements": ["78"], "categories": ["website-hosting"],
            "capacity": 10, "weight": weight, "status": "active", "delivery": "webhook",
            "webhook_url": "https://crm.example/hook", "contact_email": RESELLER_EMAIL,
            "absences": []}


@dataclass
class Business:
    """One business's partner events, run through the passport rules."""

    siren: str
    departement: str | None
    passport: rules.Passport | None = None

    def __post_init__(self) -> None:
        self.passport = rules.Passport(self.siren)

    def event(self, topics: Topics, record: str, at: datetime, **fields: Any) -> None:
        """Apply one event and emit the snapshot the service would."""
        datum = {"event_id": str(uuid.uuid4()), "occurred_at": at, "source": "test",
                 "schema_version": 1, "siren": self.siren, **fields}
        assert self.passport is not None
        self.passport = rules.apply(self.passport, events.parse(record, datum), datum).passport
        where = f"{catalog.TRAINING}/{len(topics.read)}"
        topics.add(catalog.PASSPORTS, "PassportSnapshot", outputs.snapshot(
            self.passport, event_id=outputs.snapshot_id(self.siren, where),
            input_offsets={where: len(topics.read) + 1}, replay_from={}))

    def enrol(self, topics: Topics, at: datetime) -> None:
        assert self.departement is not None
        self.event(topics, "BusinessEnrolled", at, name="Boulangerie Martin",
                   departement=self.departement, naf="10.71C", employees=3,
                   contact_email=BUSINESS_EMAIL, advisor_id=None,
                   delegation=f"cefac-{self.departement}", consent_share_with_resellers=True)

    def modules(self, topics: Topics, at: datetime, *module_ids: str) -> None:
        for step, module_id in enumerate(module_ids):
            self.event(topics, "ModuleCompleted", at + timedelta(minutes=step),
                       module_id=module_id, trainer_org="Google")

    def feedback(self, topics: Topics, at: datetime, module_id: str, score: int) -> None:
        self.event(topics, "TrainingFeedback", at, module_id=module_id, trainer_org="Google",
                   delegation=f"cefac-{self.departement}", score=score, comment=None)


THREE = ("website-create", "website-traffic", "email-pro")
D1 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)
#: 23:30 UTC on the 2nd is 00:30 on the 3rd in Paris (CET): the passport's day is the 3rd.
LATE_EVENING = datetime(2009, 3, 2, 23, 30, tzinfo=UTC)


def passports(topics: Topics) -> None:
    """Three passports on three Paris days (in three régions), one in training, one awaiting
    its enrolment; feedback from three; every snapshot of their way there."""
    yvelines, marseille, ajaccio, training, early = (
        Business(SIRENS[0], "78"), Business(SIRENS[1], "13"), Business(SIRENS[2], "2A"),
        Business(SIRENS[3], "78"), Business(SIRENS[4], None))
    yvelines.enrol(topics, D1 - timedelta(days=3))
    yvelines.modules(topics, D1 - timedelta(minutes=2), *THREE)
    yvelines.feedback(topics, D1 + timedelta(hours=1), "website-create", 4)
    marseille.enrol(topics, D1)
    marseille.modules(topics, LATE_EVENING - timedelta(minutes=2), *THREE)
    marseille.feedback(topics, LATE_EVENING, "website-create", 2)
    ajaccio.modules(topics, D1 + timedelta(days=3), *THREE)  # trainer first: parked ...
    ajaccio.enrol(topics, D1 + timedelta(days=3, hours=2))  # ... issued at its 3rd module
    training.enrol(topics, D1)
    training.modules(topics, D1 + timedelta(days=1), *THREE[:2])
    training.feedback(topics, D1 + timedelta(days=1), "website-traffic", 5)
    early.modules(topics, D1, "email-pro")  # parked until its enrolment


def lead_changes(topics: Topics) -> Router:
    """Three leads: answered on time then won; rejected then expired; answered late."""
    weights = {HOLDER: 5, RIVAL: 1, THIRD: 1}
    datums = [profile(rid, weight) for rid, weight in weights.items()]
    for datum in datums:
        topics.add(catalog.RESELLERS, "ResellerProfile", datum)
    router = Router(Registry.of(parse_profile(decoded("ResellerProfile", d)) for d in datums))

    def request(lead_id: str) -> LeadRequest:
        # One business a lead: a second open request of a business is a duplicate.
        siren = SIRENS[int(lead_id[1:])]
        return LeadRequest(lead_id, siren, "Boulangerie Martin", "78", region_of("78"),
                           "website-hosting", BUSINESS_EMAIL, NOW)

    def holder(changes: list[Change]) -> str:
        held = changes[-1].lead.holder
        assert held is not None
        return held

    changes = router.request(request("L1"), NOW)
    changes += router.answer(Answer("L1", holder(changes), "accepted"), NOW + HOUR)
    changes += router.answer(Answer("L1", holder(changes), "won"), NOW + 2 * HOUR)
    changes += router.request(request("L2"), NOW)
    changes += router.answer(Answer("L2", holder(changes), "rejected", "budget"), NOW + HOUR)
    changes += router.expire(NOW + 10 * DAY)  # its second holder never answers
    late = router.request(request("L3"), NOW + 10 * DAY)
    deadline = late[-1].lead.deadline_at
    assert deadline is not None
    # Answered past the deadline, before the router's flush expired it: late, but taken.
    late += router.answer(Answer("L3", holder(late), "accepted"), deadline + HOUR)
    for change in changes + late:
        topics.add(catalog.LEADS, "LeadAssigned", records.datum(change, {}))
    return router


@pytest.fixture
def fed(model: tuple[Writer, Queries]) -> tuple[Topics, Router, Queries]:
    writer, queries = model
    topics = Topics()
    passports(topics)
    router = lead_changes(topics)
    assert writer.apply(topics.read) == len(topics.read)
    return topics, router, queries


# -- the document ------------------------------------------------------------------------------

def test_passports_per_day_are_the_days_they_were_issued_in_paris(
        fed: tuple[Topics, Router, Queries]) -> None:
    _topics, _router, queries = fed
    document = queries.kpi()
    assert document["passports_by_day"] == {"series": [
        {"date": "2009-03-02", "issued": 1, "cumulative": 1},
        {"date": "2009-03-03", "issued": 1, "cumulative": 2},
        {"date": "2009-03-05", "issued": 1, "cumulative": 3}], "undated": 0}
    assert document["national"]["passports_issued"] == 3


def test_the_document_carries_the_stats_figures_unchanged(
        fed: tuple[Topics, Router, Queries]) -> None:
    _topics, _router, queries = fed
    document = queries.kpi()
    stats = queries.stats()
    assert {key: document[key] for key in stats} == stats
    issued = {r["region"]: r["passports_issued"] for r in document["regions"]}
    assert (issued["11"], issued["93"], issued["94"]) == (1, 1, 1)
    assert len(document["regions"]) == 18
    by_module = {q["module_id"]: q for q in document["quality"]["by_module"]}
    assert by_module["website-create"] == {"module_id": "website-create", "responses": 2,
                                           "average_score": 3.0}
    assert by_module["website-traffic"]["average_score"] == 5.0
    assert document["national"]["awaiting_enrolment"] == 1


def test_resellers_stand_as_the_router_counts_them(fed: tuple[Topics, Router, Queries]) -> None:
    _topics, router, queries = fed
    rows = {row["reseller_id"]: row for row in queries.kpi()["resellers"]["by_reseller"]}
    assert set(rows) == {HOLDER, RIVAL, THIRD}
    for reseller_id, standing in router.state.standings.items():
        assert rows[reseller_id]["received"] == standing.received
        assert rows[reseller_id]["entitlement"] == pytest.approx(standing.entitlement, abs=1e-3)
    total = sum(s.received for s in router.state.standings.values())
    assert sum(row["share_of_leads"] for row in rows.values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(row["share_of_entitlement"] for row in rows.values()) == pytest.approx(1.0,
                                                                                     abs=1e-5)
    assert rows[HOLDER]["share_of_leads"] == pytest.approx(rows[HOLDER]["received"] / total)
    assert {rid: row["name"] for rid, row in rows.items()} == NAMES
    assert rows[HOLDER]["weight"] == 5


def test_answers_count_on_time_late_or_expired_for_the_holder_that_gave_them(
        fed: tuple[Topics, Router, Queries]) -> None:
    _topics, _router, queries = fed
    document = queries.kpi()
    rows = document["resellers"]["by_reseller"]
    totals = {name: sum(row[name] for row in rows) for name in (
        "answered_on_time", "answered_late", "expired", "accepted", "rejected", "won", "lost")}
    # L1 accepted on time and won; L2 rejected on time, then expired; L3 accepted late.
    assert totals == {"answered_on_time": 2, "answered_late": 1, "expired": 1, "accepted": 2,
                      "rejected": 1, "won": 1, "lost": 0}
    assert document["resellers"]["sla"] == {"answered_on_time": 2, "answered_late": 1,
                                            "expired": 1, "due": 4, "on_time_rate": 0.5}
    assert document["leads"]["sla_breaches"] == 1
    for row in rows:
        due = row["answered_on_time"] + row["answered_late"] + row["expired"]
        assert row["on_time_rate"] == (None if due == 0 else
                                       pytest.approx(row["answered_on_time"] / due))


def test_no_business_no_siren_and_no_contact_data_in_the_document(
        fed: tuple[Topics, Router, Queries]) -> None:
    _topics, _router, queries = fed
    text = json.dumps(queries.kpi(), ensure_ascii=False)
    for secret in (BUSINESS_EMAIL, RESELLER_EMAIL, "crm.example", "Boulangerie", *SIRENS):
        assert secret not in text


def test_a_rebuild_in_other_batches_and_a_replay_give_the_same_document(
        fed: tuple[Topics, Router, Queries], tmp_path: Path) -> None:
    topics, _router, queries = fed
    expected = queries.kpi()
    again = Writer(tmp_path / "again.sqlite")
    try:
        for inbound in topics.read:  # one record a batch
            again.apply([inbound])
        assert again.apply(topics.read) == 0  # every event id seen: nothing moves
        assert Queries(tmp_path / "again.sqlite").kpi() == expected
    finally:
        again.close()


def test_an_empty_model_has_an_empty_document(model: tuple[Writer, Queries]) -> None:
    _writer, queries = model
    document = queries.kpi()
    assert document["passports_by_day"] == {"series": [], "undated": 0}
    assert document["resellers"] == {
        "known": 0, "leads_received": 0, "by_reseller": [],
        "sla": {"answered_on_time": 0, "answered_late": 0, "expired": 0, "due": 0,
                "on_time_rate": None}}


def test_a_later_profile_renames_the_reseller(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    topics = Topics()
    topics.add(catalog.RESELLERS, "ResellerProfile", profile(HOLDER, 5))
    topics.add(catalog.RESELLERS, "ResellerProfile", {**profile(HOLDER, 2), "name": "YW SAS",
                                                      "status": "paused"})
    writer.apply(topics.read)
    (row,) = queries.kpi()["resellers"]["by_reseller"]
    assert (row["name"], row["status"], row["weight"], row["received"]) == (
        "YW SAS", "paused", 2, 0)


# -- the pure rules ----------------------------------------------------------------------------

def test_an_issued_snapshot_without_a_date_counts_as_undated() -> None:
    counters = aggregates.contributions({"state": "passport_issued", "departement": "78",
                                         "region": "11", "passport_issued_at": None})
    assert kpi.passports_by_day(counters) == {"series": [], "undated": 1}


def test_the_paris_day_follows_summer_time() -> None:
    # 22:30 UTC is 00:30 the next day in summer (CEST), 23:30 the same day in winter (CET).
    assert aggregates.paris_day(datetime(2009, 7, 1, 22, 30, tzinfo=UTC)) == "2009-07-02"
    assert aggregates.paris_day(datetime(2009, 1, 1, 22, 30, tzinfo=UTC)) == "2009-01-01"
    assert aggregates.paris_day(int(datetime(2009, 1, 1, 23, 30, tzinfo=UTC).timestamp()
                                    * 1000)) == "2009-01-02"


def test_a_queued_lead_s_answer_is_no_sla_answer() -> None:
    accepted = {"change": "accepted", "reseller_id": "cefac-national",
                "occurred_at": datetime(2026, 11, 2, tzinfo=UTC)}
    queued = {"status": "queued", "deadline_at": None}
    assert aggregates.reseller_change_counts(accepted, queued) == {
        (aggregates.RESELLER, "cefac-national", "accepted"): 1}


def test_a_withdrawal_and_an_assignment_count_nothing_for_a_reseller() -> None:
    at = datetime(2026, 11, 2, tzinfo=UTC)
    assert aggregates.reseller_change_counts(
        {"change": "withdrawn", "previous_reseller_id": HOLDER, "reseller_id": HOLDER,
         "occurred_at": at}, {"status": "assigned", "deadline_at": None}) == {}
    assert aggregates.reseller_change_counts(
        {"change": "assigned", "reseller_id": HOLDER, "occurred_at": at}, None) == {}
