"""Rows to events: French dates, booleans, type inference, and errors that name line and field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.file_drop.rows import (
    Defaults,
    FieldError,
    TypeUnknown,
    from_cells,
    from_json,
    infer_type,
    models_by_tag,
    parse_date,
    type_tag,
)
from schemas.models import BusinessEnrolled, ModuleCompleted, OfferRequested

SIREN = "732829320"
EVENT_ID = "5b0e6c2e-2f7c-4d3e-9a51-6f1e3c9d8a10"
NOW = datetime(2009, 6, 1, 12, 0, tzinfo=UTC)


def _defaults(tag: str | None = "business_enrolled") -> Defaults:
    return Defaults(source="cefac-78", event_id=lambda line: EVENT_ID, type=tag, now=NOW)


def _enrolment(**cells: str) -> dict[str, str]:
    return {"siren": SIREN, "name": "Boulangerie Martin", "departement": "78",
            "occurred_at": "05/03/2009", **cells}


@pytest.mark.parametrize(("text", "expected"), [
    # French dates are Paris time: midnight in winter is 23:00 UTC the day before.
    ("05/03/2009", datetime(2009, 3, 4, 23, 0, tzinfo=UTC)),
    ("5/3/2009 14:30", datetime(2009, 3, 5, 13, 30, tzinfo=UTC)),
    ("05/07/2009 14h30", datetime(2009, 7, 5, 12, 30, tzinfo=UTC)),  # summer: UTC+2
    ("05/07/2009 14:30:15", datetime(2009, 7, 5, 12, 30, 15, tzinfo=UTC)),
    ("2009-03-05T14:30:00Z", datetime(2009, 3, 5, 14, 30, tzinfo=UTC)),
    ("2009-03-05T14:30:00+01:00", datetime(2009, 3, 5, 13, 30, tzinfo=UTC)),
    ("2009-03-05 14:30", datetime(2009, 3, 5, 13, 30, tzinfo=UTC)),  # naive ISO: Paris too
    ("2009-03-05", datetime(2009, 3, 4, 23, 0, tzinfo=UTC)),
])
def test_dates_iso_and_french(text: str, expected: datetime) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize("text", ["31/02/2009", "2009/03/05", "hier", "05/03/09", ""])
def test_not_dates(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # the message is the caller's to word
        parse_date(text)


def test_a_good_row_becomes_the_api_event() -> None:
    event = from_cells(2, _enrolment(consent_share_with_resellers="Oui", employees="12",
                                     contact_email="Contact@Martin.FR", naf=" 47.11d "),
                       _defaults())
    assert isinstance(event, BusinessEnrolled)
    assert event.event_id.hex == EVENT_ID.replace("-", "")
    assert event.source == "cefac-78"
    assert event.occurred_at == datetime(2009, 3, 4, 23, 0, tzinfo=UTC)
    assert event.consent_share_with_resellers is True
    assert event.employees == 12
    assert event.naf == "47.11D"
    assert event.contact_email == "Contact@martin.fr"


@pytest.mark.parametrize(("cell", "consent"), [
    ("oui", True), ("OUI", True), ("x", True), ("X", True), ("1", True), ("true", True),
    ("Vrai", True), ("non", False), ("0", False), ("false", False), ("Faux", False)])
def test_consent_words(cell: str, consent: bool) -> None:
    event = from_cells(2, _enrolment(consent_share_with_resellers=cell), _defaults())
    assert isinstance(event, BusinessEnrolled)
    assert event.consent_share_with_resellers is consent


def test_an_empty_consent_cell_means_no_consent() -> None:
    event = from_cells(2, _enrolment(consent_share_with_resellers=" "), _defaults())
    assert isinstance(event, BusinessEnrolled)
    assert event.consent_share_with_resellers is False


def test_spreadsheet_artefacts_are_undone_before_validation() -> None:
    # "732 829 320" as a formatted number; "1" for Ain after the leading zero was eaten.
    event = from_cells(2, _enrolment(siren="732 829 320", departement="1", employees="12,0"),
                       _defaults())
    assert isinstance(event, BusinessEnrolled)
    assert (event.siren, event.departement, event.employees) == (SIREN, "01", 12)


def test_every_bad_field_is_named_with_its_line() -> None:
    errors = from_cells(7, {"siren": "123", "name": "", "departement": "99",
                            "occurred_at": "31/02/2009", "employees": "beaucoup",
                            "consent_share_with_resellers": "peut-être"}, _defaults())
    assert isinstance(errors, list)
    assert {error.line for error in errors} == {7}
    assert [error.field for error in errors] == [
        "occurred_at", "consent_share_with_resellers", "siren", "name", "departement",
        "employees"]
    by_field = {error.field: error.reason for error in errors}
    assert "9 digits" in by_field["siren"]
    assert by_field["name"] == "Field required"
    assert "dd/mm/yyyy" in by_field["occurred_at"]
    assert "oui/non" in by_field["consent_share_with_resellers"]


def test_reasons_never_carry_contact_values() -> None:
    errors = from_cells(3, _enrolment(contact_email="jean.martin@@example", contact_phone="06 12",
                                      contact_name="J"), _defaults())
    assert isinstance(errors, list)
    assert {error.field for error in errors} >= {"contact_email", "contact_phone"}
    for error in errors:
        assert "jean.martin" not in error.reason
        assert "06 12" not in error.reason


def test_a_column_the_type_lacks_is_refused_by_name() -> None:
    errors = from_cells(4, {"siren": SIREN, "category": "website-hosting", "module_id": "x",
                            "occurred_at": "05/03/2009"}, _defaults("module_completed"))
    assert isinstance(errors, list)
    assert FieldError(4, "category", "not a field of module_completed events") in errors


def test_the_type_cell_wins_and_is_read_loosely() -> None:
    cells = {"siren": SIREN, "category": "website-hosting", "occurred_at": "05/03/2009"}
    for spelling in ("offer_requested", "OfferRequested", "Offer requested", "Offre"):
        event = from_cells(2, {**cells, "type": spelling}, _defaults("business_enrolled"))
        assert isinstance(event, OfferRequested), spelling
    assert from_cells(2, {**cells, "type": "commande"}, _defaults()) == [
        FieldError(2, "type", "unknown event type; known: " + ", ".join(models_by_tag()))]


def test_no_type_at_all_is_a_type_error() -> None:
    errors = from_cells(2, _enrolment(), _defaults(None))
    assert errors == [FieldError(2, "type", "no event type: add a Type column or use --type")]


@pytest.mark.parametrize(("fields", "tag"), [
    ({"siren", "name", "departement", "naf", "contact_email"}, "business_enrolled"),
    ({"name", "departement"}, "business_enrolled"),  # the SIREN column missing: rows say so
    ({"siren", "module_id", "occurred_at"}, "module_completed"),
    ({"siren", "module_id", "trainer_org"}, "module_completed"),
    ({"siren", "category"}, "offer_requested"),
    ({"reseller_id", "name", "departements", "categories"}, "reseller_profile"),
    ({"lead_id", "reseller_id", "answer"}, "lead_answered"),
])
def test_type_from_the_header_set(fields: set[str], tag: str) -> None:
    assert infer_type(fields) == tag


@pytest.mark.parametrize("fields", [
    {"siren"},  # a list of SIRENs is not, say, a batch of consent withdrawals
    {"siren", "occurred_at", "source"},
    {"category", "module_id"},
    set(),
])
def test_no_type_from_headers_that_do_not_tell(fields: set[str]) -> None:
    with pytest.raises(TypeUnknown):
        infer_type(fields)


def test_type_option_spellings() -> None:
    assert type_tag("module_completed") == "module_completed"
    assert type_tag("ModuleCompleted") == "module_completed"
    assert type_tag("inscription") == "business_enrolled"
    assert type_tag("nope") is None


def test_a_json_line_is_an_api_body() -> None:
    body = {"type": "module_completed", "siren": SIREN, "module_id": "website-create",
            "occurred_at": "2009-03-05T10:00:00Z"}
    event = from_json(1, body, _defaults(None))
    assert isinstance(event, ModuleCompleted)
    assert (event.source, str(event.event_id)) == ("cefac-78", EVENT_ID)
    given = "0b7c0ad1-7d8e-4a59-9a33-0c5f0b1e2d11"
    kept = from_json(1, {**body, "event_id": given, "source": "google"}, _defaults(None))
    assert isinstance(kept, ModuleCompleted)
    assert (kept.source, str(kept.event_id)) == ("google", given)


def test_json_lines_are_not_read_the_french_way() -> None:
    # Same shape as the API: a French date in JSON is the API's error, not a conversion.
    errors = from_json(5, {"type": "module_completed", "siren": SIREN,
                           "module_id": "website-create", "occurred_at": "05/03/2009"},
                       _defaults(None))
    assert isinstance(errors, list)
    assert [(e.line, e.field) for e in errors] == [(5, "occurred_at")]
    assert from_json(6, [1], _defaults(None)) == [FieldError(6, "line", "not a JSON object")]
    missing = from_json(7, {"siren": SIREN}, _defaults(None))
    assert isinstance(missing, list)
    assert [e.field for e in missing] == ["type"]
