"""Properties: any datum that fits its schema survives the codec; no bytes make it crash."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import HEADER_SIZE, MARKER, Codec
from schemas.errors import ContractError

CODEC = Codec.default()

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=40),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "boolean": st.booleans(),
    "double": st.floats(allow_nan=False),  # NaN never equals itself: no round trip to compare
}

_MILLIS = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001 - hypothesis takes naive bounds
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001 - idem
    timezones=st.just(UTC),
).map(lambda at: at.replace(microsecond=at.microsecond - at.microsecond % 1000))


def strategy(schema: Any) -> st.SearchStrategy[Any]:  # noqa: PLR0911 - one return per Avro type
    """Values of an Avro schema, as the codec takes and gives them back."""
    if isinstance(schema, str):
        return _PRIMITIVES[schema]
    if isinstance(schema, list):
        return st.one_of(*(st.none() if b == "null" else strategy(b) for b in schema))
    logical = schema.get("logicalType")
    if logical == "uuid":
        return st.uuids().map(str)
    if logical == "timestamp-millis":
        return _MILLIS
    if schema["type"] == "array":
        return st.lists(strategy(schema["items"]), max_size=5)
    if schema["type"] == "map":
        return st.dictionaries(st.text(max_size=20), strategy(schema["values"]), max_size=5)
    if schema["type"] == "record":
        return st.fixed_dictionaries({f["name"]: strategy(f["type"]) for f in schema["fields"]})
    return strategy(schema["type"])


@pytest.mark.parametrize("record", CODEC.registry.records())
@settings(database=None, deadline=None, max_examples=50,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(record: str, data: st.DataObject) -> None:
    schema = CODEC.registry.current(record)
    datum = data.draw(strategy(dict(schema.raw)))
    decoded = CODEC.decode(CODEC.encode(record, datum))
    assert decoded.record == record
    assert decoded.version == schema.version
    assert decoded.datum == {**datum, "schema_version": schema.version}


# -- hostile bytes: whatever arrives on a topic, decode answers or raises ContractError --

FINGERPRINTS = st.sampled_from([schema.fingerprint for schema in CODEC.registry.schemas()])
HOSTILE = settings(database=None, deadline=None, max_examples=150,
                   suppress_health_check=[HealthCheck.too_slow])


def decodes_or_refuses(data: bytes) -> None:
    """Decode ``data``: a result or a ContractError, never another exception."""
    try:
        decoded = CODEC.decode(data)
    except ContractError:
        return
    assert decoded.record in CODEC.registry.records()
    assert isinstance(decoded.datum, dict)


@HOSTILE
@given(data=st.binary(max_size=64))
def test_random_bytes_are_refused_as_contract_errors(data: bytes) -> None:
    decodes_or_refuses(data)


@HOSTILE
@given(fingerprint=FINGERPRINTS, body=st.binary(max_size=200))
def test_a_known_header_over_random_bytes_is_refused_or_decoded(
    fingerprint: bytes, body: bytes
) -> None:
    # Past the framing, straight into fastavro with a real schema: the hard case.
    decodes_or_refuses(MARKER + fingerprint + body)


@HOSTILE
@given(data=st.data())
def test_a_damaged_valid_value_is_refused_or_decoded(data: st.DataObject) -> None:
    record = data.draw(st.sampled_from(CODEC.registry.records()), label="record")
    datum = data.draw(strategy(dict(CODEC.registry.current(record).raw)), label="datum")
    value = bytearray(CODEC.encode(record, datum))
    for _ in range(data.draw(st.integers(1, 4), label="damages")):
        where = data.draw(st.integers(HEADER_SIZE, len(value)), label="where")
        damage = data.draw(st.sampled_from(["flip", "cut", "insert", "truncate"]), label="damage")
        if damage == "flip" and where < len(value):
            value[where] ^= data.draw(st.integers(1, 255), label="mask")
        elif damage == "cut":
            del value[where : where + data.draw(st.integers(1, 8), label="length")]
        elif damage == "insert":
            value[where:where] = data.draw(st.binary(min_size=1, max_size=8), label="bytes")
        else:
            del value[where:]
    decodes_or_refuses(bytes(value))
