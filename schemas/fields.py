"""The reusable field types of the JSON models: each domain check and normaliser written once.

Every type here is a plain ``str`` (or literal) annotated with its check, so the
models, the API's path parameters and the file-drop parsers share one meaning
of "a SIREN", "a département", "a French phone number". Error messages never
repeat a value that may be personal data (e-mail, phone, URL): errors get logged.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from schemas.identifiers import is_valid_naf, is_valid_siren, is_valid_siret
from schemas.reference import CATEGORIES, DEPARTEMENTS, MODULES

__all__ = [
    "DELIVERY_MODES",
    "REJECT_REASONS",
    "BusinessName",
    "CategorySlug",
    "Comment",
    "Delivery",
    "DepartementCode",
    "EmailAddress",
    "LeadId",
    "ModuleId",
    "NafCode",
    "PersonName",
    "PhoneNumber",
    "RejectReason",
    "ResellerId",
    "SessionId",
    "ShortText",
    "Siren",
    "Siret",
    "WebhookUrl",
    "normalise_phone",
    "unique",
]


def _digits(value: str, count: int) -> bool:
    return len(value) == count and value.isascii() and value.isdigit()


def _check_siren(value: str) -> str:
    if not _digits(value, 9):
        raise ValueError(f"SIREN {value!r} must be exactly 9 digits")
    if not is_valid_siren(value):
        raise ValueError(f"SIREN {value} fails its Luhn check")
    return value


def _check_siret(value: str) -> str:
    if not _digits(value, 14):
        raise ValueError(f"SIRET {value!r} must be exactly 14 digits (SIREN + NIC)")
    if not is_valid_siret(value):
        raise ValueError(f"SIRET {value} fails its check (Luhn; digit sum for La Poste)")
    return value


def _check_departement(value: str) -> str:
    code = value.upper()  # "2a" is a common spelling of "2A"
    if code not in DEPARTEMENTS:
        raise ValueError(f"{value!r} is not a département code (01-95, 2A, 2B, 971-976)")
    return code


def _check_naf(value: str) -> str:
    code = value.upper()
    if not is_valid_naf(code):
        raise ValueError(f"NAF code {value!r} must read NN.NNL, e.g. 47.11D")
    return code


_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


def _check_email(value: str) -> str:
    match = _EMAIL.fullmatch(value)
    if match is None or len(value) > 254 or len(match["local"]) > 64:
        raise ValueError("not a valid e-mail address")
    # Domains are case-insensitive; the local part may not be, so it is kept as given.
    return f"{match['local']}@{match['domain'].lower()}"


# Separators people write between digit pairs: space, no-break spaces, dot, hyphen.
_PHONE_SEPARATORS = str.maketrans("", "", " \u00a0\u202f.-")
# Overseas départements have French national numbers (0262 ..., 0690 ...) but
# their own country codes: +33 262 ... would ring nowhere. Mayotte shares +262
# (its old +269 is the Comoros' since 2007, so it is not accepted).
_OVERSEAS = {
    "262": "262", "263": "262", "692": "262", "693": "262",  # La Réunion
    "269": "262", "639": "262",  # Mayotte
    "590": "590", "690": "590", "691": "590",  # Guadeloupe, Saint-Martin, Saint-Barthélemy
    "594": "594", "694": "594",  # Guyane
    "596": "596", "696": "596", "697": "596",  # Martinique
}
_OVERSEAS_CODES = frozenset(_OVERSEAS.values())
_PHONE_HELP = (
    "not a French phone number: 10 digits such as 01 23 45 67 89, or +33 1 23 45 67 89"
    " (+262, +590, +594, +596 overseas)"
)


def normalise_phone(value: str) -> str:
    """The E.164 form (``+33123456789``) of a French phone number, ValueError if it is not one.

    Accepts the national form (``01 23 45 67 89``, ``0123456789``,
    ``01.23.45.67.89``), the international one (``+33 1 23 45 67 89``,
    ``+33 (0)1 ...``, ``0033 1 ...``) and overseas E.164 numbers (``+262 262 ...``).
    """
    compact = value.strip().translate(_PHONE_SEPARATORS)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if compact.startswith("+33"):
        country, national = "33", compact[3:].removeprefix("(0)")
    elif compact.startswith("+") and compact[1:4] in _OVERSEAS_CODES:
        country, national = compact[1:4], compact[4:]
    elif compact.startswith("0"):
        country, national = "33", compact[1:]
    else:
        raise ValueError(_PHONE_HELP)
    # Nine digits after the trunk 0 or the country code, never a second 0 first.
    if not _digits(national, 9) or national[0] == "0":
        raise ValueError(_PHONE_HELP)
    if country == "33":
        country = _OVERSEAS.get(national[:3], "33")
    return f"+{country}{national}"


def _check_module(value: str) -> str:
    if value not in MODULES:
        raise ValueError(f"unknown module {value!r}")
    return value


def _check_category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"unknown offer category {value!r}; known: {', '.join(CATEGORIES)}")
    return value


# Loopback only: a test runs its webhook receiver there; anything else travels in clear.
_PLAIN_HTTP_HOSTS = frozenset({"127.0.0.1", "localhost"})
_URL_HELP = "a webhook URL is https://host/... (http:// only to 127.0.0.1 or localhost, for tests)"


def _check_webhook_url(value: str) -> str:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(_URL_HELP) from None
    if any(char.isspace() for char in value) or not parts.hostname:
        raise ValueError(_URL_HELP)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in _PLAIN_HTTP_HOSTS
    ):
        raise ValueError(_URL_HELP)
    if parts.username is not None or parts.password is not None:
        # Deliveries are signed; a secret in the URL would end up in logs.
        raise ValueError("a webhook URL carries no credentials (deliveries are signed)")
    return value


def _none_if_blank(value: str) -> str | None:
    # Feedback forms send "" for "no comment": that is no comment, not an error.
    return value or None


def unique(values: tuple[str, ...]) -> tuple[str, ...]:
    """The values without repeats, first occurrences in order."""
    return tuple(dict.fromkeys(values))


Siren = Annotated[str, AfterValidator(_check_siren)]
Siret = Annotated[str, AfterValidator(_check_siret)]
DepartementCode = Annotated[str, AfterValidator(_check_departement)]
NafCode = Annotated[str, AfterValidator(_check_naf)]
EmailAddress = Annotated[str, AfterValidator(_check_email)]
PhoneNumber = Annotated[str, AfterValidator(normalise_phone)]
ModuleId = Annotated[str, AfterValidator(_check_module)]
CategorySlug = Annotated[str, AfterValidator(_check_category)]
WebhookUrl = Annotated[str, Field(max_length=2000), AfterValidator(_check_webhook_url)]
BusinessName = Annotated[str, Field(min_length=1, max_length=200)]
PersonName = Annotated[str, Field(min_length=1, max_length=200)]
ResellerId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
LeadId = Annotated[str, Field(min_length=1, max_length=128)]
SessionId = Annotated[str, Field(min_length=1, max_length=128)]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]
Comment = Annotated[str, Field(max_length=2000), AfterValidator(_none_if_blank)]
"""Free text up to 2000 characters; blank reads as no comment (None)."""

RejectReason = Literal[
    "budget",
    "no_customer_response",
    "other_vendor",
    "requirement_not_met",
    "not_a_customer",
    "timeline_too_short",
    "spam",
    "other",
]
#: The rejection reason codes, after those of large partner programmes.
REJECT_REASONS: tuple[str, ...] = get_args(RejectReason)

Delivery = Literal["pull", "webhook", "kafka"]
#: How a reseller receives its leads: it pulls them, we push to its webhook, or it reads Kafka.
DELIVERY_MODES: tuple[str, ...] = get_args(Delivery)
