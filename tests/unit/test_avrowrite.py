"""Compiled Avro writers: fastavro's bytes for every schema version, and its refusals."""

from __future__ import annotations

import enum
import functools
import inspect
import io
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any
from uuid import UUID

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.publish import _avro_fields
from schemas.avrowrite import Write, compile_writer, fastavro_writer, writer
from schemas.models import parse_event
from schemas.registry import ParsedSchema, SchemaRegistry
from tests.unit.test_codec import SAMPLES
from tests.unit.test_models_properties import EVENTS, LATER

REGISTRY = SchemaRegistry.load()
SCHEMAS = {f"{s.record}.v{s.version}": s for s in REGISTRY.schemas()}
PROPERTIES = settings(
    database=None, deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow]
)

# -- values of any schema, in every form the compiled code takes, at the edges ---------

_EDGES = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, -8193, 2**27 - 1, 2**27, 2**41 - 1,
          2**41, -(2**41)]
_INTS = st.one_of(st.integers(-(2**31), 2**31 - 1),
                  st.sampled_from([*(e for e in _EDGES if -(2**31) <= e < 2**31),
                                   2**31 - 1, -(2**31)]))
_LONGS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(2**27, 2**41),
                   st.sampled_from([*_EDGES, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63)]))
_ZONES = [UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30)),
          timezone(timedelta(hours=14)), timezone(timedelta(hours=-12)),
          timezone(timedelta(hours=5, minutes=45, seconds=17, microseconds=999_999)),
          timezone(-timedelta(minutes=3, microseconds=1))]
_AWARE = st.datetimes(timezones=st.sampled_from(_ZONES))  # years 1 to 9999, any microsecond
_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": _INTS,
    "long": _LONGS,
    "float": st.one_of(st.floats(width=32), st.integers(-(2**24), 2**24)),
    "double": st.one_of(st.floats(), st.integers(-(2**53), 2**53)),
    "bytes": st.one_of(st.binary(max_size=8), st.binary().map(bytearray)),
    # Sizes from 1024 up are written without the table.
    "string": st.one_of(st.text(max_size=20), st.text(max_size=2).map(lambda s: s * 600)),
}


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def values(  # noqa: PLR0911 - one return per kind of Avro type
    schema: Any, named: dict[str, st.SearchStrategy[Any]] | None = None,
    ns: str | None = None, in_union: bool = False,
) -> st.SearchStrategy[Any]:
    """Values of an Avro schema: every type, nulls and not, the edges, the usual forms."""
    named = {} if named is None else named
    if isinstance(schema, list):
        return st.one_of(*(values(b, named, ns, in_union=True) for b in schema))
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return _PRIMITIVES[schema]
        full = next(n for n in (_fullname(schema, ns), schema) if n in named)
        return st.deferred(lambda: named[full])
    logical, kind = schema.get("logicalType"), schema["type"]
    if logical == "uuid":
        return st.one_of(st.uuids(), st.uuids().map(str))
    if logical == "timestamp-millis":
        return st.one_of(_AWARE, _LONGS)
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if kind in {"record", "enum", "fixed"}:
        full = _fullname(schema["name"], schema.get("namespace", ns))
        inner = full.rpartition(".")[0] or None
        if kind == "enum":
            named[full] = st.sampled_from(schema["symbols"])
        elif kind == "fixed":
            named[full] = st.binary(min_size=schema["size"], max_size=schema["size"])
        else:
            named[full] = st.just({})  # while its fields refer to it
            fields = schema["fields"]
            named[full] = st.fixed_dictionaries(
                {f["name"]: values(f["type"], named, inner) for f in fields if "default" not in f},
                optional={f["name"]: values(f["type"], named, inner) for f in fields
                          if "default" in f},
            )
        return named[full]
    if kind == "array":
        items = st.lists(values(schema["items"], named, ns), max_size=4)
        # A tuple in a union is fastavro's (branch, value) notation, not an array.
        return items if in_union else st.one_of(items, items.map(tuple))
    return st.dictionaries(st.text(max_size=8), values(schema["values"], named, ns), max_size=4)


