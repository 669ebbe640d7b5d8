"""The trusted encode path: byte for byte what the strict one writes, for every event."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.publish import Publisher
from hub.config import Settings
from schemas.codec import Codec
from schemas.errors import MalformedRecordError, UnknownSchemaError
from schemas.models import EXAMPLES, MODELS_BY_TYPE, EventModel, parse_event
from tests.unit.test_models_properties import EVENTS, LATER, PROPERTIES

CODEC = Codec.default()
PUBLISHER = Publisher(Settings(kafka_bootstrap_servers="127.0.0.1:1", topic_prefix="t."))


def strict_bytes(model: EventModel) -> bytes:
    return CODEC.encode(model.RECORD, model.to_avro())


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_a_published_example_has_the_bytes_of_the_strict_encode(kind: str) -> None:
    model = parse_event(EXAMPLES[kind])
    record = PUBLISHER.record(model)
    assert record.value == strict_bytes(model)
    assert record.key == model.key().encode()
    assert record.topic == f"t.{model.TOPIC}"
    assert CODEC.encode_trusted(model.RECORD, model.to_avro()) == strict_bytes(model)


@pytest.mark.parametrize("kind", sorted(EVENTS))
@PROPERTIES
@given(data=st.data())
def test_any_valid_event_is_published_with_the_bytes_of_the_strict_encode(
        kind: str, data: st.DataObject) -> None:
    model = parse_event(json.dumps(data.draw(EVENTS[kind], label="event")).encode(), now=LATER)
    assert isinstance(model, MODELS_BY_TYPE[kind])
    assert PUBLISHER.record(model).value == strict_bytes(model)


def test_the_datum_given_is_left_as_it_was() -> None:
    datum = parse_event(EXAMPLES["reseller_profile"]).to_avro()
    del datum["schema_version"]
    before = dict(datum)
    CODEC.encode_trusted("ResellerProfile", datum)
    assert datum == before


def test_a_uuid_object_is_written_as_its_canonical_text() -> None:
    datum = parse_event(EXAMPLES["offer_requested"]).to_avro()
    as_uuid = {**datum, "event_id": UUID(datum["event_id"])}
    assert CODEC.encode_trusted("OfferRequested", as_uuid) == CODEC.encode("OfferRequested", datum)


@pytest.mark.parametrize(("change", "error"), [
    ({"surprise": 1}, "more fields than the schema"),
    ({"siren": None}, "must be string on field siren"),
])
def test_what_fastavro_refuses_is_still_refused(change: dict[str, Any], error: str) -> None:
    datum = parse_event(EXAMPLES["offer_requested"]).to_avro() | change
    with pytest.raises(MalformedRecordError, match=error):
        CODEC.encode_trusted("OfferRequested", datum)


def test_a_missing_field_without_default_is_refused() -> None:
    datum = parse_event(EXAMPLES["offer_requested"]).to_avro()
    del datum["category"]
    with pytest.raises(MalformedRecordError, match="category"):
        CODEC.encode_trusted("OfferRequested", datum)


def test_an_unknown_record_is_refused() -> None:
    with pytest.raises(UnknownSchemaError):
        CODEC.encode_trusted("NoSuchRecord", {})


def test_the_strict_encode_still_refuses_what_the_trusted_one_takes_on_trust() -> None:
    datum = parse_event(EXAMPLES["training_feedback"]).to_avro()
    with pytest.raises(MalformedRecordError, match="32-bit int"):
        CODEC.encode("TrainingFeedback", datum | {"score": 4.0})
    with pytest.raises(MalformedRecordError, match="not a UUID"):
        CODEC.encode("TrainingFeedback", datum | {"event_id": "not-a-uuid"})
