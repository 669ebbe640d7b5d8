"""Almost valid events posted to the real API: never a 5xx, and nothing refused is published.

The app is the real one (``create_app`` under uvicorn, real HTTP) over the
fakes of the unit tests: a read side that knows nothing and a publisher that
keeps what it is given, encoded by the real codec. The events are those of
tests/unit/test_fields_hostile.py (a valid example, one field mutated), sent
one by one and in batches beside a valid one. Every answer is 202 (and its
event, clean, is the one record the publisher got), 409 (an event id reused
with another body) or 422 (and the publisher got nothing), or 400 for a body
strict JSON cannot read (a lone surrogate escape, a NaN); never a 5xx.
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from pydantic_core import from_json

from connectors.api import bodies, create_app
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.publish import Record
from hub.config import Settings
from schemas.codec import Codec
from schemas.models import EXAMPLES, EventModel
from tests.integration.test_api import serve
from tests.unit.test_api_webhooks import Side, Writer
from tests.unit.test_fields_hostile import FUZZ, almost_valid, strings, unprintable

pytestmark = pytest.mark.timeout(300)

#: The answers, for the campaign's figures (printed at the end with -s).
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    print(f"\n{__name__}: {dict(sorted(TALLY.items()))}")

DEV = "hostile-dev-key"
CODEC = Codec.default()
#: Free-text fields, where TAB, LF and CR are text.
FREE = frozenset({"comment", "reason"})
#: The one record per accepted event, and none for the rest.
PASSES = {202}
REFUSALS = {409, 422}


class AvroWriter(Writer):
    """The fake publisher, with the real encoding: an event the codec cannot write fails
    here as it would at the broker."""

    def record(self, event: EventModel) -> Record:
        return Record(event.TOPIC, event.key().encode(),
                      CODEC.encode(event.RECORD, event.to_avro()))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, AvroWriter]]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    settings_ = Settings(kafka_bootstrap_servers="127.0.0.1:9", data_dir=tmp, api_rate_per_s=0)
    store = AcceptedStore(tmp / "accepted.sqlite", retention_s=3600)
    writer = AvroWriter()
    app = create_app(settings_, publisher=writer, readside=Side(),
                     keyring=KeyRing(None, DEV), store=store, registry=CollectorRegistry())
    try:
        with serve(app) as base, httpx.Client(
                base_url=base, timeout=30,
                headers={"Authorization": f"Bearer {DEV}",
                         "Content-Type": "application/json"}) as client:
            yield client, writer
    finally:
        store.close()


_IDS = itertools.count(1)


def fresh(event: dict[str, Any], mutated: str) -> dict[str, Any]:
    """``event`` under an event id of its own (unless its id is what was mutated), so that
    a valid one is a new acceptance, not a 409 against an earlier test's."""
    if mutated != "event_id":
        event["event_id"] = str(uuid.UUID(int=next(_IDS), version=4))
    return event


def body(document: Any) -> bytes:
    """What a client sends: JSON, non-ASCII escaped (so a lone surrogate travels as its
    escape); NaN written as Python's json writes it, which strict JSON refuses."""
    return json.dumps(document, ensure_ascii=True).encode()


def strict_json(data: bytes) -> bool:
    try:
        from_json(data)
    except ValueError:
        return False
    return True


def assert_published_clean(records: list[Record]) -> None:
    for record in records:
        datum = CODEC.decode(record.value).datum
        for field, text in strings(datum):
            assert not unprintable(text, free=field in FREE), (field, ascii(text))


def post(client: httpx.Client, writer: AvroWriter, path: str, data: bytes) -> httpx.Response:
    TALLY["http requests"] += 1
    before = len(writer.published)
    answer = client.post(path, content=data)
    assert answer.status_code < 500, answer.text[:500]
    TALLY[f"http {answer.status_code}"] += 1
    assert_published_clean(writer.published[before:])
    return answer


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
@settings(FUZZ, max_examples=80)
@given(case=st.data())
def test_an_almost_valid_event_is_202_or_refused_and_never_published(
        kind: str, case: st.DataObject, api: tuple[httpx.Client, AvroWriter]) -> None:
    client, writer = api
    event, mutated = case.draw(almost_valid(kind))
    data = body(fresh(event, mutated))
    before = len(writer.published)
    answer = post(client, writer, "/v1/events", data)
    if len(data) > bodies.MAX_EVENT_BYTES:
        assert answer.status_code == 413, answer.text[:500]
    elif not strict_json(data):
        assert answer.status_code == 400, answer.text[:500]
    else:
        assert answer.status_code in PASSES | REFUSALS, answer.text[:500]
    published = len(writer.published) - before
    assert published == (1 if answer.status_code == 202 else 0), answer.text[:500]
    if answer.status_code == 422:
        fields = [error["field"] for error in answer.json()["errors"]]
        assert fields, answer.text[:500]
        assert all(fields), answer.text[:500]


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
@settings(FUZZ, max_examples=30)
@given(case=st.data())
def test_a_batch_publishes_its_valid_event_and_not_the_mutated_one(
        kind: str, case: st.DataObject, api: tuple[httpx.Client, AvroWriter]) -> None:
    client, writer = api
    event, mutated = case.draw(almost_valid(kind))
    valid = fresh(dict(EXAMPLES[kind]), "")
    data = body({"events": [valid, fresh(event, mutated)]})
    before = len(writer.published)
    answer = post(client, writer, "/v1/events:batch", data)
    if len(data) > bodies.MAX_BATCH_BYTES or not strict_json(data):
        assert answer.status_code in {400, 413}, answer.text[:500]
        assert len(writer.published) == before
        return
    assert answer.status_code in {202, 207}, answer.text[:500]
    results = answer.json()["results"]
    statuses = [result["status"] for result in results]
    assert statuses[0] == 202, answer.text[:500]
    assert set(statuses) <= PASSES | REFUSALS, answer.text[:500]
    assert len(writer.published) - before == statuses.count(202), answer.text[:500]


def test_an_occurred_at_before_the_first_utc_instant_is_a_422(
        api: tuple[httpx.Client, AvroWriter]) -> None:
    client, writer = api
    event = fresh({**EXAMPLES["offer_requested"], "occurred_at": "0001-01-01T00:30:00+01:00"}, "")
    before = len(writer.published)
    answer = client.post("/v1/events", content=body(event))
    assert len(writer.published) == before
    assert answer.status_code == 422, answer.text[:500]
