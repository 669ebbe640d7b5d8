"""The JSON models: domain checks, normalisation, and the trip through Avro and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from schemas import catalog
from schemas.codec import Codec, SchemaRegistry
from schemas.models import (
    EVENT_ADAPTER,
    EXAMPLES,
    MODELS_BY_RECORD,
    MODELS_BY_TYPE,
    NOW,
    REJECT_REASONS,
    BusinessEnrolled,
    ConsentWithdrawn,
    ErasureRequested,
    EventModel,
    LeadAnswered,
    ModuleCompleted,
    OfferRequested,
    ResellerProfile,
    TrainingFeedback,
    TrainingSessionAttended,
    parse_event,
)

NOW_AT = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
CONTEXT = {NOW: NOW_AT}
ENVELOPE = {"occurred_at": "2026-11-26T10:00:00.123456+01:00", "source": "cefac-78"}

EVENTS: dict[str, dict[str, Any]] = {
    "business_enrolled": {
        "type": "business_enrolled", **ENVELOPE,
        "event_id": "6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40",
        "siren": "732829320", "name": "Boulangerie Martin", "departement": "78",
        "naf": "10.71C", "employees": 3, "contact_email": "Contact@Boulangerie-Martin.fr",
        "consent_share_with_resellers": True, "siret": "73282932000074", "broadband": True,
        "ecommerce": False, "contact_phone": "01 39 12 34 56", "contact_name": "Jeanne Martin",
    },
    "training_session_attended": {
        "type": "training_session_attended", **ENVELOPE, "siren": "732829320",
        "session_id": "versailles-am", "module_id": "website-create", "attended": False,
    },
    "training_feedback": {
        "type": "training_feedback", **ENVELOPE, "siren": "732829320",
        "module_id": "website-create", "trainer_org": "Google", "delegation": "cefac-78",
        "score": 4, "comment": "Clair et concret.",
    },
    "consent_withdrawn": {
        "type": "consent_withdrawn", **ENVELOPE, "siren": "732829320", "reason": "Trop d'appels.",
    },
    "erasure_requested": {
        "type": "erasure_requested", **ENVELOPE, "siren": "732829320", "requested_by": "adv-0042",
    },
    "module_completed": {
        "type": "module_completed", **ENVELOPE, "siren": "732829320",
        "module_id": "website-traffic", "trainer_org": "Google",
    },
    "offer_requested": {
        "type": "offer_requested", **ENVELOPE, "siren": "552100554", "category": "security",
    },
    "reseller_profile": {
        "type": "reseller_profile", **ENVELOPE, "reseller_id": "infogerance-78",
        "name": "Infogérance 78", "departements": ["78", "92", "2a"],
        "categories": ["security", "broadband"], "capacity": 25, "weight": 3,
        "delivery": "webhook", "webhook_url": "https://crm.infogerance-78.fr/hooks",
        "contact_email": "leads@infogerance-78.fr",
        "absences": [{"start": "2026-12-21", "end": "2027-01-02"}],
    },
    "lead_answered": {
        "type": "lead_answered", **ENVELOPE, "lead_id": "3b0e6f52-8d6c-5f1e-9a47-0c1d2e3f4a5b",
        "reseller_id": "infogerance-78", "answer": "rejected", "reason": "other_vendor",
    },
}

KEYS = {
    "business_enrolled": "732829320",
    "module_completed": "732829320",
    "training_session_attended": "732829320",
    "training_feedback": "732829320",
    "consent_withdrawn": "732829320",
    "erasure_requested": "732829320",
    "offer_requested": "552100554",
    "reseller_profile": "infogerance-78",
    "lead_answered": "3b0e6f52-8d6c-5f1e-9a47-0c1d2e3f4a5b",
}


def locs(error: ValidationError) -> list[tuple[int | str, ...]]:
    return [tuple(e["loc"]) for e in error.errors()]


def reject(kind: str, **change: Any) -> ValidationError:
    data = {k: v for k, v in {**EVENTS[kind], **change}.items() if v is not ...}
    with pytest.raises(ValidationError) as caught:
        parse_event(data, now=NOW_AT)
    return caught.value


@pytest.mark.parametrize("kind", sorted(EVENTS))
def test_json_to_avro_and_back(kind: str) -> None:
    codec = Codec.default()
    model = parse_event(json.dumps(EVENTS[kind]).encode(), now=NOW_AT)

    decoded = codec.decode(codec.encode(model.RECORD, model.to_avro()))
    again = type(model).from_avro(decoded.datum)

    assert decoded.record == model.RECORD
    assert again == model
    assert again.model_dump_json() == model.model_dump_json()
    assert model.key() == KEYS[kind]
    assert model.RECORD in catalog.topic(model.TOPIC).records


def test_models_match_their_avro_records() -> None:
    codec = Codec.default()
    assert set(MODELS_BY_RECORD) == {
        "BusinessEnrolled", "ModuleCompleted", "OfferRequested", "ResellerProfile", "LeadAnswered",
        "TrainingSessionAttended", "TrainingFeedback", "ConsentWithdrawn", "ErasureRequested",
    }
    # Every record a partner-input topic carries has its model.
    for topic in (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS,
                  catalog.RESELLERS, catalog.LEAD_RESPONSES):
        assert set(catalog.topic(topic).records) <= set(MODELS_BY_RECORD), topic
    for record, model in MODELS_BY_RECORD.items():
        assert record == model.RECORD
        avro_fields = [f["name"] for f in codec.registry.current(record).raw["fields"]]
        model_fields = [name for name in model.model_fields if name != "type"]
        assert sorted(model_fields) == sorted(set(avro_fields) - {"schema_version"})


def test_to_avro_is_the_codec_datum() -> None:
    model = parse_event(EVENTS["reseller_profile"], now=NOW_AT)
    datum = model.to_avro()
    assert "type" not in datum
    assert datum["event_id"] == str(model.event_id)
    assert isinstance(datum["event_id"], str)
    assert datum["schema_version"] == 3
    assert datum["departements"] == ["78", "92", "2A"]
    assert datum["absences"] == [{"start": "2026-12-21", "end": "2027-01-02"}]
    assert datum["occurred_at"] == datetime(2026, 11, 26, 9, 0, 0, 123000, tzinfo=UTC)


def test_normalisation() -> None:
    model = parse_event(
        {**EVENTS["business_enrolled"], "name": "  Boulangerie Martin ", "departement": "2b",
         "naf": "10.71c", "contact_email": " Jean.Martin+passeport@Boulangerie-Martin.FR "},
        now=NOW_AT,
    )
    assert isinstance(model, BusinessEnrolled)
    assert model.name == "Boulangerie Martin"
    assert model.departement == "2B"
    assert model.naf == "10.71C"
    assert model.contact_email == "Jean.Martin+passeport@boulangerie-martin.fr"
    # One instant, in UTC, at Avro's millisecond precision.
    assert model.occurred_at == datetime(2026, 11, 26, 9, 0, 0, 123000, tzinfo=UTC)
    assert model.occurred_at.utcoffset() == timedelta(0)


def test_reseller_lists_keep_first_occurrences_in_order() -> None:
    model = parse_event(
        {**EVENTS["reseller_profile"], "departements": ["92", "78", "92"],
         "categories": ["broadband", "security", "broadband"]},
        now=NOW_AT,
    )
    assert isinstance(model, ResellerProfile)
    assert model.departements == ("92", "78")
    assert model.categories == ("broadband", "security")
    assert (model.status, model.capacity, model.weight) == ("active", 25, 3)


def test_event_id_is_generated_when_absent_and_kept_when_given() -> None:
    data = {k: v for k, v in EVENTS["offer_requested"].items() if k != "event_id"}
    first, second = parse_event(data, now=NOW_AT), parse_event(data, now=NOW_AT)
    assert first.event_id != second.event_id
    given = parse_event(EVENTS["business_enrolled"], now=NOW_AT)
    assert given.event_id == UUID("6f1c2b8e-4a9d-4e1b-9c3f-2d7a5e8b1c40")


@pytest.mark.parametrize(
    ("kind", "change", "field"),
    [
        ("business_enrolled", {"siren": "732829321"}, "siren"),
        ("business_enrolled", {"siren": "73282932"}, "siren"),
        ("business_enrolled", {"siren": 732829320}, "siren"),
        ("business_enrolled", {"departement": "20"}, "departement"),
        ("business_enrolled", {"departement": "1"}, "departement"),
        ("business_enrolled", {"departement": "975"}, "departement"),
        ("business_enrolled", {"naf": "1071C"}, "naf"),
        ("business_enrolled", {"employees": 250}, "employees"),
        ("business_enrolled", {"employees": -1}, "employees"),
        ("business_enrolled", {"contact_email": "contact.boulangerie-martin.fr"}, "contact_email"),
        ("business_enrolled", {"contact_email": "a@b"}, "contact_email"),
        ("business_enrolled", {"contact_email": "a..b@martin.fr"}, "contact_email"),
        ("business_enrolled", {"contact_email": "a b@martin.fr"}, "contact_email"),
        ("business_enrolled", {"contact_email": "a@-martin.fr"}, "contact_email"),
        ("business_enrolled", {"name": ""}, "name"),
        ("business_enrolled", {"name": "   "}, "name"),
        ("business_enrolled", {"name": "x" * 201}, "name"),
        ("business_enrolled", {"name": ...}, "name"),
        ("business_enrolled", {"source": ""}, "source"),
        ("business_enrolled", {"source": "s" * 65}, "source"),
        ("business_enrolled", {"event_id": "not-a-uuid"}, "event_id"),
        ("business_enrolled", {"occurred_at": "2026-11-26T10:00:00"}, "occurred_at"),
        ("business_enrolled", {"occurred_at": "yesterday"}, "occurred_at"),
        ("business_enrolled", {"nickname": "Martin"}, "nickname"),
        ("module_completed", {"module_id": "knitting"}, "module_id"),
        ("module_completed", {"siren": "123456789"}, "siren"),
        ("offer_requested", {"category": "Security"}, "category"),
        ("offer_requested", {"category": "catering"}, "category"),
        ("reseller_profile", {"reseller_id": "Infogerance"}, "reseller_id"),
        ("reseller_profile", {"reseller_id": "-x"}, "reseller_id"),
        ("reseller_profile", {"reseller_id": "a"}, "reseller_id"),
        ("reseller_profile", {"departements": ["78", "99"]}, "departements"),
        ("reseller_profile", {"departements": []}, "departements"),
        ("reseller_profile", {"categories": ["security", "catering"]}, "categories"),
        ("reseller_profile", {"capacity": 10_001}, "capacity"),
        ("reseller_profile", {"capacity": -1}, "capacity"),
        ("reseller_profile", {"weight": 0}, "weight"),
        ("reseller_profile", {"weight": 101}, "weight"),
        ("reseller_profile", {"status": "deleted"}, "status"),
        ("lead_answered", {"answer": "maybe"}, "answer"),
        ("lead_answered", {"reason": ...}, "reason"),
        ("lead_answered", {"reason": None}, "reason"),
        ("lead_answered", {"reason": "too_expensive"}, "reason"),
        ("lead_answered", {"answer": "accepted"}, "reason"),
        ("lead_answered", {"answer": "won"}, "reason"),
        ("lead_answered", {"lead_id": ""}, "lead_id"),
        ("business_enrolled", {"siret": "73282932000075"}, "siret"),
        ("business_enrolled", {"siret": "7328293200007"}, "siret"),
        ("business_enrolled", {"siret": "54205118000066"}, "siret"),  # another SIREN's
        ("business_enrolled", {"contact_phone": "01 23 45 67"}, "contact_phone"),
        ("business_enrolled", {"contact_phone": "+44 20 7946 0958"}, "contact_phone"),
        ("business_enrolled", {"broadband": "maybe"}, "broadband"),
        ("business_enrolled", {"contact_name": ""}, "contact_name"),
        ("training_session_attended", {"session_id": ""}, "session_id"),
        ("training_session_attended", {"session_id": ...}, "session_id"),
        ("training_session_attended", {"module_id": "knitting"}, "module_id"),
        ("training_session_attended", {"attended": "perhaps"}, "attended"),
        ("training_feedback", {"score": 0}, "score"),
        ("training_feedback", {"score": 6}, "score"),
        ("training_feedback", {"score": True}, "score"),
        ("training_feedback", {"score": "4"}, "score"),
        ("training_feedback", {"score": 4.5}, "score"),
        ("training_feedback", {"score": ...}, "score"),
        ("training_feedback", {"comment": "x" * 2001}, "comment"),
        ("training_feedback", {"delegation": "d" * 65}, "delegation"),
        ("consent_withdrawn", {"siren": "732829321"}, "siren"),
        ("consent_withdrawn", {"reason": "r" * 501}, "reason"),
        ("erasure_requested", {"requested_by": ...}, "requested_by"),
        ("erasure_requested", {"requested_by": " "}, "requested_by"),
        ("reseller_profile", {"delivery": "email"}, "delivery"),
        ("reseller_profile", {"webhook_url": "http://crm.example.fr/hook"}, "webhook_url"),
        ("reseller_profile", {"webhook_url": ...}, "webhook_url"),
        ("reseller_profile", {"webhook_url": None}, "webhook_url"),
        ("reseller_profile", {"contact_email": "leads"}, "contact_email"),
    ],
)
def test_domain_checks_name_the_field(kind: str, change: dict[str, Any], field: str) -> None:
    error = reject(kind, **change)
    assert all(loc[0] == kind for loc in locs(error))
    assert field in {loc[1] for loc in locs(error)}, locs(error)


def test_list_errors_point_at_the_item() -> None:
    error = reject("reseller_profile", departements=["78", "99"])
    assert locs(error) == [("reseller_profile", "departements", 1)]


def test_messages_say_what_is_wrong() -> None:
    assert "fails its Luhn check" in str(reject("business_enrolled", siren="732829321"))
    assert "needs a reason" in str(reject("lead_answered", reason=...))
    assert "only a rejected lead has a reason" in str(reject("lead_answered", answer="lost"))


def test_error_text_never_carries_the_contact_address() -> None:
    error = reject("business_enrolled", contact_email="jean.martin@@martin.fr", siren="1")
    assert "jean.martin" not in str(error)
    with pytest.raises(ValidationError) as direct:
        BusinessEnrolled.model_validate(
            {**EVENTS["business_enrolled"], "contact_email": "jean.martin@@x.fr"}, context=CONTEXT
        )
    assert "jean.martin" not in str(direct.value)


@pytest.mark.parametrize("reason", REJECT_REASONS)
def test_every_reject_reason_is_accepted_for_a_rejection(reason: str) -> None:
    model = parse_event({**EVENTS["lead_answered"], "reason": reason}, now=NOW_AT)
    assert isinstance(model, LeadAnswered)
    assert model.reason == reason


@pytest.mark.parametrize("answer", ["accepted", "won", "lost"])
def test_other_answers_take_no_reason(answer: str) -> None:
    data = {k: v for k, v in EVENTS["lead_answered"].items() if k != "reason"}
    model = parse_event({**data, "answer": answer}, now=NOW_AT)
    assert isinstance(model, LeadAnswered)
    assert model.reason is None


def test_unknown_type_and_missing_type() -> None:
    with pytest.raises(ValidationError) as unknown:
        parse_event({**EVENTS["offer_requested"], "type": "offer_cancelled"}, now=NOW_AT)
    assert unknown.value.errors()[0]["type"] == "union_tag_invalid"
    with pytest.raises(ValidationError) as missing:
        parse_event({k: v for k, v in EVENTS["offer_requested"].items() if k != "type"})
    assert missing.value.errors()[0]["type"] == "union_tag_not_found"


def test_models_are_frozen() -> None:
    model = parse_event(EVENTS["offer_requested"], now=NOW_AT)
    assert isinstance(model, OfferRequested)
    with pytest.raises(ValidationError):
        model.category = "broadband"  # type: ignore[misc]  # proving it fails


def test_adapter_and_model_agree() -> None:
    data = EVENTS["business_enrolled"]
    by_adapter = EVENT_ADAPTER.validate_python(data, context=CONTEXT)
    by_model = BusinessEnrolled.model_validate(data, context=CONTEXT)
    assert by_adapter == by_model
    assert isinstance(by_adapter, EventModel)


def test_topics_and_keys_follow_the_catalog() -> None:
    expected: dict[type[EventModel], tuple[str, str]] = {
        BusinessEnrolled: (catalog.ENROLMENTS, "siren"),
        ConsentWithdrawn: (catalog.ENROLMENTS, "siren"),
        ErasureRequested: (catalog.ENROLMENTS, "siren"),
        ModuleCompleted: (catalog.TRAINING, "siren"),
        TrainingSessionAttended: (catalog.TRAINING, "siren"),
        TrainingFeedback: (catalog.TRAINING, "siren"),
        OfferRequested: (catalog.OFFER_REQUESTS, "siren"),
        ResellerProfile: (catalog.RESELLERS, "reseller_id"),
        LeadAnswered: (catalog.LEAD_RESPONSES, "lead_id"),
    }
    for model, (topic, key) in expected.items():
        assert topic == model.TOPIC
        assert catalog.topic(topic).key == key


def test_there_is_one_example_per_event_type() -> None:
    assert set(EXAMPLES) == set(MODELS_BY_TYPE) == set(EVENTS)
    assert all(example["type"] == kind for kind, example in EXAMPLES.items())


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_every_example_validates_and_survives_avro(kind: str) -> None:
    codec = Codec.default()
    model = parse_event(json.dumps(EXAMPLES[kind]).encode())
    assert isinstance(model, MODELS_BY_TYPE[kind])

    decoded = codec.decode(codec.encode(model.RECORD, model.to_avro()))

    assert decoded.version == codec.registry.current_version(model.RECORD)
    assert type(model).from_avro(decoded.datum) == model
    # Every field is shown: an example is where a partner learns the optional ones.
    assert set(EXAMPLES[kind]) == set(type(model).model_fields)


def test_v2_fields_are_optional_and_normalised() -> None:
    minimal = {k: EVENTS["business_enrolled"][k]
               for k in ("type", "occurred_at", "source", "siren", "name", "departement")}
    model = parse_event(minimal, now=NOW_AT)
    assert isinstance(model, BusinessEnrolled)
    assert (model.siret, model.broadband, model.ecommerce) == (None, None, None)
    assert (model.contact_phone, model.contact_name) == (None, None)
    full = parse_event(EVENTS["business_enrolled"], now=NOW_AT)
    assert isinstance(full, BusinessEnrolled)
    assert full.contact_phone == "+33139123456"
    assert full.siret == "73282932000074"


def test_a_business_enrolled_v1_record_becomes_a_model() -> None:
    # What the passport service reads from a producer still on v1.
    codec = Codec.default()
    v1 = codec.registry.version("BusinessEnrolled", 1)
    model = parse_event(EVENTS["business_enrolled"], now=NOW_AT)
    v1_datum = {f["name"]: model.to_avro()[f["name"]] for f in v1.raw["fields"]}
    data = Codec(SchemaRegistry([v1])).encode("BusinessEnrolled", v1_datum)
    again = BusinessEnrolled.from_avro(codec.decode(data).datum)
    assert again == model.model_copy(update={
        "siret": None, "broadband": None, "ecommerce": None, "contact_phone": None,
        "contact_name": None,
    })


def test_new_event_defaults() -> None:
    session = {k: v for k, v in EVENTS["training_session_attended"].items() if k != "attended"}
    model = parse_event(session, now=NOW_AT)
    assert isinstance(model, TrainingSessionAttended)
    assert model.attended is True
    assert model.trainer_org is None
    no_reason = {k: v for k, v in EVENTS["consent_withdrawn"].items() if k != "reason"}
    withdrawn = parse_event(no_reason, now=NOW_AT)
    assert isinstance(withdrawn, ConsentWithdrawn)
    assert withdrawn.reason is None
    profile = {k: v for k, v in EVENTS["reseller_profile"].items()
               if k not in {"delivery", "webhook_url", "contact_email"}}
    reseller = parse_event(profile, now=NOW_AT)
    assert isinstance(reseller, ResellerProfile)
    assert (reseller.delivery, reseller.webhook_url, reseller.contact_email) == ("pull", None, None)


def test_a_blank_feedback_comment_is_no_comment() -> None:
    model = parse_event({**EVENTS["training_feedback"], "comment": "   "}, now=NOW_AT)
    assert isinstance(model, TrainingFeedback)
    assert model.comment is None
    longest = parse_event({**EVENTS["training_feedback"], "comment": "é" * 2000}, now=NOW_AT)
    assert isinstance(longest, TrainingFeedback)
    assert longest.comment == "é" * 2000


def test_webhook_delivery_needs_a_url_and_other_modes_may_keep_one() -> None:
    error = reject("reseller_profile", webhook_url=...)
    assert "webhook delivery needs a webhook_url" in str(error)
    pull = parse_event({**EVENTS["reseller_profile"], "delivery": "pull"}, now=NOW_AT)
    assert isinstance(pull, ResellerProfile)
    assert pull.webhook_url == "https://crm.infogerance-78.fr/hooks"


def test_siret_must_belong_to_the_siren() -> None:
    error = reject("business_enrolled", siret="54205118000066")
    assert "not an establishment of SIREN 732829320" in str(error)
    # A bad SIREN is reported once, on the SIREN, not again on the SIRET.
    assert locs(reject("business_enrolled", siren="732829321")) == [
        ("business_enrolled", "siren"),
    ]


def test_error_text_never_carries_the_phone_number() -> None:
    error = reject("business_enrolled", contact_phone="06 12 34 56 7")
    assert "06 12" not in str(error)
    assert "0612" not in str(error)
