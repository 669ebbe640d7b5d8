"""The single-object codec: framing, fingerprints, resolution of old versions, failures."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import avro.io
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_reader

from schemas import catalog
from schemas.codec import HEADER_SIZE, MARKER, Codec, Decoded, SchemaRegistry
from schemas.errors import ContractError, MalformedRecordError, UnknownSchemaError

AT = datetime(2026, 11, 26, 9, 0, 0, 123000, tzinfo=UTC)
EVENT_ID = "6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40"
ENVELOPE: dict[str, Any] = {"event_id": EVENT_ID, "occurred_at": AT, "source": "cefac-78"}

#: A typical datum of every record, every field given.
SAMPLES: dict[str, dict[str, Any]] = {
    "BusinessEnrolled": {
        **ENVELOPE, "siren": "732829320", "name": "Boulangerie Martin", "departement": "78",
        "naf": "10.71C", "employees": 3, "contact_email": "contact@boulangerie-martin.fr",
        "advisor_id": "adv-0042", "delegation": "cefac-78", "consent_share_with_resellers": True,
        "siret": "73282932000074", "broadband": True, "ecommerce": None,
        "contact_phone": "+33139123456", "contact_name": "Jeanne Martin",
    },
    "ModuleCompleted": {
        **ENVELOPE, "siren": "732829320", "module_id": "website-create", "trainer_org": "Google",
    },
    "TrainingSessionAttended": {
        **ENVELOPE, "siren": "732829320", "session_id": "s-1", "module_id": "website-create",
        "trainer_org": None, "attended": False,
    },
    "TrainingFeedback": {
        **ENVELOPE, "siren": "732829320", "module_id": "website-create", "trainer_org": "Google",
        "delegation": "cefac-78", "score": 4, "comment": "Très utile.",
    },
    "ConsentWithdrawn": {**ENVELOPE, "siren": "732829320", "reason": None},
    "ErasureRequested": {**ENVELOPE, "siren": "732829320", "requested_by": "adv-0042"},
    "OfferRequested": {**ENVELOPE, "siren": "732829320", "category": "e-commerce"},
    "ResellerProfile": {
        **ENVELOPE, "reseller_id": "infogerance-78", "name": "Infogérance 78",
        "departements": ["78", "92"], "categories": ["security", "broadband"],
        "capacity": 25, "weight": 3, "status": "paused", "delivery": "webhook",
        "webhook_url": "https://crm.infogerance-78.fr/hooks", "contact_email": None,
        "absences": [{"start": "2026-12-21", "end": "2027-01-03"}],
    },
    "LeadAnswered": {
        **ENVELOPE, "lead_id": "lead-1", "reseller_id": "infogerance-78",
        "answer": "rejected", "reason": "budget",
    },
    "PassportSnapshot": {
        **ENVELOPE, "siren": "732829320", "name": "Boulangerie Martin", "departement": "78",
        "region": "11", "naf": "10.71C", "state": "passport_issued",
        "modules_completed": ["website-create", "website-traffic", "email-pro"],
        "passport_issued_at": AT, "consent_share_with_resellers": True, "offer_requests": 2,
        "leads_requested": 1, "input_offsets": {"pn.training.v1/3": 1042, "pn.enrolments.v1/3": 7},
        "replay_from": {"pn.training.v1/3": 1040, "pn.enrolments.v1/3": 7},
        "contact_email": "contact@boulangerie-martin.fr", "enrolled_at": AT, "enrolment_id": "e-1",
        "consent_withdrawn": False, "erased": False,
        "modules": [{"module_id": "website-create", "completed_at": AT}],
        "offers": [{"event_id": "o-1", "occurred_at": AT, "category": "e-commerce",
                    "outcome": "lead_requested", "lead_id": "lead-1"}],
        "feedback": [{"event_id": "f-1", "module_id": "website-create", "trainer_org": "acme",
                      "delegation": "78", "score": 4}],
        "applied_event_ids": ["o-1", "f-1"],
        "parked": [{"record": "ModuleCompleted", "datum_json": "{}"}],
    },
    "LeadRequested": {
        **ENVELOPE, "lead_id": "lead-1", "siren": "732829320", "name": "Boulangerie Martin",
        "departement": "78", "region": "11", "category": "e-commerce", "naf": None,
        "contact_email": "contact@boulangerie-martin.fr",
    },
    "LeadAssigned": {
        **ENVELOPE, "lead_id": "lead-1", "siren": "732829320", "category": "e-commerce",
        "departement": "78", "region": "11", "status": "assigned", "reseller_id": "web-78",
        "rule": "departement", "candidates": ["web-78", "shop-92"],
        "business_name": "Boulangerie Martin", "contact_email": None,
        "change": "reassigned", "version": 3, "previous_reseller_id": None, "reason": None,
        "hops": 2, "excluded_resellers": ["old-78"], "requested_at": ENVELOPE["occurred_at"],
        "assigned_at": ENVELOPE["occurred_at"], "deadline_at": None, "sla_breached": False,
        "duplicate_of": None,
        "decision": {
            "rule": "departement", "scope": "78", "winner": "web-78",
            "candidates": [
                {"reseller_id": "web-78", "weight": 2, "share": 0.5, "entitlement": 4.5,
                 "received": 3, "deficit": 1.5, "open": 1, "capacity": 10},
                {"reseller_id": "shop-92", "weight": 2, "share": 0.5, "entitlement": 2.5,
                 "received": 2, "deficit": 0.5, "open": 0, "capacity": 5},
            ],
            "excluded": [{"reseller_id": "old-78", "reason": "seen_before"}],
        },
        "input_offsets": {"pn.lead-requests.v1/0": 12, "pn.lead-responses.v1/0": 3},
    },
    "LeadWithdrawn": {
        **ENVELOPE, "lead_id": "lead-1", "siren": "732829320", "reason": "erased",
    },
    "WebhookCommand": {
        **ENVELOPE, "reseller_id": "web-78", "command": "rotate", "url": None, "enabled": None,
        "secret": "plain:whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "overlap_ms": 86_400_000,
        "since": None, "until": None,
    },
    "WebhookEndpoint": {
        **ENVELOPE, "reseller_id": "web-78", "url": "https://crm.example.fr/hooks",
        "enabled": False, "disabled_reason": "gone", "failing_since": None,
        "secrets": [{"fingerprint": "0a1b2c3d4e5f", "created_at": ENVELOPE["occurred_at"],
                     "expires_at": None}], "version": 3,
    },
    "WebhookDelivery": {
        **ENVELOPE, "reseller_id": "web-78", "message_id": "msg_2b1c0f5e",
        "type": "lead.assigned", "lead_id": "lead-1", "attempt": 2,
        "url": "https://crm.example.fr/hooks", "outcome": "retrying", "http_status": 503,
        "latency_ms": 12, "error": "HTTP 503", "next_attempt_at": ENVELOPE["occurred_at"],
        "replay": False,
    },
}

PROBE_V1 = {
    "type": "record", "name": "Probe", "namespace": "fr.passeport.hub",
    "fields": [
        {"name": "event_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "schema_version", "type": "int", "default": 1},
        {"name": "label", "type": "string"},
    ],
}
PROBE_V2 = {
    **PROBE_V1,
    "fields": [*PROBE_V1["fields"], {"name": "weight", "type": "int", "default": 7}],
}


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO, bit by bit as the spec's reference code computes it."""
    empty = 0xC15D213AA4D7A795
    fp = empty
    for byte in data:
        fp ^= byte
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
    return fp


