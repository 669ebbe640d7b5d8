"""The passport service whose store reaches its size cap: it stops, loses nothing, resumes.

The real service (``python -m services.passport``) runs as a child process on the
test's broker with ``PASSPORT_HUB_STORE_MAX_MB`` set low and small batches, over
synthetic partner traffic already on the topics. Its store fills mid-way: SQLite
answers SQLITE_FULL (the cap is ``PRAGMA max_page_count``, the same error a full
disk gives), the batch in hand rolls back, and the process exits with one
``store.full`` line and exit code 75. Restarted on the same store with the cap
raised, it goes on from the positions it had committed: in the end every business's
snapshot is what the rules give, and no snapshot or lead was written twice.

The API, whose idempotency file reaches its cap, answers new events 503 with
Retry-After from then on, and says so on ``/readyz``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from connectors.api import ModelReadSide, create_app
from connectors.api.auth import KeyRing
from connectors.publish import Publisher
from hub.config import Settings
from hub.errors import StoreUnwritable
from hub.processor import store_path
from hub.store import Store
from schemas import catalog
from schemas.models import EventModel
from services.readmodel import ReadModel
from tests.integration.processes import Service, services
from tests.integration.test_api import DEV_KEY, enrolment, read_topic, serve
from tests.integration.test_passport_crash import (
    Outputs,
    _as_intended,
    _expected,
    _one_id_per_lead,
    _traffic_and_intent,
)
from tests.unit.test_store_full import accepted_at_cap

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

BUSINESSES = 1500
#: Small enough to be reached mid-way through the traffic, large enough for the first
#: batches (an empty store is ~30 KB).
CAP_MB = 1
#: Several batches commit before the cap is reached: the restart has positions to go on from.
BATCH = 250


class Ids:
    """Every record's event id on the passport and lead topics (repeats kept)."""

    def __init__(self, outputs: Outputs) -> None:
        self.snapshots: Counter[str] = Counter()
        self.leads: Counter[str] = Counter()
        self._outputs = outputs

    def poll(self) -> None:
        for inbound in self._outputs.reader.poll(timeout_ms=200):
            counter = self.snapshots if inbound.topic == catalog.PASSPORTS else self.leads
            counter[inbound.datum["event_id"]] += 1
            if inbound.topic == catalog.PASSPORTS:
                self._outputs.snapshots[inbound.datum["siren"]] = inbound.datum
            else:
                self._outputs.lead_event_ids[inbound.datum["lead_id"]].add(
                    inbound.datum["event_id"])


def _publish(settings: Settings, sent: list[EventModel]) -> None:
    publisher = Publisher(settings)
    try:
        failures = publisher.publish_records([publisher.record(event) for event in sent])
        assert not any(failures), failures
    finally:
        publisher.close()


def _log_events(service: Service) -> list[dict[str, object]]:
    found = []
    for line in service.lines:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def test_a_store_at_its_cap_stops_the_service_and_a_restart_with_room_loses_nothing(
        topics: Settings, tmp_path: Path) -> None:
    sent, intent = _traffic_and_intent(businesses=BUSINESSES, seed=13)
    expected, leads = _expected(sent)
    _publish(topics, sent)
    outputs = Outputs(topics)
    ids = Ids(outputs)
    data = tmp_path / "passport"
    path = store_path(topics.model_copy(update={"data_dir": data}), "passport")
    small = {"PASSPORT_HUB_STORE_MAX_MB": str(CAP_MB),
             "PASSPORT_HUB_BATCH_MAX_RECORDS": str(BATCH),
             "PASSPORT_HUB_POLL_MAX_RECORDS": str(BATCH)}
    with services() as running:
        capped = Service(topics, data, f"{topics.group_prefix}-capped", env=small)
        running.append(capped)
        code = capped.process.wait(timeout=120)
        capped.stop()  # reaps the output reader
        output = "".join(capped.lines)
        assert code == StoreUnwritable.exit_code, output[-3000:]
        events = _log_events(capped)
        full = [e for e in events if e.get("event") == "store.full"]
        assert len(full) == 1, output[-3000:]
        assert full[0]["level"] == "error"
        assert full[0]["path"] == str(path)
        assert "PASSPORT_HUB_STORE_MAX_MB" in str(full[0]["hint"])
        assert "Traceback" not in output

        # It stopped mid-way, on what it had committed: some positions, not all of them.
        with Store(path, max_mb=0) as store:
            applied = sum(store.positions().values())
            left_in_outbox = store.pending_count()
        assert 0 < applied < len(sent), applied
        assert left_in_outbox == 0  # the close relayed what had been committed

        resumed = Service(topics, data, f"{topics.group_prefix}-resumed",
                          env={**small, "PASSPORT_HUB_STORE_MAX_MB": "64"})
        running.append(resumed)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not outputs.matches(expected, leads):
            ids.poll()
        got = outputs.passports()
        assert outputs.matches(expected, leads), (
            f"{sum(got.get(s) != p for s, p in expected.items())} of {len(expected)} passports "
            f"differ; leads missing {sorted(leads - set(outputs.lead_event_ids))[:3]}")
        resumed.stop()
        assert resumed.process.returncode == 0, "".join(resumed.lines[-30:])
        assert not any(e.get("event") == "store.full" for e in _log_events(resumed))
    ids.poll()
    outputs.close()
    _one_id_per_lead(outputs)
    _as_intended(outputs, intent)
    assert leads  # the traffic asks for leads, so losing one would show
    assert {i: n for i, n in ids.snapshots.items() if n > 1} == {}, "a snapshot sent twice"
    assert {i: n for i, n in ids.leads.items() if n > 1} == {}, "a lead record sent twice"


def test_the_api_at_its_caps_answers_503_with_retry_after_and_never_a_202_it_cannot_keep(
        topics: Settings, readmodel: ReadModel, tmp_path: Path) -> None:
    store = accepted_at_cap(tmp_path / "accepted.sqlite")
    publisher = Publisher(topics)
    app = create_app(topics, publisher=publisher, readside=ModelReadSide(readmodel),
                     keyring=KeyRing(None, DEV_KEY), store=store, registry=CollectorRegistry())
    accepted: list[str] = []
    refused: list[httpx.Response] = []
    try:
        with serve(app) as base, httpx.Client(
                base_url=base, timeout=15,
                headers={"Authorization": f"Bearer {DEV_KEY}"}) as client:
            for _ in range(400):  # the table's last page holds a few dozen rows
                answer = client.post("/v1/events", json=enrolment())
                if answer.status_code != 202:
                    refused.append(answer)
                    break
                accepted.append(answer.json()["event_id"])
            # Once the store said it is full, nothing more is accepted.
            refused.extend(client.post("/v1/events", json=enrolment()) for _ in range(5))
            ready = client.get("/readyz")
    finally:
        store.close()
        publisher.close()
    assert accepted, "the store took no event at all: the test shows nothing"
    assert [r.status_code for r in refused] == [503] * 6, refused[0].text
    assert all(r.headers["Retry-After"] for r in refused)
    assert "cannot record accepted events" in refused[0].json()["detail"]
    assert ready.status_code == 503
    assert ready.json()["checks"]["store"] is False
    # Every 202 is on the topic once; nothing refused is.
    on_topic = Counter(r.datum["event_id"] for r in read_topic(topics, catalog.ENROLMENTS))
    assert on_topic == Counter(accepted)
