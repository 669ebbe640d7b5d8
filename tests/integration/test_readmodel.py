"""The read model against a real broker: it serves what the state topics hold, rebuilt at start."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hub import kafka
from hub.config import Settings
from schemas import catalog
from schemas.codec import Codec
from schemas.reference import region_of
from services.readmodel import ReadModel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T = TypeVar("T")
T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)
SIREN = "732829320"
#: The contact e-mail every snapshot carries: it must never come out of the API.
CONTACT = "contact@boulangerie-martin.fr"


def passport_datum(siren: str = SIREN, *, state: str = "in_training",
                   modules: tuple[str, ...] = ("website-create",),
                   at: datetime = T0, departement: str = "78",
                   scores: tuple[tuple[str, int], ...] = ()) -> dict[str, Any]:
    """A PassportSnapshot v2 as the passport service writes it, personal data and bookkeeping
    included (``scores``: (trainer organisation, score) feedback on the first module)."""
    awaiting = state == "awaiting_enrolment"
    return {
        "event_id": str(uuid.uuid4()), "occurred_at": at, "source": "passport", "siren": siren,
        "name": "" if awaiting else "Boulangerie Martin",
        "departement": "" if awaiting else departement,
        "region": "" if awaiting else region_of(departement), "naf": "10.71C",
        "state": state, "modules_completed": list(modules),
        "passport_issued_at": at if state == "passport_issued" else None,
        "consent_share_with_resellers": True, "offer_requests": 0, "leads_requested": 0,
        "input_offsets": {"pn.training.v1/0": 7}, "replay_from": {"pn.training.v1/0": 5},
        "contact_email": CONTACT, "enrolled_at": None if awaiting else T0,
        "consent_withdrawn": False, "erased": False,
        "modules": [{"module_id": m, "completed_at": at} for m in modules],
        "offers": [], "applied_event_ids": [str(uuid.uuid4())],
        "feedback": [{"event_id": str(uuid.uuid4()), "module_id": modules[0],
                      "trainer_org": org, "delegation": departement, "score": score}
                     for org, score in scores],
        "parked": [{"record": "ModuleCompleted", "datum_json": "{}"}] if awaiting else [],
    }


def lead_datum(lead_id: str, reseller: str, *, at: datetime = T0) -> dict[str, Any]:
    """A LeadAssigned as the routing service writes it."""
    return {
        "event_id": str(uuid.uuid4()), "occurred_at": at, "source": "routing", "lead_id": lead_id,
        "siren": SIREN, "category": "website-hosting", "departement": "78", "region": "11",
        "status": "assigned", "reseller_id": reseller, "rule": "departement",
        "candidates": [reseller], "business_name": "Boulangerie Martin",
        "contact_email": "contact@boulangerie-martin.fr",
    }


def produce(settings: Settings, topic: str, record: str, key: str,
            datums: list[dict[str, Any]]) -> None:
    """Write records to a catalog topic and wait for the broker's acknowledgements."""
    codec = Codec.default()
    producer = kafka.producer(settings)
    try:
        futures = [producer.send(settings.topic(topic), key=datum[key].encode(),
                                 value=codec.encode(record, datum)) for datum in datums]
        for future in futures:
            future.get(timeout=10)
    finally:
        producer.close(timeout=5)


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    """Poll ``check`` until it returns a truthy value, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


@pytest.fixture
def readmodel(topics: Settings, tmp_path: Path) -> Iterator[ReadModel]:
    model = ReadModel(topics, tmp_path / "readmodel.sqlite", poll_timeout_ms=100)
    yield model
    model.stop()


@pytest.mark.timeout(20)
def test_serves_passports_and_leads_and_the_latest_snapshot_wins(
        topics: Settings, readmodel: ReadModel) -> None:
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren", [passport_datum()])
    readmodel.start()
    assert readmodel.wait_caught_up(10)
    first = readmodel.passport(SIREN)
    assert first is not None
    assert first["state"] == "in_training"

    # Records arriving after the catch-up are followed.
    issued = passport_datum(state="passport_issued", at=T0 + timedelta(days=3),
                            modules=("website-create", "website-traffic", "email-pro"))
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren", [issued])
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id",
            [lead_datum("lead-1", "yvelines-web"),
             lead_datum("lead-2", "yvelines-web", at=T0 + timedelta(hours=1))])
    latest = wait_for(lambda: _issued(readmodel), 10, "the issued passport")
    assert latest["modules_completed"] == ["website-create", "website-traffic", "email-pro"]
    wait_for(lambda: len(readmodel.leads_for("yvelines-web")) == 2, 10, "both leads")
    leads = readmodel.leads_for("yvelines-web")
    assert [lead["lead_id"] for lead in leads] == ["lead-2", "lead-1"]
    assert readmodel.counts() == {"passports_issued": 1, "businesses": 1, "leads_assigned": 2,
                                  "leads_unassigned": 0}


@pytest.mark.timeout(20)
def test_a_restart_rebuilds_from_the_topics(topics: Settings, tmp_path: Path) -> None:
    path = tmp_path / "readmodel.sqlite"
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum(), passport_datum("552100554", state="passport_issued")])
    first = ReadModel(topics, path, poll_timeout_ms=100)
    first.start()
    try:
        assert first.wait_caught_up(10)
        assert first.counts()["businesses"] == 2
    finally:
        first.stop()
    path.write_bytes(b"not a database any more")  # whatever was left, start() starts afresh

    second = ReadModel(topics, path, poll_timeout_ms=100)
    second.start()
    try:
        assert second.wait_caught_up(10)
        assert second.counts() == {"passports_issued": 1, "businesses": 2, "leads_assigned": 0,
                                   "leads_unassigned": 0}
        assert second.records_read == 2
    finally:
        second.stop()


@pytest.mark.timeout(30)
def test_figures_follow_replaced_snapshots_and_a_rebuild_gives_the_same(
        topics: Settings, readmodel: ReadModel, tmp_path: Path) -> None:
    other = "552100554"
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren", [
        passport_datum(SIREN, scores=(("trainer-google", 2),)),
        passport_datum(other, state="enrolled", departement="92", modules=("email-pro",)),
        passport_datum("356000000", state="awaiting_enrolment", modules=("email-pro",))])
    readmodel.start()
    assert readmodel.wait_caught_up(10)
    before = readmodel.stats()
    assert before["national"]["businesses_enrolled"] == 2
    assert before["national"]["awaiting_enrolment"] == 1

    # Each business moves on: one is issued (with more feedback), the other moves to the 78.
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren", [
        passport_datum(SIREN, state="passport_issued", at=T0 + timedelta(days=2),
                       modules=("website-create", "website-traffic", "email-pro"),
                       scores=(("trainer-google", 2), ("cci-78", 5))),
        passport_datum(other, state="in_training", departement="78", at=T0 + timedelta(days=2),
                       modules=("email-pro",))])
    # The two businesses may sit on two partitions, applied in two batches: wait for both.
    after = wait_for(lambda: _settled(readmodel.stats()), 10, "both replacements")
    assert after["national"] == {"businesses_enrolled": 2, "passports_issued": 1,
                                 "share_of_target": round(1 / 150_000, 6),
                                 "awaiting_enrolment": 1}
    by_dept = {d["departement"]: d for d in after["departements"]}
    assert (by_dept["78"]["businesses_enrolled"], by_dept["78"]["passports_issued"]) == (2, 1)
    assert by_dept["92"]["businesses_enrolled"] == 0
    by_module = {m["module_id"]: m["businesses"] for m in after["modules"]}
    assert (by_module["website-create"], by_module["email-pro"]) == (1, 3)
    assert after["quality"]["by_trainer_org"] == [
        {"trainer_org": "cci-78", "responses": 1, "average_score": 5.0},
        {"trainer_org": "trainer-google", "responses": 1, "average_score": 2.0}]

    rebuilt = ReadModel(topics, tmp_path / "rebuilt.sqlite", poll_timeout_ms=100)
    rebuilt.start()
    try:
        assert rebuilt.wait_caught_up(10)
        assert rebuilt.records_read == 5
        assert rebuilt.stats() == readmodel.stats() == after
        assert rebuilt.passports_in("78") == readmodel.passports_in("78")
    finally:
        rebuilt.stop()


def _settled(figures: dict[str, Any]) -> dict[str, Any] | None:
    yvelines = next(d for d in figures["departements"] if d["departement"] == "78")
    done = (yvelines["businesses_enrolled"], yvelines["passports_issued"]) == (2, 1)
    return figures if done else None


def _issued(model: ReadModel) -> dict[str, Any] | None:
    found = model.passport(SIREN)
    return found if found is not None and found["state"] == "passport_issued" else None
