"""The read model's store and queries on a real SQLite file, without a broker."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.contract import Inbound
from hub.errors import StoreError
from schemas import catalog
from services.readmodel import views
from services.readmodel.queries import Queries
from services.readmodel.store import Writer, remove

T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)

#: Offsets for ``inbounds``: increasing over the whole run, as a topic's would be.
_OFFSETS = itertools.count()


def inbounds(pairs: Iterable[tuple[str, dict[str, Any]]]) -> list[Inbound]:
    """(record name, datum) pairs as the reader hands them to the writer, at fresh offsets."""
    return [Inbound(catalog.LEADS if record == "LeadAssigned" else catalog.PASSPORTS, 0,
                    next(_OFFSETS), None, record, datum, 0) for record, datum in pairs]


def snapshot(siren: str, *, state: str = "in_training", modules: tuple[str, ...] = ("email-pro",),
             at: datetime = T0, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()), "occurred_at": at, "source": "passport",
        "schema_version": 1, "siren": siren, "name": "Boulangerie Martin", "departement": "78",
        "region": "11", "naf": "10.71C", "state": state, "modules_completed": list(modules),
        "passport_issued_at": at if state == "passport_issued" else None,
        "consent_share_with_resellers": True, "offer_requests": 0, "leads_requested": 0,
        "input_offsets": {"pn.training.v1/0": 3},
    }


def lead(lead_id: str, reseller: str | None, *, at: datetime = T0,
         status: str = "assigned") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "occurred_at": at, "source": "routing", "schema_version": 1,
        "lead_id": lead_id, "siren": "732829320", "category": "website-hosting",
        "departement": "78", "region": "11", "status": status, "reseller_id": reseller,
        "rule": "departement" if reseller else "none", "candidates": [reseller] if reseller else [],
        "business_name": "Boulangerie Martin", "contact_email": "contact@boulangerie-martin.fr",
    }


def test_passport_view_and_last_snapshot_wins(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    assert queries.passport("732829320") is None
    writer.apply(inbounds([("PassportSnapshot", snapshot("732829320"))]))
    later = T0 + timedelta(days=2)
    writer.apply(inbounds([("PassportSnapshot", snapshot(
        "732829320", state="passport_issued", at=later,
        modules=("email-pro", "office-tools", "it-security")))]))
    found = queries.passport("732829320")
    assert found is not None
    assert found["state"] == "passport_issued"
    assert found["modules_completed"] == ["email-pro", "office-tools", "it-security"]
    assert found["passport_issued_at"] == "2009-03-04T09:00:00.000+00:00"
    assert found["consent"] is True
    assert "input_offsets" not in found


def test_a_replayed_event_id_changes_nothing(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    first = snapshot("732829320", event_id="7d0b8f6e-1111-4c4e-9a51-000000000001")
    newer = snapshot("732829320", state="passport_issued", at=T0 + timedelta(hours=1))
    assert writer.apply(inbounds([("PassportSnapshot", first), ("PassportSnapshot", newer)])) == 2
    assert writer.apply(inbounds([("PassportSnapshot", first)])) == 0
    found = queries.passport("732829320")
    assert found is not None
    assert found["state"] == "passport_issued"


def test_other_records_are_ignored(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    assert writer.apply(inbounds([("ModuleCompleted", {"event_id": "x"})])) == 0
    assert queries.counts()["businesses"] == 0


def test_leads_most_recent_first_limited_and_moved_on_reassignment(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply(inbounds([("LeadAssigned", lead(f"L{i}", "web-78",
                                                  at=T0 + timedelta(minutes=i)))
                           for i in range(5)]))
    assert [x["lead_id"] for x in queries.leads_for("web-78")] == ["L4", "L3", "L2", "L1", "L0"]
    assert [x["lead_id"] for x in queries.leads_for("web-78", limit=2)] == ["L4", "L3"]
    writer.apply(inbounds([("LeadAssigned", lead("L4", "net-92", at=T0 + timedelta(days=2)))]))
    assert [x["lead_id"] for x in queries.leads_for("web-78", limit=2)] == ["L3", "L2"]
    moved = queries.leads_for("net-92")
    assert moved[0]["assigned_at"] == "2009-03-04T09:00:00.000+00:00"
    assert moved[0]["candidates"] == ["net-92"]


def test_counts(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply(inbounds([
        ("PassportSnapshot", snapshot("732829320", state="passport_issued")),
        ("PassportSnapshot", snapshot("552100554")),
        ("LeadAssigned", lead("L1", "web-78")),
        ("LeadAssigned", lead("L2", None, status="unassigned")),
    ]))
    assert queries.counts() == {"passports_issued": 1, "businesses": 2, "leads_assigned": 1,
                                "leads_unassigned": 1}


def test_a_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Queries(tmp_path / "absent.sqlite").passport("732829320")


def test_remove_deletes_the_wal_companions(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    writer.apply(inbounds([("PassportSnapshot", snapshot("732829320"))]))
    writer.close()
    remove(path)
    assert list(tmp_path.iterdir()) == []


def test_timestamps_from_ints_or_datetimes() -> None:
    assert views.millis(T0) == views.millis(int(T0.timestamp() * 1000))
    assert views.iso(None) is None
    with pytest.raises(TypeError):
        views.millis("yesterday")


def v2(siren: str, *, state: str = "in_training", departement: str = "78", region: str = "11",
       at: datetime = T0, modules: tuple[str, ...] = ("email-pro",),
       scores: tuple[int, ...] = ()) -> dict[str, Any]:
    """A v2 snapshot with every field the passport service now writes."""
    return {
        **snapshot(siren, state=state, modules=modules, at=at),
        "schema_version": 2, "departement": departement, "region": region,
        "replay_from": {"pn.training.v1/0": 2}, "contact_email": "contact@martin.fr",
        "enrolled_at": T0, "consent_withdrawn": False, "erased": False,
        "modules": [{"module_id": m, "completed_at": at} for m in modules],
        "offers": [{"event_id": "b7c3c0de-0000-4000-8000-000000000001", "occurred_at": at,
                    "category": "website-hosting", "outcome": "no_passport", "lead_id": None}],
        "feedback": [{"event_id": str(uuid.uuid4()), "module_id": modules[0],
                      "trainer_org": "trainer-google", "delegation": departement, "score": s}
                     for s in scores],
        "applied_event_ids": ["e1", "e2"],
        "parked": [{"record": "ModuleCompleted", "datum_json": "{}"}],
    }


def test_the_passport_view_never_shows_contact_or_bookkeeping(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply(inbounds([("PassportSnapshot", v2("732829320", scores=(4,)))]))
    found = queries.passport("732829320")
    assert found is not None
    assert not {"contact_email", "input_offsets", "replay_from", "applied_event_ids",
                "parked"} & found.keys()
    assert "contact@martin.fr" not in str(found)
    assert found["modules"] == [{"module_id": "email-pro",
                                 "completed_at": "2009-03-02T09:00:00.000+00:00"}]
    assert found["offers"][0]["outcome"] == "no_passport"
    assert found["feedback"] == [{"module_id": "email-pro", "trainer_org": "trainer-google",
                                  "delegation": "78", "score": 4}]
    assert found["enrolled_at"] == "2009-03-02T09:00:00.000+00:00"
    assert (found["consent"], found["consent_withdrawn"], found["erased"]) == (True, False, False)
    writer.apply(inbounds([("PassportSnapshot", {**v2("732829320"), "consent_withdrawn": True})]))
    withdrawn = queries.passport("732829320")
    assert withdrawn is not None
    assert (withdrawn["consent"], withdrawn["consent_withdrawn"]) == (False, True)


def test_counters_follow_replacements_and_equal_a_rebuild(tmp_path: Path) -> None:
    history = [
        v2("732829320", scores=(2,)),
        v2("552100554", state="passport_issued", departement="92",
           modules=("email-pro", "a", "b"), scores=(5,)),
        v2("732829320", state="passport_issued", at=T0 + timedelta(days=1),
           modules=("email-pro", "it-security", "office-tools"), scores=(2, 4)),
        v2("552100554", state="passport_issued", departement="78", at=T0 + timedelta(days=2),
           modules=("email-pro", "a", "b"), scores=(5,)),
        {**v2("356000000", state="awaiting_enrolment", departement="", region="",
              modules=()), "name": ""},
    ]
    live = Writer(tmp_path / "live.sqlite")
    for datum in history:  # one snapshot per batch: every replacement subtracts the old one
        live.apply(inbounds([("PassportSnapshot", datum)]))
    live.close()
    rebuilt = Writer(tmp_path / "rebuilt.sqlite")
    # The latest of each:
    rebuilt.apply(inbounds([("PassportSnapshot", datum) for datum in history[2:]]))
    rebuilt.close()
    figures = Queries(tmp_path / "live.sqlite").stats()
    assert figures == Queries(tmp_path / "rebuilt.sqlite").stats()
    assert figures["national"] == {"businesses_enrolled": 2, "passports_issued": 2,
                                   "share_of_target": round(2 / 150_000, 6),
                                   "awaiting_enrolment": 1}
    by_dept = {d["departement"]: d for d in figures["departements"]}
    assert (by_dept["78"]["passports_issued"], by_dept["92"]["passports_issued"]) == (2, 0)
    by_module = {m["module_id"]: m["businesses"] for m in figures["modules"]}
    assert by_module["email-pro"] == 2
    assert by_module["it-security"] == 1
    assert figures["quality"]["by_module"] == [
        {"module_id": "email-pro", "responses": 3, "average_score": round(11 / 3, 2)}]
    assert figures["quality"]["by_delegation"] == [
        {"delegation": "78", "responses": 3, "average_score": round(11 / 3, 2)}]


def test_a_replayed_snapshot_does_not_count_twice(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    datum = v2("732829320", state="passport_issued", scores=(3,))
    writer.apply(inbounds([("PassportSnapshot", datum)]))
    writer.apply(inbounds([("PassportSnapshot", datum)]))
    figures = queries.stats()
    assert figures["national"]["passports_issued"] == 1
    assert figures["quality"]["by_module"][0]["responses"] == 1


def test_a_departement_a_page_at_a_time_by_siren(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    sirens = [f"{n:09d}" for n in range(100, 125)]  # the store does not check Luhn
    writer.apply(inbounds([("PassportSnapshot", v2(s, state="passport_issued" if i % 3 == 0
                                                   else "in_training"))
                           for i, s in enumerate(reversed(sirens))]))
    writer.apply(inbounds([("PassportSnapshot", v2("000000999", departement="92")),
                           ("PassportSnapshot", {**v2("000000001", state="awaiting_enrolment",
                                                      departement="78"), "name": ""})]))
    seen: list[str] = []
    after: str | None = None
    while True:
        page = queries.passports_in("78", after=after, limit=10)
        assert page["total"] == 25
        seen += [p["siren"] for p in page["passports"]]
        after = page["next_cursor"]
        if after is None:
            break
        assert after == seen[-1]
    assert seen == sirens
    issued = queries.passports_in("78", state="passport_issued", limit=500)
    assert issued["total"] == len(issued["passports"]) == 9
    assert issued["next_cursor"] is None
    assert all(p["state"] == "passport_issued" for p in issued["passports"])
    assert queries.passports_in("78", limit=0)["passports"] == [queries.passport(sirens[0])]
    assert queries.passports_in("01") == {"passports": [], "next_cursor": None, "total": 0}
    with pytest.raises(ValueError, match="awaiting_enrolment"):
        queries.passports_in("78", state="awaiting_enrolment")


def test_who_holds_a_lead(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    assert queries.lead_holder("L1") == (False, None)
    writer.apply(inbounds([("LeadAssigned", lead("L1", "web-78")),
                           ("LeadAssigned", lead("L2", None, status="unassigned"))]))
    assert queries.lead_holder("L1") == (True, "web-78")
    assert queries.lead_holder("L2") == (True, None)


@given(st.integers(min_value=-10**12, max_value=4 * 10**12))
def test_a_timestamp_reads_the_same_as_a_datetime_and_as_epoch_ms(ms: int) -> None:
    at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    assert views.iso(at) == views.iso(ms) == views.iso(at.replace(tzinfo=None))
