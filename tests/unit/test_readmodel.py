"""The read model's store and queries on a real SQLite file, without a broker."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.errors import StoreError
from services.readmodel import views
from services.readmodel.queries import Queries
from services.readmodel.store import Writer, remove

T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)


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


@pytest.fixture
def model(tmp_path: Path) -> Iterator[tuple[Writer, Queries]]:
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    yield writer, Queries(path)
    writer.close()


def test_passport_view_and_last_snapshot_wins(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    assert queries.passport("732829320") is None
    writer.apply([("PassportSnapshot", snapshot("732829320"))])
    later = T0 + timedelta(days=2)
    writer.apply([("PassportSnapshot", snapshot(
        "732829320", state="passport_issued", at=later,
        modules=("email-pro", "office-tools", "it-security")))])
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
    assert writer.apply([("PassportSnapshot", first), ("PassportSnapshot", newer)]) == 2
    assert writer.apply([("PassportSnapshot", first)]) == 0
    found = queries.passport("732829320")
    assert found is not None
    assert found["state"] == "passport_issued"


def test_other_records_are_ignored(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    assert writer.apply([("ModuleCompleted", {"event_id": "x"})]) == 0
    assert queries.counts()["businesses"] == 0


def test_leads_most_recent_first_limited_and_moved_on_reassignment(
        model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply([("LeadAssigned", lead(f"L{i}", "web-78", at=T0 + timedelta(minutes=i)))
                  for i in range(5)])
    assert [x["lead_id"] for x in queries.leads_for("web-78")] == ["L4", "L3", "L2", "L1", "L0"]
    assert [x["lead_id"] for x in queries.leads_for("web-78", limit=2)] == ["L4", "L3"]
    writer.apply([("LeadAssigned", lead("L4", "net-92", at=T0 + timedelta(days=2)))])
    assert [x["lead_id"] for x in queries.leads_for("web-78", limit=2)] == ["L3", "L2"]
    moved = queries.leads_for("net-92")
    assert moved[0]["assigned_at"] == "2009-03-04T09:00:00.000+00:00"
    assert moved[0]["candidates"] == ["net-92"]


def test_counts(model: tuple[Writer, Queries]) -> None:
    writer, queries = model
    writer.apply([
        ("PassportSnapshot", snapshot("732829320", state="passport_issued")),
        ("PassportSnapshot", snapshot("552100554")),
        ("LeadAssigned", lead("L1", "web-78")),
        ("LeadAssigned", lead("L2", None, status="unassigned")),
    ])
    assert queries.counts() == {"passports_issued": 1, "businesses": 2, "leads_assigned": 1,
                                "leads_unassigned": 1}


def test_a_missing_file_is_a_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        Queries(tmp_path / "absent.sqlite").passport("732829320")


def test_remove_deletes_the_wal_companions(tmp_path: Path) -> None:
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    writer.apply([("PassportSnapshot", snapshot("732829320"))])
    writer.close()
    remove(path)
    assert list(tmp_path.iterdir()) == []


def test_timestamps_from_ints_or_datetimes() -> None:
    assert views.millis(T0) == views.millis(int(T0.timestamp() * 1000))
    assert views.iso(None) is None
    with pytest.raises(TypeError):
        views.millis("yesterday")
