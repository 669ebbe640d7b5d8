"""Property: any datum that fits a record's schema survives encode then decode unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.codec import Codec

CODEC = Codec.default()

_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=40),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    "boolean": st.booleans(),
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
@settings(database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(record: str, data: st.DataObject) -> None:
    schema = CODEC.registry.current(record)
    datum = data.draw(strategy(dict(schema.raw)))
    decoded = CODEC.decode(CODEC.encode(record, datum))
    assert decoded.record == record
    assert decoded.version == schema.version
    assert decoded.datum == {**datum, "schema_version": schema.version}
