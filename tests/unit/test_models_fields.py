"""The reusable field types: phone normalisation, webhook URLs, SIRET, and their messages."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ConfigDict, TypeAdapter, ValidationError

from schemas import models
from schemas.fields import (
    Comment,
    PhoneNumber,
    Siren,
    Siret,
    WebhookUrl,
    normalise_phone,
)

# As the models configure it: the input is kept out of the error's text.
_HIDDEN = ConfigDict(hide_input_in_errors=True)
PHONE: TypeAdapter[str] = TypeAdapter(PhoneNumber, config=_HIDDEN)
URL: TypeAdapter[str] = TypeAdapter(WebhookUrl, config=_HIDDEN)


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("01 23 45 67 89", "+33123456789"),
        ("0123456789", "+33123456789"),
        ("+33 1 23 45 67 89", "+33123456789"),
        ("+33123456789", "+33123456789"),
        ("01.23.45.67.89", "+33123456789"),
        ("01-23-45-67-89", "+33123456789"),
        (" 06 12 34 56 78 ", "+33612345678"),
        ("01\u00a023\u00a045\u00a067\u00a089", "+33123456789"),  # no-break spaces, as Word types
        ("+33 (0)1 23 45 67 89", "+33123456789"),
        ("0033 1 23 45 67 89", "+33123456789"),
        ("09 70 12 34 56", "+33970123456"),
        # Overseas: national numbers get their own country code, not +33.
        ("0262 12 34 56", "+262262123456"),
        ("0692 12 34 56", "+262692123456"),
        ("0269 61 23 45", "+262269612345"),  # Mayotte
        ("0590 12 34 56", "+590590123456"),
        ("0694 12 34 56", "+594694123456"),
        ("0596 12 34 56", "+596596123456"),
        ("+262 262 12 34 56", "+262262123456"),
        ("+590 690 12 34 56", "+590690123456"),
        ("+33 262 12 34 56", "+262262123456"),
    ],
)
def test_french_phone_numbers_normalise_to_e164(written: str, e164: str) -> None:
    assert normalise_phone(written) == e164
    assert PHONE.validate_python(written) == e164
    assert normalise_phone(e164) == e164  # idempotent: a stored number re-validates as itself


@pytest.mark.parametrize(
    "written",
    [
        "01 23 45 67 8",  # 9 digits
        "01 23 45 67 89 0",  # 11 digits
        "+33 1 23 45 67 8",
        "+33 01 23 45 67 89",  # trunk 0 kept after the country code
        "00 23 45 67 89",  # no area digit
        "1 23 45 67 89",  # no trunk 0
        "+44 20 7946 0958",  # not French
        "+269 76 12 34 56",  # the Comoros (Mayotte's code until 2007)
        "+1 212 555 0100",
        "01 23 45 67 8a",
        "01/23/45/67/89",
        "０１２３４５６７８９",  # full-width digits  # noqa: RUF001 - on purpose
        "",
        "+",
        "+33",
    ],
)
def test_other_numbers_are_refused_without_being_repeated(written: str) -> None:
    with pytest.raises(ValueError, match="not a French phone number") as caught:
        normalise_phone(written)
    digits = "".join(c for c in written if c.isdigit())
    if len(digits) > 4:
        assert digits not in str(caught.value)
    with pytest.raises(ValidationError):
        PHONE.validate_python(written)


@pytest.mark.parametrize(
    "url",
    [
        "https://crm.example.fr/hooks/passeport",
        "https://crm.example.fr:8443/hooks?tenant=78",
        "HTTPS://CRM.EXAMPLE.FR/",
        "http://127.0.0.1:8080/hook",
        "http://localhost:9999/hook",
        "https://[2001:db8::1]/hook",
    ],
)
def test_webhook_urls_accepted(url: str) -> None:
    assert URL.validate_python(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://crm.example.fr/hook", "https://"),
        ("http://10.0.0.1/hook", "https://"),
        ("http://127.0.0.2/hook", "https://"),
        ("ftp://crm.example.fr/hook", "https://"),
        ("crm.example.fr/hook", "https://"),
        ("https:///hook", "https://"),
        ("https://crm.example.fr:99999/", "https://"),
        ("https://crm .example.fr/", "https://"),
        ("https://user:secret@crm.example.fr/hook", "no credentials"),
        ("https://token@crm.example.fr/hook", "no credentials"),
        ("https://crm.example.fr/" + "a" * 2000, "2000"),
    ],
)
def test_webhook_urls_refused(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        URL.validate_python(url)
    assert "secret" not in str(caught.value)


@pytest.mark.parametrize(
    ("siret", "valid"),
    [
        ("73282932000074", True),
        ("35600000000001", True),  # La Poste: digit-sum rule
        ("73282932000075", False),
        ("7328293200007", False),
        ("7328293200007A", False),
        ("73282932100073", False),  # its SIREN part fails Luhn
    ],
)
def test_siret_type(siret: str, valid: bool) -> None:
    adapter: TypeAdapter[str] = TypeAdapter(Siret)
    if valid:
        assert adapter.validate_python(siret) == siret
    else:
        with pytest.raises(ValidationError, match="SIRET"):
            adapter.validate_python(siret)


def test_siren_type_names_the_rule() -> None:
    adapter: TypeAdapter[str] = TypeAdapter(Siren)
    with pytest.raises(ValidationError, match="Luhn"):
        adapter.validate_python("732829321")
    with pytest.raises(ValidationError, match="9 digits"):
        adapter.validate_python("７３２８２９３２０")  # noqa: RUF001 - full-width on purpose


def test_comment_blank_is_none_and_long_is_refused() -> None:
    adapter: TypeAdapter[Any] = TypeAdapter(Comment)
    assert adapter.validate_python("") is None
    assert adapter.validate_python("ok") == "ok"
    with pytest.raises(ValidationError):
        adapter.validate_python("x" * 2001)


@pytest.mark.parametrize(
    "name",
    # What other packages import from schemas.models today: it must keep working.
    ["EVENT_ADAPTER", "MODELS_BY_RECORD", "EventModel", "ResellerId", "Siren", "BusinessEnrolled",
     "ModuleCompleted", "OfferRequested", "ResellerProfile", "LeadAnswered", "NOW",
     "REJECT_REASONS", "FUTURE_TOLERANCE", "DepartementCode", "EmailAddress", "CategorySlug",
     "ModuleId", "NafCode", "BusinessName", "LeadId", "RejectReason", "Event", "parse_event"],
)
def test_models_keeps_exporting_what_other_packages_import(name: str) -> None:
    assert name in models.__all__
    assert getattr(models, name) is not None