@functools.cache
def _parsed(schema: str) -> Any:
    return parse_schema(json.loads(schema), named_schemas={})


def fastavro_bytes(schema: Mapping[str, Any], datum: Any) -> bytes:
    buffer = io.BytesIO()
    parsed = _parsed(json.dumps(schema))
    schemaless_writer(buffer, parsed, datum, strict_allow_default=True)
    return buffer.getvalue()


def _plain(schema: Any) -> Any:
    # Without logical types: fastavro reads any long back, not only datetime's years.
    if isinstance(schema, list):
        return [_plain(branch) for branch in schema]
    if isinstance(schema, dict):
        return {k: _plain(v) for k, v in schema.items() if k != "logicalType"}
    return schema


def reads_back(schema: Mapping[str, Any], data: bytes) -> None:
    """fastavro reads all of ``data``, and writes what it read with the same bytes."""
    plain = _plain(schema)
    buffer = io.BytesIO(data)
    datum = schemaless_reader(buffer, _parsed(json.dumps(plain)))
    assert buffer.tell() == len(data)
    assert fastavro_bytes(plain, datum) == data


#: What fastavro, or its validation, raises for a value that does not fit.
REFUSED = (ValueError, TypeError, OverflowError)


def record_of(kind: Any) -> dict[str, Any]:
    return {"type": "record", "name": "R", "fields": [{"name": "x", "type": kind}]}


def declined(datum: Mapping[str, Any]) -> bytes:
    raise AssertionError("the compiled code declined a datum of the usual forms")


def compiled(schema: Mapping[str, Any], fallback: Write | None = None) -> Write:
    write = compile_writer(schema, fallback=fallback)
    assert write is not None
    return write


# -- every schema of the contract --------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_version_of_every_record_compiles(name: str) -> None:
    assert compile_writer(SCHEMAS[name].raw) is not None


@pytest.mark.parametrize("name", sorted(SCHEMAS))
@PROPERTIES
@given(data=st.data())
def test_the_bytes_are_fastavros_for_every_schema_version(name: str, data: st.DataObject) -> None:
    schema = SCHEMAS[name].raw
    datum = data.draw(values(dict(schema)), label="datum")
    written = compiled(schema)(datum)
    assert written == fastavro_bytes(schema, datum)
    reads_back(schema, written)


@pytest.mark.parametrize("kind", sorted(EVENTS))
@PROPERTIES
@given(data=st.data())
def test_a_valid_event_takes_the_compiled_path_with_fastavros_bytes(
        kind: str, data: st.DataObject) -> None:
    model = parse_event(json.dumps(data.draw(EVENTS[kind], label="event")).encode(), now=LATER)
    schema = REGISTRY.current(model.RECORD).raw
    for datum in (_avro_fields(model), model.to_avro()):  # trusted and strict encodes
        assert compiled(schema, declined)(datum) == fastavro_bytes(schema, datum)


@pytest.mark.parametrize("record", sorted(SAMPLES))
def test_the_codec_samples_take_the_compiled_path(record: str) -> None:
    schema = REGISTRY.current(record).raw
    assert compiled(schema, declined)(SAMPLES[record]) == fastavro_bytes(schema, SAMPLES[record])


# -- every construct the compiler covers ---------------------------------------------------