def write_schemas(directory: Path, *schemas: tuple[dict[str, Any], int]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for schema, version in schemas:
        (directory / f"{schema['name']}.v{version}.avsc").write_text(json.dumps(schema))
    return directory


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.default()


def test_samples_cover_every_record_and_every_catalog_record_has_a_schema(codec: Codec) -> None:
    assert set(SAMPLES) == set(codec.registry.records())
    carried = {record for topic in catalog.CATALOG for record in topic.records}
    assert carried == set(codec.registry.records())


@pytest.mark.parametrize("record", sorted(SAMPLES))
def test_round_trip_of_every_record(codec: Codec, record: str) -> None:
    version = codec.registry.current_version(record)
    decoded = codec.decode(codec.encode(record, SAMPLES[record]))
    assert decoded == Decoded(record, version, {**SAMPLES[record], "schema_version": version})


def test_omitted_fields_take_their_schema_defaults(codec: Codec) -> None:
    datum = {**ENVELOPE, "reseller_id": "r-1", "name": "R", "departements": [], "categories": []}
    decoded = codec.decode(codec.encode("ResellerProfile", datum)).datum
    assert (decoded["capacity"], decoded["weight"], decoded["status"]) == (10, 1, "active")
    snapshot = {k: v for k, v in SAMPLES["PassportSnapshot"].items() if k != "input_offsets"}
    assert codec.decode(codec.encode("PassportSnapshot", snapshot)).datum["input_offsets"] == {}


@pytest.mark.parametrize("record", sorted(SAMPLES))
def test_frame_is_marker_then_little_endian_crc64_of_canonical_form(
    codec: Codec, record: str
) -> None:
    data = codec.encode(record, SAMPLES[record])
    schema = codec.registry.current(record)
    assert data[:2] == b"\xc3\x01" == MARKER
    assert data[2:HEADER_SIZE] == codec.fingerprint(record)
    assert codec.fingerprint(record) == codec.fingerprint(record, schema.version)
    assert data[2:HEADER_SIZE] == crc64_avro(schema.canonical.encode()).to_bytes(8, "little")
    # Apache avro, an independent implementation, agrees on form and fingerprint.
    apache = avro.schema.parse(schema.canonical)
    assert apache.canonical_form == schema.canonical
    assert apache.fingerprint("CRC-64-AVRO") == data[2:HEADER_SIZE]
    # The canonical form keeps only what parsing needs.
    assert '"doc"' not in schema.canonical
    assert "logicalType" not in schema.canonical
    assert '"default"' not in schema.canonical


def test_crc64_avro_matches_the_spec_test_vectors() -> None:
    # From Avro's share/test/data/schema-tests.txt (fingerprints as signed longs).
    assert crc64_avro(b'"null"') == 7195948357588979594
    assert crc64_avro(b'"int"') == 8247732601305521295
    # The single-object spec stores the fingerprint little-endian.
    assert crc64_avro(b'"int"').to_bytes(8, "little").hex() == "8f5c393f1ad57572"


@pytest.mark.parametrize("record", sorted(SAMPLES))
def test_body_is_plain_avro_binary_for_other_implementations(codec: Codec, record: str) -> None:
    data = codec.encode(record, SAMPLES[record])
    raw = dict(codec.registry.current(record).raw)
    apache = avro.io.DatumReader(avro.schema.parse(json.dumps(raw)))
    read = apache.read(avro.io.BinaryDecoder(io.BytesIO(data[HEADER_SIZE:])))
    assert read == {**SAMPLES[record], "schema_version": codec.registry.current_version(record)}
    body = io.BytesIO(data[HEADER_SIZE:])
    read_fast = schemaless_reader(body, parse_schema(raw))
    assert isinstance(read_fast, dict)
    assert read_fast["event_id"] == UUID(EVENT_ID)  # fastavro's own uuid mapping
    assert body.tell() == len(data) - HEADER_SIZE


def test_decode_resolves_an_older_writer_to_the_current_schema(tmp_path: Path) -> None:
    old = Codec(SchemaRegistry.load(write_schemas(tmp_path / "old", (PROBE_V1, 1))))
    new = Codec(SchemaRegistry.load(write_schemas(tmp_path / "new", (PROBE_V1, 1), (PROBE_V2, 2))))
    written_by_v1 = old.encode("Probe", {"event_id": EVENT_ID, "label": "x"})

    decoded = new.decode(written_by_v1)

    assert decoded == Decoded("Probe", 1, {
        "event_id": EVENT_ID, "schema_version": 1, "label": "x", "weight": 7,
    })
    assert new.registry.current_version("Probe") == 2
    assert list(new.registry.versions("Probe")) == [1, 2]
    assert new.fingerprint("Probe", 1) == old.fingerprint("Probe") != new.fingerprint("Probe")
    current = new.encode("Probe", {"event_id": EVENT_ID, "label": "y", "weight": 3})
    assert current[2:HEADER_SIZE] == new.fingerprint("Probe")
    assert new.decode(current) == Decoded("Probe", 2, {
        "event_id": EVENT_ID, "schema_version": 2, "label": "y", "weight": 3,
    })
    # An old reader does not know the new writer: that is the unknown-schema case.
    with pytest.raises(UnknownSchemaError, match="fingerprint"):
        old.decode(current)


def test_versions_returns_copies(codec: Codec) -> None:
    codec.registry.versions("OfferRequested")[1]["fields"].clear()
    assert codec.registry.versions("OfferRequested")[1]["fields"]


def test_unknown_fingerprint(codec: Codec) -> None:
    data = codec.encode("OfferRequested", SAMPLES["OfferRequested"])
    forged = MARKER + bytes(8) + data[HEADER_SIZE:]
    with pytest.raises(UnknownSchemaError, match="0000000000000000"):
        codec.decode(forged)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda d: b"", "marker"),
        (lambda d: d[:1], "marker"),
        (lambda d: d[:7], "too short"),
        (lambda d: b"\xc3\x00" + d[2:], "marker"),
        (lambda d: b"{" + d[1:], "marker"),
        (lambda d: d[:-3], "does not decode"),
        (lambda d: d[:HEADER_SIZE], "does not decode"),
        (lambda d: d + b"\x00", "1 trailing bytes"),
        (lambda d: d[:HEADER_SIZE] + b"\xff" * 40, "does not decode"),
    ],
    ids=["empty", "one-byte", "short-header", "bad-version", "json", "truncated",
         "header-only", "trailing", "garbage-body"],
)
def test_malformed_bytes(codec: Codec, mangle: Any, message: str) -> None:
    data = codec.encode("BusinessEnrolled", SAMPLES["BusinessEnrolled"])
    with pytest.raises(MalformedRecordError, match=message):
        codec.decode(mangle(data))


