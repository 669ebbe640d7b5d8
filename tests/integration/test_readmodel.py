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
from services.readmodel import ReadModel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

T = TypeVar("T")
T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)
SIREN = "732829320"


def passport_datum(siren: str = SIREN, *, state: str = "in_training",
                   modules: tuple[str, ...] = ("website-create",),
                   at: datetime = T0) -> dict[str, Any]:
    """A PassportSnapshot as the passport service writes it."""
    return {
        "event_id": str(uuid.uuid4()), "occurred_at": at, "source": "passport", "siren": siren,
        "name": "Boulangerie Martin", "departement": "78", "region": "11", "naf": "10.71C",
        "state": state, "modules_completed": list(modules),
        "passport_issued_at": at if state == "passport_issued" else None,
        "consent_share_with_resellers": True, "offer_requests": 0, "leads_requested": 0,
        "input_offsets": {},
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


def _issued(model: ReadModel) -> dict[str, Any] | None:
    found = model.passport(SIREN)
    return found if found is not None and found["state"] == "passport_issued" else None