EVERYTHING: dict[str, Any] = {
    "type": "record", "name": "Everything", "namespace": "test.outer",
    "fields": [
        {"name": "flag", "type": "boolean"},
        {"name": "nothing", "type": "null"},
        {"name": "small", "type": "float"},
        {"name": "large", "type": "double"},
        {"name": "raw", "type": "bytes"},
        {"name": "text", "type": {"type": "string"}},
        {"name": "colour", "type": {"type": "enum", "name": "Colour",
                                    "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "Digest", "namespace": "test.inner",
                                    "size": 4}},
        {"name": "again", "type": ["null", "test.inner.Digest"]},
        {"name": "colour_or_null", "type": ["Colour", "null"], "default": "GREEN"},
        {"name": "count_or_null", "type": ["long", "null"], "default": 7},
        {"name": "flag_or_null", "type": ["null", "boolean"]},
        {"name": "small_or_null", "type": ["null", "float"]},
        {"name": "raw_or_null", "type": ["null", "bytes"]},
        {"name": "at_or_null", "type": [{"type": "long", "logicalType": "timestamp-millis"},
                                        "null"], "default": 0},
        {"name": "id_or_null", "type": ["null", {"type": "string", "logicalType": "uuid"}]},
        {"name": "list_or_null", "type": ["null", {"type": "array", "items": "int"}]},
        {"name": "map_or_null", "type": ["null", {"type": "map", "values": "string"}]},
        {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": "long"}},
         "default": []},
        {"name": "points", "type": {"type": "map", "values": {
            "type": "record", "name": "Point", "fields": [
                {"name": "x", "type": "int"},
                {"name": "y", "type": "int", "default": -1},
                {"name": "label", "type": ["null", "string"], "default": None},
            ]}}},
        {"name": "origin", "type": "Point"},
        {"name": "maybe_point", "type": ["null", "test.outer.Point"], "default": None},
        {"name": "chain", "type": {
            "type": "record", "name": "Link", "fields": [
                {"name": "value", "type": "int"},
                {"name": "next", "type": ["null", "Link"], "default": None},
            ]}},
        {"name": "colours", "type": {"type": "array", "items": "Colour"}, "default": ["RED"]},
    ],
}


@PROPERTIES
@given(datum=values(EVERYTHING))
def test_the_bytes_are_fastavros_for_every_construct(datum: dict[str, Any]) -> None:
    written = compiled(EVERYTHING)(datum)
    assert written == fastavro_bytes(EVERYTHING, datum)
    reads_back(EVERYTHING, written)