NAIVE = datetime(2026, 11, 26, 9)  # noqa: DTZ001 - naive on purpose


@pytest.mark.parametrize(
    ("record", "change", "field"),
    [
        ("BusinessEnrolled", {"employees": "3"}, "employees"),
        ("BusinessEnrolled", {"employees": 2**40}, "employees"),
        ("BusinessEnrolled", {"employees": True}, "employees"),
        ("BusinessEnrolled", {"siren": 732829320}, "siren"),
        ("BusinessEnrolled", {"name": None}, "name"),
        ("BusinessEnrolled", {"consent_share_with_resellers": "no"}, "consent_share_with"),
        ("BusinessEnrolled", {"consent_share_with_resellers": None}, "consent_share_with"),
        ("BusinessEnrolled", {"occurred_at": "2026-11-26"}, "occurred_at"),
        ("BusinessEnrolled", {"occurred_at": 1.7e12}, "occurred_at"),
        ("BusinessEnrolled", {"occurred_at": NAIVE}, "occurred_at.*naive"),
        ("BusinessEnrolled", {"event_id": "not-a-uuid"}, "event_id"),
        ("BusinessEnrolled", {"event_id": None}, "event_id"),
        ("BusinessEnrolled", {"nickname": "Martin"}, "nickname"),
        ("ResellerProfile", {"capacity": 3.5}, "capacity.*3.5"),
        ("ResellerProfile", {"weight": 2**31}, "weight"),
        ("ResellerProfile", {"departements": "78"}, "departements"),
        ("ResellerProfile", {"categories": {"security": 1}}, "categories"),
        ("ResellerProfile", {"departements": ["78", 92]}, "departements"),
        ("PassportSnapshot", {"passport_issued_at": NAIVE}, "passport_issued_at"),
        ("PassportSnapshot", {"input_offsets": {"pn.training.v1/0": 1.5}}, "input_offsets"),
        ("PassportSnapshot", {"input_offsets": [("pn.training.v1/0", 1)]}, "input_offsets"),
        ("PassportSnapshot", {"offer_requests": 2.0}, "offer_requests"),
        ("LeadAssigned", {"reseller_id": 7}, "reseller_id"),
    ],
)
def test_encode_refuses_a_datum_that_does_not_fit_and_names_the_field(
    codec: Codec, record: str, change: dict[str, Any], field: str
) -> None:
    # fastavro alone would write several of these silently (truncated floats,
    # truthy booleans, a string as an array of characters, local-time datetimes).
    with pytest.raises(MalformedRecordError, match=field):
        codec.encode(record, {**SAMPLES[record], **change})


