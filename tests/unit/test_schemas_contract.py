"""The .avsc files themselves: envelope, fields, naming, and compatible evolution."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from schemas.registry import NAMESPACE, SchemaRegistry

ENVELOPE = [
    {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "occurred_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "source", "type": "string"},
    {"name": "schema_version", "type": "int", "default": 1},
]

OPT = "?"  # ["null", X] with default null
FIELDS: dict[str, list[tuple[str, Any]]] = {
    "BusinessEnrolled": [
        ("siren", "string"), ("name", "string"), ("departement", "string"), ("naf", OPT),
        ("employees", OPT), ("contact_email", OPT), ("advisor_id", OPT), ("delegation", OPT),
        ("consent_share_with_resellers", "boolean"),
    ],
    "ModuleCompleted": [("siren", "string"), ("module_id", "string"), ("trainer_org", OPT)],
    "OfferRequested": [("siren", "string"), ("category", "string")],
    "ResellerProfile": [
        ("reseller_id", "string"), ("name", "string"), ("departements", "array"),
        ("categories", "array"), ("capacity", "int"), ("weight", "int"), ("status", "string"),
    ],
    "LeadAnswered": [
        ("lead_id", "string"), ("reseller_id", "string"), ("answer", "string"), ("reason", OPT),
    ],
    "PassportSnapshot": [
        ("siren", "string"), ("name", "string"), ("departement", "string"),
        ("region", "string"), ("naf", OPT), ("state", "string"), ("modules_completed", "array"),
        ("passport_issued_at", OPT), ("consent_share_with_resellers", "boolean"),
        ("offer_requests", "int"), ("leads_requested", "int"), ("input_offsets", "map"),
    ],
    "LeadRequested": [
        ("lead_id", "string"), ("siren", "string"), ("name", "string"),
        ("departement", "string"), ("region", "string"), ("category", "string"),
        ("naf", OPT), ("contact_email", OPT),
    ],
    "LeadAssigned": [
        ("lead_id", "string"), ("siren", "string"), ("category", "string"),
        ("departement", "string"), ("region", "string"), ("status", "string"),
        ("reseller_id", OPT), ("rule", "string"), ("candidates", "array"),
        ("business_name", "string"), ("contact_email", OPT),
    ],
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "ResellerProfile": {"capacity": 10, "weight": 1, "status": "active"},
    "PassportSnapshot": {
        "consent_share_with_resellers": False, "offer_requests": 0, "leads_requested": 0,
        "input_offsets": {}, "passport_issued_at": None,
    },
    "BusinessEnrolled": {"consent_share_with_resellers": False},
}

REGISTRY = SchemaRegistry.load()


def _kind(field_type: Any) -> str:
    if isinstance(field_type, list):
        return OPT if len(field_type) == 2 and field_type[0] == "null" else "union"
    return str(field_type["type"] if isinstance(field_type, dict) else field_type)


def test_every_record_is_described_here() -> None:
    assert set(REGISTRY.records()) == set(FIELDS)


@pytest.mark.parametrize("record", sorted(FIELDS))
def test_envelope_then_the_record_fields(record: str) -> None:
    raw = REGISTRY.current(record).raw
    assert raw["namespace"] == NAMESPACE
    assert raw["type"] == "record"
    fields = raw["fields"]
    assert [{k: v for k, v in f.items() if k != "doc"} for f in fields[:4]] == ENVELOPE
    assert [(f["name"], _kind(f["type"])) for f in fields[4:]] == FIELDS[record]
    for field in fields[4:]:
        if _kind(field["type"]) == OPT:
            assert "default" in field
            assert field["default"] is None, field["name"]
        if field["name"] in DEFAULTS.get(record, {}):
            assert field["default"] == DEFAULTS[record][field["name"]], field["name"]
        if _kind(field["type"]) == "array":
            assert field["type"]["items"] == "string"


def test_snapshot_types() -> None:
    fields = {f["name"]: f["type"] for f in REGISTRY.current("PassportSnapshot").raw["fields"]}
    assert fields["input_offsets"] == {"type": "map", "values": "long"}
    assert fields["passport_issued_at"] == [
        "null", {"type": "long", "logicalType": "timestamp-millis"},
    ]


@pytest.mark.parametrize("schema", REGISTRY.schemas(), ids=lambda s: f"{s.record}.v{s.version}")
def test_apache_avro_reads_every_schema(schema: Any) -> None:
    parsed = avro.schema.parse(json.dumps(dict(schema.raw)))
    assert isinstance(parsed, avro.schema.RecordSchema)
    assert parsed.fullname == f"{NAMESPACE}.{schema.record}"


def _compatible(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # untyped lib
    result = checker.get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    return result.compatibility is SchemaCompatibilityType.compatible


@pytest.mark.parametrize("record", sorted(FIELDS))
def test_current_schema_reads_every_older_version(record: str) -> None:
    versions = REGISTRY.versions(record)
    current = versions[max(versions)]
    for number, older in versions.items():
        assert _compatible(current, older), f"{record} v{max(versions)} cannot read v{number}"


def test_the_compatibility_check_would_catch_a_breaking_change() -> None:
    v1 = {
        "type": "record", "name": "Probe", "namespace": NAMESPACE,
        "fields": [{"name": "label", "type": "string"}],
    }
    with_default = {**v1, "fields": [*v1["fields"], {"name": "n", "type": "int", "default": 0}]}
    without_default = {**v1, "fields": [*v1["fields"], {"name": "n", "type": "int"}]}
    assert _compatible(with_default, v1)
    assert not _compatible(without_default, v1)