@pytest.mark.parametrize("size", [1, 63, 64, 1023, 1024, 8191, 8192, 70_000])
def test_sizes_at_the_edges_of_the_tables(size: int) -> None:
    datum = {**EVERYTHING_DATUM, "text": "é" * (size // 2) + "x" * (size % 2), "raw": b"r" * size,
             "raw_or_null": b"n" * size, "list_or_null": [0] * size, "grid": [[1] * size],
             "map_or_null": {str(i): "" for i in range(size)}}
    assert compiled(EVERYTHING)(datum) == fastavro_bytes(EVERYTHING, datum)


def test_the_generated_code_is_there_to_read() -> None:
    source = inspect.getsource(compiled(EVERYTHING))
    assert source.startswith("def write(datum):")
    assert "_record0(v, out)" in source  # the recursive Link, in a function of its own


def test_the_prefix_comes_first_on_either_path() -> None:
    write = compile_writer(EVERYTHING, prefix=b"\xc3\x01fingerpr")
    assert write is not None
    datum = {**EVERYTHING_DATUM, "origin": MappingProxyType({"x": 1})}  # declined: fastavro's
    assert write(EVERYTHING_DATUM) == b"\xc3\x01fingerpr" + fastavro_bytes(EVERYTHING,
                                                                          EVERYTHING_DATUM)
    assert write(datum) == b"\xc3\x01fingerpr" + fastavro_bytes(EVERYTHING, datum)


# -- missing, extra and wrong values -----------------------------------------------------

ENROLMENT = REGISTRY.current("BusinessEnrolled").raw
ENROLLED = {**SAMPLES["BusinessEnrolled"], "schema_version": 2}
EVERYTHING_DATUM: dict[str, Any] = {
    "flag": True, "nothing": None, "small": 1.5, "large": -2.25, "raw": b"\x00\xff",
    "text": "été", "colour": "BLUE", "digest": b"abcd", "again": None, "flag_or_null": None,
    "small_or_null": None, "raw_or_null": b"", "id_or_null": None, "list_or_null": [1],
    "map_or_null": {}, "points": {"a": {"x": 1}}, "origin": {"x": 0, "y": 0},
    "chain": {"value": 1, "next": {"value": 2}},
}


def test_fields_left_out_take_their_defaults_as_in_fastavro() -> None:
    datum = {k: v for k, v in ENROLLED.items() if k not in {"naf", "siret", "schema_version"}}
    assert compiled(ENROLMENT, declined)(ENROLLED) == fastavro_bytes(ENROLMENT, ENROLLED)
    assert compiled(ENROLMENT)(datum) == fastavro_bytes(ENROLMENT, datum)
    assert compiled(EVERYTHING)(EVERYTHING_DATUM) == fastavro_bytes(EVERYTHING, EVERYTHING_DATUM)


def test_a_missing_field_without_default_is_refused() -> None:
    datum = {k: v for k, v in ENROLLED.items() if k != "siren"}
    with pytest.raises(ValueError, match="siren"):
        compiled(ENROLMENT)(datum)


@pytest.mark.parametrize("datum", [
    {**ENROLLED, "nickname": "Martin"},
    {**{k: v for k, v in ENROLLED.items() if k != "naf"}, "nickname": "Martin"},  # as many keys
])
def test_an_extra_field_is_refused(datum: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="more fields than the schema specifies: nickname"):
        compiled(ENROLMENT)(datum)


class Weekday(enum.IntEnum):
    MONDAY = 1


class Text(str):
    __slots__ = ()


class Id(UUID):
    __slots__ = ()


class Instant(datetime):
    pass


NAIVE = datetime(2026, 11, 26, 9, 0, 0, 123456)  # noqa: DTZ001 - fastavro takes it as local time


@pytest.mark.parametrize(("change", "why"), [
    ({"schema_version": "3"}, "a str for an int"),
    ({"schema_version": 2.0}, "a float fastavro would truncate"),
    ({"schema_version": 2**40}, "an int fastavro would write as a long"),
    ({"schema_version": True}, "a bool fastavro would write as 1"),
    ({"employees": 1.5}, "a float in a union"),
    ({"employees": True}, "a bool in a union"),
    ({"name": None}, "None for a string"),
    ({"name": b"Martin"}, "bytes for a string"),
    ({"name": "\ud800"}, "a lone surrogate"),
    ({"consent_share_with_resellers": None}, "None fastavro would write as false"),
    ({"consent_share_with_resellers": "no"}, "a str fastavro would write as true"),
    ({"broadband": 1}, "an int for a boolean"),
    ({"occurred_at": 1.7e12}, "a float for a timestamp"),
    ({"occurred_at": 2**63}, "a timestamp beyond a long"),
    ({"occurred_at": "2026-11-26"}, "a str for a timestamp"),
    ({"event_id": 42}, "an int for a uuid"),
])
def test_a_value_that_does_not_fit_is_refused(change: dict[str, Any], why: str) -> None:
    with pytest.raises(REFUSED):
        compiled(ENROLMENT)({**ENROLLED, **change})


@pytest.mark.parametrize(("field", "value"), [
    ("list_or_null", "abc"),  # fastavro: an array of characters
    ("list_or_null", (1, 2)),  # fastavro: (branch name, value), and no branch is named 1
    ("list_or_null", ("array", [1])),  # fastavro's writer takes it, its validation does not
    ("grid", [{"a": 1}]),  # fastavro: an array of the dict's keys
    ("points", {1: {"x": 1}}),
    ("origin", {"x": 2**31}),
    ("digest", b"abc"),
    ("colour", "PURPLE"),
    ("small", "NaN"),  # fastavro: float("NaN")
])
def test_a_value_fastavro_would_coerce_or_refuse_is_refused(field: str, value: Any) -> None:
    with pytest.raises(REFUSED):
        compiled(EVERYTHING)({**EVERYTHING_DATUM, field: value})


def test_a_coerced_value_is_refused_by_field_and_type_not_by_value() -> None:
    with pytest.raises(ValueError, match=r"^R\.x: float value does not fit Avro int$"):
        fastavro_writer(record_of("int"))({"x": 1.5})


@pytest.mark.parametrize(("change", "usual"), [
    ({"naf": ("string", "10.71C")}, {"naf": "10.71C"}),  # fastavro's union notation
    ({"naf": ("null", None)}, {"naf": None}),
    ({"employees": Weekday.MONDAY}, {"employees": 1}),
    ({"name": Text("Martin")}, {"name": "Martin"}),
    ({"event_id": Id("6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40")},
     {"event_id": "6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40"}),
    ({"occurred_at": Instant(2026, 11, 26, 9, tzinfo=UTC)},
     {"occurred_at": datetime(2026, 11, 26, 9, tzinfo=UTC)}),
])
def test_other_forms_of_a_value_are_written_as_fastavro_writes_them(
        change: dict[str, Any], usual: dict[str, Any]) -> None:
    datum = {**ENROLLED, **change}
    written = compiled(ENROLMENT)(datum)
    assert written == fastavro_bytes(ENROLMENT, datum)
    assert written == compiled(ENROLMENT, declined)({**ENROLLED, **usual})


def test_a_union_branch_in_tuple_notation_is_written_as_fastavro_writes_it() -> None:
    datum = {**EVERYTHING_DATUM, "again": ("test.inner.Digest", b"abcd"),
             "flag_or_null": ("boolean", False), "raw_or_null": ("null", None)}
    written = compiled(EVERYTHING)(datum)
    assert written == fastavro_bytes(EVERYTHING, datum)
    usual = {**EVERYTHING_DATUM, "again": b"abcd", "flag_or_null": False, "raw_or_null": None}
    assert written == compiled(EVERYTHING, declined)(usual)


def test_a_naive_datetime_is_written_as_fastavro_writes_it() -> None:
    datum = {**ENROLLED, "occurred_at": NAIVE}
    assert compiled(ENROLMENT)(datum) == fastavro_bytes(ENROLMENT, datum)


def test_a_mapping_that_is_not_a_dict_goes_through_fastavro() -> None:
    datum = MappingProxyType(ENROLLED)
    assert compiled(ENROLMENT)(datum) == fastavro_bytes(ENROLMENT, ENROLLED)


def test_what_the_compiled_code_declines_goes_to_the_fallback() -> None:
    seen: list[Mapping[str, Any]] = []

    def fallback(datum: Mapping[str, Any]) -> bytes:
        seen.append(datum)
        return b"fallback"

    write = compiled(ENROLMENT, fallback)
    assert write(ENROLLED) != b"fallback"
    odd = {**ENROLLED, "occurred_at": NAIVE}
    assert write(odd) == b"fallback"
    assert seen == [odd]


# -- schemas left to fastavro -----------------------------------------------------------

@pytest.mark.parametrize(("kind", "value"), [
    (["null", "string", "int"], 5),
    (["string", "int"], "five"),
    ({"type": "int", "logicalType": "date"}, 20_000),
    ({"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2}, b"\x01"),
    ({"type": "long", "logicalType": "timestamp-micros"}, 5),
])
def test_a_schema_the_compiler_does_not_cover_is_written_by_fastavro(
        kind: Any, value: Any) -> None:
    schema = record_of(kind)
    assert compile_writer(schema) is None
    assert writer(schema, b"\x01")({"x": value}) == b"\x01" + fastavro_bytes(schema, {"x": value})
    with pytest.raises(REFUSED):
        writer(schema)({"x": 1.5})


def test_a_covered_schema_gets_the_compiled_writer() -> None:
    assert writer(ENROLMENT).__code__.co_filename.startswith("<avro writer BusinessEnrolled")


def test_the_schema_given_is_left_as_it_was() -> None:
    schema: ParsedSchema = REGISTRY.current("PassportSnapshot")
    before = json.dumps(schema.raw, sort_keys=True)
    compiled(schema.raw)({**SAMPLES["PassportSnapshot"], "schema_version": 2})
    assert json.dumps(schema.raw, sort_keys=True) == before