def test_encode_accepts_epoch_millis_and_tuples(codec: Codec) -> None:
    datum = {
        **SAMPLES["ResellerProfile"], "occurred_at": 1_795_683_600_123, "departements": ("2A",),
    }
    decoded = codec.decode(codec.encode("ResellerProfile", datum)).datum
    assert decoded["occurred_at"] == AT
    assert decoded["departements"] == ["2A"]


def test_encode_refuses_a_missing_required_field(codec: Codec) -> None:
    datum = {k: v for k, v in SAMPLES["BusinessEnrolled"].items() if k != "departement"}
    with pytest.raises(MalformedRecordError, match="departement"):
        codec.encode("BusinessEnrolled", datum)


def test_encode_refuses_a_non_mapping(codec: Codec) -> None:
    with pytest.raises(MalformedRecordError, match="mapping"):
        codec.encode("OfferRequested", 42)  # type: ignore[arg-type]  # on purpose


def test_encode_of_an_unknown_record(codec: Codec) -> None:
    with pytest.raises(UnknownSchemaError, match="Nope"):
        codec.encode("Nope", {})
    with pytest.raises(UnknownSchemaError):
        codec.fingerprint("OfferRequested", 9)


def test_encode_stamps_the_writer_version_and_canonical_uuids(codec: Codec) -> None:
    datum = {
        **SAMPLES["OfferRequested"], "schema_version": 42, "event_id": UUID(EVENT_ID.upper()),
    }
    decoded = codec.decode(codec.encode("OfferRequested", datum)).datum
    assert decoded["schema_version"] == 1
    assert decoded["event_id"] == EVENT_ID
    upper = {**SAMPLES["OfferRequested"], "event_id": EVENT_ID.upper()}
    assert codec.decode(codec.encode("OfferRequested", upper)).datum["event_id"] == EVENT_ID


