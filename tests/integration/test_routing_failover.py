"""Two routers in one group: SIGKILL the active one while leads flow; the standby carries on.

Both run as ``python -m services.routing`` children with a clock 60,000 times
as fast as the wall's (two business days in a few seconds), so deadlines fire
throughout, before and after the takeover. Nobody answers: every lead is given
to a reseller, expires, goes to the next, and after three hops waits in the
national queue. From what is on ``pn.leads.v1`` the test checks that no lead
was lost, none decided twice (one content per event id, versions 1..n without
a gap), no deadline missed (every lead ends queued after its hops) or fired
early, and no reseller ever held more open leads than its capacity.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from hub.config import Settings
from hub.reader import TopicReader
from schemas import catalog
from tests.integration.processes import Service, services
from tests.integration.test_routing_service import lead_request, profile, requests, resellers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEADS = 240
HOPS = 3
CAPACITY = 100
PROFILES = [profile(f"r{i}", ["78"], capacity=CAPACITY, weight=1 + i % 3) for i in range(6)]


def _active(service: Service) -> bool:
    """Whether the service's latest assignment gave it partitions."""
    assigned = [line for line in service.lines if '"partitions.assigned"' in line]
    return bool(assigned) and '"partitions": []' not in assigned[-1]


def _feed(settings: Settings, leads: list[dict[str, Any]], seconds: float) -> threading.Thread:
    def run() -> None:
        step = max(1, len(leads) // 40)
        for start in range(0, len(leads), step):
            requests(settings, *leads[start:start + step])
            time.sleep(seconds / 40)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_the_standby_takes_over_and_no_lead_is_lost_doubled_or_left_to_expire_unseen(
        topics: Settings, tmp_path: Path) -> None:
    resellers(topics, *PROFILES)
    leads = [lead_request() for _ in range(LEADS)]
    env = {"PASSPORT_HUB_ROUTING_CLOCK_SPEED": "60000",
           "PASSPORT_HUB_ROUTING_CLOCK_ORIGIN_MS": str(int(time.time() * 1000)),
           "PASSPORT_HUB_ROUTING_MAX_HOPS": str(HOPS)}
    group = f"{topics.group_prefix}-{uuid.uuid4().hex[:6]}"
    reader = TopicReader(topics, [catalog.LEADS])
    reader.start()
    records: list[dict[str, Any]] = []
    with services() as running:
        for name in ("a", "b"):
            running.append(Service(topics, tmp_path / name, group, module="services.routing",
                                   restored_marker="routing.restored", env=env))
        deadline = time.monotonic() + 90
        while not any(_active(s) for s in running) or not all(
                any('"partitions.assigned"' in line for line in s.lines) for s in running):
            assert time.monotonic() < deadline, "".join(running[0].lines[-20:])
            time.sleep(0.2)
        feeder = _feed(topics, leads, seconds=10)
        time.sleep(5)
        active = next(s for s in running if _active(s))
        standby = next(s for s in running if s is not active)
        before = {r["event_id"] for r in records}
        records.extend(r.datum for r in reader.poll(timeout_ms=0))
        before = {r["event_id"] for r in records}
        active.kill()
        killed_at = time.monotonic()
        first_new: float | None = None
        feeder.join(timeout=60)
        deadline = time.monotonic() + 180
        while True:
            batch = [r.datum for r in reader.poll(timeout_ms=500)]
            if first_new is None and any(r["event_id"] not in before for r in batch):
                first_new = time.monotonic()
            records.extend(batch)
            latest = _latest(records)
            if len(latest) == LEADS and all(c["status"] == "queued" for c in latest.values()):
                break
            assert time.monotonic() < deadline, (
                f"{len(latest)} leads seen, {sum(c['status'] == 'queued' for c in latest.values())}"
                f" queued\n" + "".join(standby.lines[-30:]))
        assert standby.restored >= 1, "the standby never restored the router's state"
    reader.close()
    assert first_new is not None
    print(f"failover: first decision of the standby {first_new - killed_at:.1f}s after SIGKILL")
    _check(records, {lead["lead_id"] for lead in leads})


def _latest(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for record in records:
        held = latest.get(record["lead_id"])
        if held is None or record["version"] > held["version"]:
            latest[record["lead_id"]] = record
    return latest


def _check(records: list[dict[str, Any]], lead_ids: set[str]) -> None:
    by_id: dict[str, dict[str, Any]] = {}
    for record in records:  # a resent record is the same event: same id, same content
        assert by_id.setdefault(record["event_id"], record) == record, record["lead_id"]
    versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in by_id.values():
        versions[record["lead_id"]].append(record)
    assert set(versions) == lead_ids  # none lost
    open_counts: dict[str, int] = defaultdict(int)
    holder: dict[str, str | None] = {}
    for record in by_id.values():  # topic order: one partition, the router's order
        lead_id = record["lead_id"]
        if holder.get(lead_id):
            open_counts[holder[lead_id]] -= 1  # type: ignore[index]
        holder[lead_id] = record["reseller_id"] if record["status"] == "assigned" else None
        if holder[lead_id]:
            open_counts[holder[lead_id]] += 1  # type: ignore[index]
            assert open_counts[holder[lead_id]] <= CAPACITY  # type: ignore[index]
    for lead_id, changes in versions.items():
        changes.sort(key=lambda c: c["version"])
        assert [c["version"] for c in changes] == list(range(1, len(changes) + 1)), lead_id
        kinds = [c["change"] for c in changes]
        assert kinds == ["assigned", *["expired", "reassigned"] * (HOPS - 1), "expired",
                         "queued"], (lead_id, kinds)
        assert changes[-1]["reason"] == "hop_limit"
        holders = [c["reseller_id"] for c in changes if c["change"] in ("assigned", "reassigned")]
        assert len(set(holders)) == HOPS  # never the same reseller twice
        for given, expired in itertools.pairwise(changes):
            if expired["change"] == "expired":
                assert expired["occurred_at"] >= given["deadline_at"]  # never early
