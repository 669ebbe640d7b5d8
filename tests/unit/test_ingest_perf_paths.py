"""The ingest's faster ways keep every check: one clock per batch, the writer's tuning."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.api import bodies
from connectors.api.idempotency import Accepted, AcceptedStore
from schemas.models import EXAMPLES, EventModel


def enrolment(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["business_enrolled"], **changes}


def test_a_batch_refuses_an_event_from_the_future_by_its_own_clock_reading() -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body = json.dumps({"events": [enrolment(), enrolment(occurred_at=ahead)]}).encode()
    first, second = bodies.batch(body)
    assert isinstance(first, EventModel)
    assert isinstance(second, dict)
    assert second["status"] == 422
    assert [e["field"] for e in second["errors"]] == ["occurred_at"]
    assert "ahead of now" in second["errors"][0]["message"]


def test_a_batch_takes_an_event_just_inside_the_tolerance() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=4)).isoformat()
    (event,) = bodies.batch(json.dumps({"events": [enrolment(occurred_at=soon)]}).encode())
    assert isinstance(event, EventModel)


def test_what_the_store_remembers_outlives_it(tmp_path: Path) -> None:
    # The writer checkpoints rarely: closing must still leave every row in the file.
    path = tmp_path / "accepted.sqlite"
    store = AcceptedStore(path, retention_s=3600)
    accepted = [Accepted(f"00000000-0000-4000-8000-{i:012d}", "ab" * 32, "t") for i in range(3000)]
    try:
        store.remember(accepted)
        assert store.flush()
    finally:
        store.close()
    again = AcceptedStore(path, retention_s=3600)
    try:
        assert again.lookup([a.event_id for a in accepted]) == {a.event_id: a for a in accepted}
    finally:
        again.close()