def test_timestamps_decode_as_utc_instants(codec: Codec) -> None:
    paris = datetime.fromisoformat("2026-11-26T10:00:00.123+01:00")
    datum = {**SAMPLES["OfferRequested"], "occurred_at": paris}
    decoded = codec.decode(codec.encode("OfferRequested", datum)).datum["occurred_at"]
    assert decoded == paris
    assert decoded.utcoffset() is not None
    assert decoded.utcoffset().total_seconds() == 0


def _millis_of(value: Any) -> Any:
    if isinstance(value, datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {key: _millis_of(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_millis_of(item) for item in value]
    return value


@pytest.mark.parametrize("record", sorted(SAMPLES))
def test_millis_decoding_gives_the_same_instants_as_epoch_milliseconds(
        codec: Codec, record: str) -> None:
    data = codec.encode(record, SAMPLES[record])
    as_datetimes, as_millis = codec.decode(data), codec.decode(data, millis=True)
    assert as_millis == Decoded(record, as_datetimes.version, _millis_of(as_datetimes.datum))
    if any(isinstance(v, datetime) for v in as_datetimes.datum.values()):
        assert as_millis != as_datetimes


def test_millis_decoding_of_an_older_writer_goes_through_fastavro_alike(codec: Codec) -> None:
    v1 = codec.registry.version("BusinessEnrolled", 1)
    v1_names = {field["name"] for field in v1.raw["fields"]}
    v1_datum = {k: v for k, v in SAMPLES["BusinessEnrolled"].items() if k in v1_names}
    data = Codec(SchemaRegistry([v1])).encode("BusinessEnrolled", v1_datum)
    as_millis = codec.decode(data, millis=True).datum
    assert as_millis == _millis_of(codec.decode(data).datum)
    assert isinstance(as_millis["occurred_at"], int)


def test_default_codec_is_built_once() -> None:
    assert Codec.default() is Codec.default()


def test_errors_are_value_errors() -> None:
    assert issubclass(UnknownSchemaError, ContractError)
    assert issubclass(MalformedRecordError, ContractError)
    assert issubclass(ContractError, ValueError)


@pytest.mark.parametrize(
    ("file_name", "schema", "message"),
    [
        ("Probe.avsc", PROBE_V1, "named <Record>.v<N>.avsc"),
        ("Probe.v0.avsc", PROBE_V1, "named <Record>.v<N>.avsc"),
        ("Other.v1.avsc", PROBE_V1, "named 'Other'"),
        ("Probe.v1.avsc", {**PROBE_V1, "namespace": "com.example"}, "namespace"),
        ("Probe.v1.avsc", {**PROBE_V1, "fields": [{"name": "x", "type": "strin"}]}, "invalid"),
    ],
)
def test_registry_refuses_bad_schema_files(
    tmp_path: Path, file_name: str, schema: dict[str, Any], message: str
) -> None:
    (tmp_path / file_name).write_text(json.dumps(schema))
    with pytest.raises(ContractError, match=message):
        SchemaRegistry.load(tmp_path)


def test_registry_lookups(codec: Codec) -> None:
    registry = codec.registry
    current = registry.current("LeadRequested")
    assert registry.by_fingerprint(current.fingerprint) is current
    assert registry.version("LeadRequested", 1) is current
    assert registry.current("LeadAssigned") is registry.version("LeadAssigned", 2)
    assert len(registry.records()) == 16
    # BusinessEnrolled, PassportSnapshot, LeadAssigned: v2; ResellerProfile: v3
    assert len(registry.schemas()) == 21
    with pytest.raises(UnknownSchemaError):
        registry.current("Nope")
    with pytest.raises(UnknownSchemaError):
        registry.versions("Nope")


def test_a_version_that_changes_no_wire_format_owns_its_fingerprint(tmp_path: Path) -> None:
    fields = [
        {**f, "default": 2} if f["name"] == "schema_version" else f for f in PROBE_V1["fields"]
    ]
    v2 = {**PROBE_V1, "fields": fields}
    codec = Codec(SchemaRegistry.load(write_schemas(tmp_path, (PROBE_V1, 1), (v2, 2))))
    assert codec.fingerprint("Probe", 1) == codec.fingerprint("Probe", 2)
    decoded = codec.decode(codec.encode("Probe", {"event_id": EVENT_ID, "label": "x"}))
    assert (decoded.version, decoded.datum["schema_version"]) == (2, 2)


def test_a_tombstone_is_a_contract_error_not_a_crash() -> None:
    with pytest.raises(MalformedRecordError, match="tombstone"):
        Codec.default().decode(None)


def test_a_business_enrolled_v1_value_decodes_into_the_v2_shape(codec: Codec) -> None:
    # A writer still on v1, as every producer deployed before v2 is.
    v1 = codec.registry.version("BusinessEnrolled", 1)
    v1_names = {field["name"] for field in v1.raw["fields"]}
    v1_datum = {k: v for k, v in SAMPLES["BusinessEnrolled"].items() if k in v1_names}
    data = Codec(SchemaRegistry([v1])).encode("BusinessEnrolled", v1_datum)
    assert data[2:HEADER_SIZE] == codec.fingerprint("BusinessEnrolled", 1)

    decoded = codec.decode(data)

    assert codec.registry.current_version("BusinessEnrolled") == 2
    assert decoded == Decoded("BusinessEnrolled", 1, {
        **v1_datum, "schema_version": 1, "siret": None, "broadband": None, "ecommerce": None,
        "contact_phone": None, "contact_name": None,
    })


def test_a_v1_reader_resolves_a_business_enrolled_v2_body(codec: Codec) -> None:
    # Forward compatibility: a consumer that has not been redeployed yet gets an
    # UnknownSchemaError (and retries later); once it has the v2 file, its v1
    # reader shape reads v2 bodies by dropping the new fields.
    data = codec.encode("BusinessEnrolled", SAMPLES["BusinessEnrolled"])
    v1 = codec.registry.version("BusinessEnrolled", 1)
    with pytest.raises(UnknownSchemaError):
        Codec(SchemaRegistry([v1])).decode(data)
    body = io.BytesIO(data[HEADER_SIZE:])
    read = schemaless_reader(body, codec.registry.current("BusinessEnrolled").parsed, v1.parsed)
    v1_names = {field["name"] for field in v1.raw["fields"]}
    assert isinstance(read, dict)
    assert set(read) == v1_names
    assert read["siren"] == SAMPLES["BusinessEnrolled"]["siren"]
    assert read["schema_version"] == 2
