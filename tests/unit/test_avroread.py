"""Compiled Avro readers: fastavro's datums for every schema version, and refusals of bad bytes."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader
from hypothesis import given
from hypothesis import strategies as st

from schemas.avroread import UnsupportedSchemaError, compile_reader
from schemas.codec import _without_uuid as without_uuid
from tests.unit.test_avrowrite import PROPERTIES, SCHEMAS, fastavro_bytes, values

#: The codec reads uuid fields as the strings they are on the wire.
READ_FORMS = {name: without_uuid(copy.deepcopy(dict(s.raw))) for name, s in SCHEMAS.items()}


def fastavro_datum(schema: dict[str, Any], data: bytes) -> Any:
    buffer = io.BytesIO(data)
    datum = schemaless_reader(buffer, parse_schema(copy.deepcopy(schema), named_schemas={}))
    assert buffer.tell() == len(data)
    return datum


def outcome(read: Any) -> tuple[str, Any]:
    """What a read gives: ("datum", it) or ("refused", None)."""
    try:
        return "datum", read()
    except (ValueError, IndexError, EOFError, OverflowError, UnicodeDecodeError,
            KeyError, TypeError):
        return "refused", None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_version_compiles_to_its_own_reader(name: str) -> None:
    reader = compile_reader(READ_FORMS[name])
    record = str(READ_FORMS[name]["name"]).rsplit(".", 1)[-1]
    assert reader.__code__.co_filename == f"<avro reader {record}>"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@PROPERTIES
@given(data=st.data())
def test_reads_what_fastavro_reads(name: str, data: st.DataObject) -> None:
    schema = READ_FORMS[name]
    datum = data.draw(values(SCHEMAS[name].raw))
    encoded = fastavro_bytes(SCHEMAS[name].raw, datum)
    prefix = data.draw(st.binary(max_size=3))  # the body need not start at 0
    reader = compile_reader(schema)
    kind, mine = outcome(lambda: reader(prefix + encoded, len(prefix)))
    theirs = outcome(lambda: fastavro_datum(schema, encoded))
    # Both refuse the same datums: timestamps past datetime's years 1-9999.
    assert kind == theirs[0]
    if kind == "datum":
        assert mine == (theirs[1], len(prefix) + len(encoded))


@pytest.mark.parametrize("name", ["ModuleCompleted.v1", "PassportSnapshot.v2",
                                  "BusinessEnrolled.v2"])
@PROPERTIES
@given(data=st.data())
def test_cut_or_altered_bytes_are_refused_or_read_as_fastavro_reads_them(
        name: str, data: st.DataObject) -> None:
    schema = READ_FORMS[name]
    encoded = bytearray(fastavro_bytes(SCHEMAS[name].raw, data.draw(values(SCHEMAS[name].raw))))
    if data.draw(st.booleans()):
        encoded = encoded[:data.draw(st.integers(0, max(0, len(encoded) - 1)))]
    elif encoded:
        encoded[data.draw(st.integers(0, len(encoded) - 1))] = data.draw(st.integers(0, 255))
    reader = compile_reader(schema)
    kind, mine = outcome(lambda: reader(bytes(encoded), 0))
    if kind == "datum":
        # Whatever it reads is what fastavro reads from the same bytes, up to where it stopped.
        datum, end = mine
        assert end <= len(encoded)
        assert datum == fastavro_datum(schema, bytes(encoded[:end]))


def test_a_length_past_the_end_is_refused_not_truncated() -> None:
    reader = compile_reader({"type": "record", "name": "R", "fields": [
        {"name": "s", "type": "string"}]})
    assert reader(b"\x06abc", 0) == ({"s": "abc"}, 4)
    with pytest.raises(EOFError):
        reader(b"\x08abc", 0)  # 4 bytes announced, 3 there
    with pytest.raises(EOFError):
        reader(b"\x05abc", 0)  # a negative length


def test_unions_enums_maps_and_blocks_with_sizes() -> None:
    schema = {"type": "record", "name": "R", "namespace": "x", "fields": [
        {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
        {"name": "u", "type": ["null", "E", "long"]},
        {"name": "m", "type": {"type": "map", "values": "int"}},
        {"name": "a", "type": {"type": "array", "items": "boolean"}},
    ]}
    # Blocks written with a negative count and their size in bytes, as writers may.
    data = bytes([2, 2, 2, 1, 8, 2, ord("k"), 0x80, 0x01, 0, 3, 4, 1, 0, 0])
    assert compile_reader(schema)(data, 0) == (
        {"e": "B", "u": "B", "m": {"k": 64}, "a": [True, False]}, len(data))
    assert fastavro_datum(schema, data) == {"e": "B", "u": "B", "m": {"k": 64},
                                            "a": [True, False]}
    with pytest.raises(IndexError):
        compile_reader(schema)(bytes([4]), 0)  # enum index 2 of 2 symbols


def test_what_it_does_not_compile_it_says() -> None:
    with pytest.raises(UnsupportedSchemaError):
        compile_reader({"type": "record", "name": "R", "fields": [
            {"name": "d", "type": {"type": "int", "logicalType": "date"}}]})
    with pytest.raises(UnsupportedSchemaError):
        compile_reader({"type": "array", "items": "int"})


def test_the_generated_source_is_plain_python() -> None:
    schema = json.loads(json.dumps(READ_FORMS["ModuleCompleted.v1"]))
    reader = compile_reader(schema)
    assert reader.__code__.co_filename == "<avro reader ModuleCompleted>"


def test_longs_at_the_edges_and_past_them() -> None:
    reader = compile_reader({"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "long"}]})
    for value in (0, -1, 63, -64, 64, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)):
        data = fastavro_bytes({"type": "record", "name": "R", "fields": [
            {"name": "n", "type": "long"}]}, {"n": value})
        assert reader(data, 0) == ({"n": value}, len(data))
    with pytest.raises(ValueError, match="10 bytes"):
        reader(bytes([0x81] + [0x80] * 10 + [0x01]), 0)
    with pytest.raises(ValueError, match="64 bits"):
        reader(bytes([0xFF] * 9 + [0x7F]), 0)
