"""The .avsc files themselves: envelope, fields, naming, and compatible evolution."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
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
        ("consent_share_with_resellers", "boolean"), ("siret", OPT), ("broadband", OPT),
        ("ecommerce", OPT), ("contact_phone", OPT), ("contact_name", OPT),
    ],
    "ModuleCompleted": [("siren", "string"), ("module_id", "string"), ("trainer_org", OPT)],
    "TrainingSessionAttended": [
        ("siren", "string"), ("session_id", "string"), ("module_id", "string"),
        ("trainer_org", OPT), ("attended", "boolean"),
    ],
    "TrainingFeedback": [
        ("siren", "string"), ("module_id", "string"), ("trainer_org", OPT), ("delegation", OPT),
        ("score", "int"), ("comment", OPT),
    ],
    "ConsentWithdrawn": [("siren", "string"), ("reason", OPT)],
    "ErasureRequested": [("siren", "string"), ("requested_by", "string")],
    "OfferRequested": [("siren", "string"), ("category", "string")],
    "ResellerProfile": [
        ("reseller_id", "string"), ("name", "string"), ("departements", "array"),
        ("categories", "array"), ("capacity", "int"), ("weight", "int"), ("status", "string"),
        ("delivery", "string"), ("webhook_url", OPT), ("contact_email", OPT),
        ("absences", "array"),
    ],
    "LeadAnswered": [
        ("lead_id", "string"), ("reseller_id", "string"), ("answer", "string"), ("reason", OPT),
    ],
    "PassportSnapshot": [
        ("siren", "string"), ("name", "string"), ("departement", "string"),
        ("region", "string"), ("naf", OPT), ("state", "string"), ("modules_completed", "array"),
        ("passport_issued_at", OPT), ("consent_share_with_resellers", "boolean"),
        ("offer_requests", "int"), ("leads_requested", "int"), ("input_offsets", "map"),
        ("replay_from", "map"), ("contact_email", OPT), ("enrolled_at", OPT), ("enrolment_id", OPT),
        ("consent_withdrawn", "boolean"), ("erased", "boolean"), ("modules", "array"),
        ("offers", "array"), ("feedback", "array"), ("applied_event_ids", "array"),
        ("parked", "array"),
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
        ("change", "string"), ("version", "int"), ("previous_reseller_id", OPT),
        ("reason", OPT), ("hops", "int"), ("excluded_resellers", "array"),
        ("requested_at", OPT), ("assigned_at", OPT), ("deadline_at", OPT),
        ("sla_breached", "boolean"), ("duplicate_of", OPT), ("decision", OPT),
        ("input_offsets", "map"),
    ],
    "LeadWithdrawn": [("lead_id", "string"), ("siren", "string"), ("reason", "string")],
    "WebhookCommand": [
        ("reseller_id", "string"), ("command", "string"), ("url", OPT), ("enabled", OPT),
        ("secret", OPT), ("overlap_ms", OPT), ("since", OPT), ("until", OPT),
    ],
    "WebhookEndpoint": [
        ("reseller_id", "string"), ("url", "string"), ("enabled", "boolean"),
        ("disabled_reason", OPT), ("failing_since", OPT), ("secrets", "array"),
        ("version", "int"),
    ],
    "WebhookDelivery": [
        ("reseller_id", "string"), ("message_id", "string"), ("type", "string"),
        ("lead_id", OPT), ("attempt", "int"), ("url", "string"), ("outcome", "string"),
        ("http_status", OPT), ("latency_ms", OPT), ("error", OPT), ("next_attempt_at", OPT),
        ("replay", "boolean"),
    ],
}

DEFAULTS: dict[str, dict[str, Any]] = {
    "ResellerProfile": {"capacity": 10, "weight": 1, "status": "active", "delivery": "pull",
                        "absences": []},
    "LeadAssigned": {"change": "assigned", "version": 1, "hops": 0, "excluded_resellers": [],
                     "sla_breached": False, "input_offsets": {}},
    "TrainingSessionAttended": {"attended": True},
    "PassportSnapshot": {
        "consent_share_with_resellers": False, "offer_requests": 0, "leads_requested": 0,
        "input_offsets": {}, "passport_issued_at": None, "replay_from": {},
        "contact_email": None, "enrolled_at": None, "consent_withdrawn": False, "erased": False,
        "modules": [], "offers": [], "feedback": [], "applied_event_ids": [], "parked": [],
    },
    "BusinessEnrolled": {"consent_share_with_resellers": False},
    "WebhookDelivery": {"replay": False},
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
            items = field["type"]["items"]
            # Strings, or a named record whose every field says what it is.
            assert items == "string" or (
                items["type"] == "record" and all(f.get("doc") for f in items["fields"]))


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


def _compatible(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> bool:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]  # untyped lib
    result = checker.get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer))
    )
    return result.compatibility is SchemaCompatibilityType.compatible


def incompatibilities(registry: SchemaRegistry, record: str) -> list[str]:
    """Every pair of versions of ``record`` where one cannot read the other, in words.

    Checked both ways and across all versions (Avro's "full transitive"): the
    current reader reads whatever is still on a topic (backward), and a consumer
    not yet redeployed reads what an upgraded producer writes (forward).
    """
    versions = registry.versions(record)
    found = []
    for reader_version, reader in versions.items():
        for writer_version, writer in versions.items():
            if reader_version != writer_version and not _compatible(reader, writer):
                found.append(f"{record} v{reader_version} cannot read v{writer_version}")
    return found


@pytest.mark.parametrize("record", sorted(FIELDS))
def test_every_version_reads_every_other_version(record: str) -> None:
    assert incompatibilities(REGISTRY, record) == []


@pytest.mark.parametrize(("record", "version"), [("BusinessEnrolled", 2), ("ResellerProfile", 3),
                                                 ("LeadAssigned", 2)])
def test_the_records_with_several_versions_are_covered(record: str, version: int) -> None:
    assert REGISTRY.current_version(record) == version


@pytest.mark.parametrize("record", sorted(FIELDS))
def test_a_new_version_keeps_every_field_and_gives_new_ones_a_default(record: str) -> None:
    versions = REGISTRY.versions(record)
    for number in sorted(versions)[1:]:
        before = {f["name"]: f for f in versions[number - 1]["fields"]}
        after = {f["name"]: f for f in versions[number]["fields"]}
        assert set(before) <= set(after), f"{record} v{number} drops {set(before) - set(after)}"
        for name in before:
            assert after[name]["type"] == before[name]["type"], f"{record}.{name} changed type"
        for name in set(after) - set(before):
            assert "default" in after[name], f"{record} v{number}: new field {name} has no default"


def test_the_compatibility_check_would_catch_a_breaking_change() -> None:
    v1 = {
        "type": "record", "name": "Probe", "namespace": NAMESPACE,
        "fields": [{"name": "label", "type": "string"}],
    }
    with_default = {**v1, "fields": [*v1["fields"], {"name": "n", "type": "int", "default": 0}]}
    without_default = {**v1, "fields": [*v1["fields"], {"name": "n", "type": "int"}]}
    assert _compatible(with_default, v1)
    assert not _compatible(without_default, v1)


def _v3(change: str) -> dict[str, Any]:
    v3 = REGISTRY.versions("BusinessEnrolled")[2]
    fields = v3["fields"]
    if change == "new field without default":
        fields.append({"name": "turnover", "type": "long"})
    elif change == "type change":
        next(f for f in fields if f["name"] == "employees")["type"] = ["null", "string"]
    else:  # a required field removed: old readers have no default for it
        fields[:] = [f for f in fields if f["name"] != "departement"]
    return v3


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("new field without default", ["BusinessEnrolled v3 cannot read v1",
                                       "BusinessEnrolled v3 cannot read v2"]),
        ("type change", ["BusinessEnrolled v1 cannot read v3",
                         "BusinessEnrolled v2 cannot read v3",
                         "BusinessEnrolled v3 cannot read v1",
                         "BusinessEnrolled v3 cannot read v2"]),
        ("required field removed", ["BusinessEnrolled v1 cannot read v3",
                                    "BusinessEnrolled v2 cannot read v3"]),
    ],
)
def test_an_incompatible_v3_on_disk_is_rejected(
    tmp_path: Path, change: str, expected: list[str]
) -> None:
    for number, schema in REGISTRY.versions("BusinessEnrolled").items():
        (tmp_path / f"BusinessEnrolled.v{number}.avsc").write_text(json.dumps(schema))
    (tmp_path / "BusinessEnrolled.v3.avsc").write_text(json.dumps(_v3(change)))
    registry = SchemaRegistry.load(tmp_path)
    assert registry.current_version("BusinessEnrolled") == 3

    assert incompatibilities(registry, "BusinessEnrolled") == expected
