"""The reusable field types of the JSON models: each domain check and normaliser written once.

Every type here is a plain ``str`` (or literal) annotated with its check, so the
models, the API's path parameters and the file-drop parsers share one meaning
of "a SIREN", "a département", "a French phone number". Error messages never
repeat a value that may be personal data (e-mail, phone, URL, a person's name):
errors get logged; a code they do quote is cut short (``_shown``).

Text fields are text (issue 13, "Hostile input"). Every text type refuses
what no partner types and what would deceive a reader or a spreadsheet:

- control characters: NUL, C0, DEL and C1. Free text (``Comment``, ``Reason``)
  keeps TAB, LF and CR, the line breaks a feedback form sends; names refuse all;
- lone surrogates (pydantic refuses them before these checks run) and
  noncharacters (U+FDD0-FDEF, U+xFFFE/U+xFFFF);
- bidi controls (U+061C, U+200E/F, U+202A-202E, U+2066-2069), everywhere:
  they reorder what a reader sees (the "Trojan Source" trick);
- invisible characters: names refuse every Unicode *default-ignorable* code
  point (zero-width space and joiners, soft hyphen, BOM, variation selectors,
  Hangul fillers, tag characters...) and line separators; free text keeps the
  joiners, the soft hyphen and the variation selectors, which emoji and
  copy-pasted prose carry;
- more than four combining marks on one character ("Zalgo" text);
- overlong values: the ``max_length`` of each type, checked before anything else.

Names and labels (``BusinessName``, ``PersonName``, ``ShortText``, ``LeadId``,
``SessionId``) must also read as what they claim, after NFKC normalisation:

- at least one letter or digit: a name of spaces, dots or blank-looking
  characters (U+2800) names no one;
- no word mixing Latin with Cyrillic or Greek letters ("Boulangerie" spelt
  with a Cyrillic O, U+041E), and no Cyrillic or Greek word made only of
  letters that look Latin ("Papa" in Cyrillic): the look-alike spellings of
  UTS #39's confusables;
- no leading ``=``, ``+``, ``-`` or ``@`` (full-width forms too): a spreadsheet
  opening a CSV export would run the cell as a formula (``=cmd|' /C calc'!A0``).
  A name is refused; free text, where "- très bien" is an honest comment, is
  kept with a leading apostrophe, the spreadsheets' own "this is text" mark
  (``formula_safe``), and stays within its length. A CSV the hub writes
  passes its cells through ``formula_safe`` too (``safe_cell`` for text that
  comes straight from an input, such as a file's header).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
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
    "Reason",
    "RejectReason",
    "ResellerId",
    "SessionId",
    "ShortText",
    "Siren",
    "Siret",
    "WebhookUrl",
    "check_label",
    "formula_safe",
    "normalise_phone",
    "safe_cell",
    "unique",
]


def _shown(value: str, limit: int = 24) -> str:
    """``value`` quoted for an error message, cut short: a 1 MB "SIREN" is not echoed whole."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + "…"


# -- text ---------------------------------------------------------------------------------------

# NUL, C0, DEL, C1; and in free text the three line-layout controls it keeps.
_CONTROLS = frozenset([*range(0x00, 0x20), *range(0x7F, 0xA0)])
_FREE_CONTROLS = frozenset({0x09, 0x0A, 0x0D})
_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): drawn as nothing.
_IGNORABLE = frozenset([
    0x00AD, 0x034F, 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, *range(0x180B, 0x1810),
    *range(0x200B, 0x2010), *range(0x202A, 0x202F), *range(0x2060, 0x2070), 0x3164,
    *range(0xFE00, 0xFE10), 0xFEFF, 0xFFA0, *range(0xFFF0, 0xFFF9), *range(0x1BCA0, 0x1BCA4),
    *range(0x1D173, 0x1D17B), *range(0xE0000, 0xE1000),
])
# What free text keeps of them: joiners (emoji, Persian), soft hyphen, variation selectors.
_FREE_IGNORABLE = frozenset({0x00AD, 0x200C, 0x200D, *range(0xFE00, 0xFE10)})
# Code points refused outright, by names and by free text; and the categories names refuse
# whole (format characters, line and paragraph separators; surrogates everywhere).
_NAME_REFUSED = _CONTROLS | _BIDI | _IGNORABLE
_FREE_REFUSED = (_CONTROLS - _FREE_CONTROLS) | _BIDI | (_IGNORABLE - _FREE_IGNORABLE)
_NAME_CATEGORIES = ("Cs", "Cf", "Zl", "Zp")
_BLANK_LOOKING = frozenset({0x2800})  # BRAILLE PATTERN BLANK: a symbol, drawn as a space
_MAX_MARKS = 4  # combining marks on one character: Vietnamese needs 2
_FORMULA_STARTS = frozenset("=+-@")
# Cyrillic and Greek letters a reader takes for Latin ones (UTS #39 confusables, the clear ones).
_LATIN_LOOKALIKES = frozenset(
    "асеорхуіјѕԁԛԝһӏАВЕКМНОРСТХІЈЅҮԚԜ"
    "ΑΒΕΖΗΙΚΜΝΟΡΤΥΧονιρ"  # noqa: RUF001 - Greek on purpose
)
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_ASCII_FREE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
_WORD = re.compile(r"[^\W\d_]+")
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
# The default-ignorable code points str.isprintable() lets through (marks and fillers).
_PRINTABLE_INVISIBLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0"
    "\U000e0100-\U000e01ef]")
_NON_ASCII_RUN = re.compile(f"[^\\x00-\\x7f]{{{_MAX_MARKS + 1},}}")
# The Greek and Cyrillic blocks (with Greek Extended, the Cyrillic supplement and extensions).
_CYRILLIC_OR_GREEK = re.compile(
    "[\u0370-\u03ff\u0400-\u052f\u1c80-\u1c8f\u1f00-\u1fff\u2de0-\u2dff\ua640-\ua69f]")


def _char(code: int) -> str:
    """A character named for an error message: ``U+0000 NULL``."""
    name = unicodedata.name(chr(code), "") or {0: "NULL", 0x7F: "DELETE"}.get(code, "control")
    return f"U+{code:04X} {name}".rstrip()


def _forbidden(value: str, *, free: bool) -> str | None:
    """Why a character of ``value`` is refused (its position and name), or None.

    Most text needs no Python loop: ``str.isprintable`` (in C) is False for
    every control, format, surrogate, unassigned and separator character but
    the space, so a printable text can only fail by an invisible letter or
    mark, or by a stack of marks (five non-ASCII characters in a row at least).
    """
    if (value.isprintable() and _PRINTABLE_INVISIBLE.search(value) is None
            and _NON_ASCII_RUN.search(value) is None):
        return None
    return _first_refused(value, free=free)


def _first_refused(value: str, *, free: bool) -> str | None:
    """``_forbidden`` the long way: each character that is not printable ASCII looked at."""
    refused, categories = (_FREE_REFUSED, ("Cs",)) if free else (_NAME_REFUSED, _NAME_CATEGORIES)
    marks, last_mark = 0, -2
    for match in _NOT_PRINTABLE_ASCII.finditer(value):
        char, at = match.group(), match.start()
        code = ord(char)
        category = unicodedata.category(char)
        if code in refused or category in categories or _noncharacter(code):
            return f"character {at + 1} ({_char(code)}) {_why(code, category)}"
        if category in ("Mn", "Me"):
            marks = marks + 1 if at == last_mark + 1 else 1
            last_mark = at
            if marks > _MAX_MARKS:
                return (f"character {at + 1} ({_char(code)}) stacks more than {_MAX_MARKS} "
                        "combining marks on one character")
    return None


def _noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def _why(code: int, category: str) -> str:
    """What is wrong with a refused character, in the order the module's docstring lists."""
    reasons = ((code in _CONTROLS, "is a control character"),
               (code in _BIDI, "reorders text as it is displayed"),
               (category == "Cs", "is a lone surrogate, not a character"),
               (_noncharacter(code), "is a Unicode noncharacter"))
    return next((why for hit, why in reasons if hit), "is invisible")


@functools.lru_cache(maxsize=4096)
def _script(letter: str) -> str:
    """Latin, Cyrillic, Greek or other: the first word of the letter's Unicode name."""
    if letter.isascii():
        return "LATIN"
    first = unicodedata.name(letter, "").split(" ", 1)[0]
    return first if first in ("LATIN", "CYRILLIC", "GREEK") else "OTHER"


def _confusable(text: str) -> str | None:
    """Why a word of ``text`` (NFKC) is a look-alike spelling, or None."""
    if _CYRILLIC_OR_GREEK.search(text) is None:  # nearly every name: no word to look at
        return None
    for number, word in enumerate(_WORD.findall(text), start=1):
        scripts = {_script(letter) for letter in word}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            other = "Cyrillic" if "CYRILLIC" in scripts else "Greek"
            return f"word {number} mixes Latin and {other} letters (a look-alike spelling)"
        if scripts <= {"CYRILLIC", "GREEK"} and all(ch in _LATIN_LOOKALIKES for ch in word):
            return (f"word {number} is written in Cyrillic or Greek letters that all look "
                    "Latin (a look-alike spelling)")
    return None


def _formula_start(value: str) -> str | None:
    """The formula sign ``value`` starts with (full-width forms read as theirs), or None."""
    first = unicodedata.normalize("NFKC", value[:1])[:1] if value else ""
    return first if first in _FORMULA_STARTS else None


def _refuse_unprintable(value: str, *, free: bool) -> None:
    """ValueError naming the first refused character of ``value`` (see the module's docstring)."""
    if value.isascii():  # the common case, in C: no Unicode tables to consult
        bad = (_ASCII_FREE_CONTROL if free else _ASCII_CONTROL).search(value)
        if bad is not None:
            raise ValueError(f"character {bad.start() + 1} ({_char(ord(bad.group()))}) "
                             "is a control character")
    elif (why := _forbidden(value, free=free)) is not None:
        raise ValueError(why)


def check_label(value: str) -> str:
    """``value`` if it is a fit name or label (see the module's docstring), else ValueError.

    What ``BusinessName``, ``PersonName``, ``ShortText``, ``LeadId`` and ``SessionId``
    check after their lengths; public for strategies and checks that need the rule alone.
    """
    _refuse_unprintable(value, free=False)
    if value.isascii():
        visible = _ASCII_ALNUM.search(value) is not None
        normalised = value
    else:
        normalised = unicodedata.normalize("NFKC", value)
        visible = any(ch.isalnum() for ch in normalised if ord(ch) not in _BLANK_LOOKING)
        if visible and (why := _confusable(normalised)) is not None:
            raise ValueError(why)
    if not visible:
        raise ValueError("holds no letter or digit")
    if (sign := _formula_start(normalised)) is not None:
        raise ValueError(f"starts with {sign!r}, which a spreadsheet runs as a formula; "
                         "start with a letter or a digit")
    return value


def formula_safe(text: str) -> str:
    """``text`` as a spreadsheet shows it and never runs it: a leading apostrophe before
    ``= + - @`` (and the TAB or CR some spreadsheets also read as one), as OWASP's "CSV
    injection" advice has it. Any CSV the hub writes passes its cells through this."""
    if text[:1] in ("\t", "\r") or _formula_start(text) is not None:
        return "'" + text
    return text


def safe_cell(text: str, limit: int = 100) -> str:
    """``text`` from an input (a header, a JSON key) fit for a CSV cell a person opens:
    what does not print escaped (``\\x00``, ``\\u202e``), cut at ``limit``, formula-safe."""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text[:limit])
    return formula_safe(shown + ("…" if len(text) > limit else ""))


def _free_text(limit: int) -> Callable[[str], str]:
    """The check of free text of at most ``limit`` characters (see the module's docstring)."""

    def check(value: str) -> str:
        _refuse_unprintable(value, free=True)
        safe = formula_safe(value)
        # Still within the limit, so that the stored text re-validates as itself.
        return safe if len(safe) <= limit else safe[:limit]

    return check


def _digits(value: str, count: int) -> bool:
    return len(value) == count and value.isascii() and value.isdigit()


def _check_siren(value: str) -> str:
    if not _digits(value, 9):
        raise ValueError(f"SIREN {_shown(value)} must be exactly 9 digits")
    if not is_valid_siren(value):
        raise ValueError(f"SIREN {value} fails its Luhn check")
    return value


def _check_siret(value: str) -> str:
    if not _digits(value, 14):
        raise ValueError(f"SIRET {_shown(value)} must be exactly 14 digits (SIREN + NIC)")
    if not is_valid_siret(value):
        raise ValueError(f"SIRET {value} fails its check (Luhn; digit sum for La Poste)")
    return value


def _check_departement(value: str) -> str:
    code = value.upper()  # "2a" is a common spelling of "2A"
    if code not in DEPARTEMENTS:
        raise ValueError(f"{_shown(value)} is not a département code (01-95, 2A, 2B, 971-976)")
    return code


def _check_naf(value: str) -> str:
    code = value.upper()
    if not is_valid_naf(code):
        raise ValueError(f"NAF code {_shown(value)} must read NN.NNL, e.g. 47.11D")
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
        raise ValueError(f"unknown module {_shown(value)}")
    return value


def _check_category(value: str) -> str:
    if value not in CATEGORIES:
        raise ValueError(f"unknown offer category {_shown(value)}; known: {', '.join(CATEGORIES)}")
    return value


# Loopback only: a test runs its webhook receiver there; anything else travels in clear.
_PLAIN_HTTP_HOSTS = frozenset({"127.0.0.1", "localhost"})
_URL_HELP = "a webhook URL is https://host/... (http:// only to 127.0.0.1 or localhost, for tests)"


def _check_webhook_url(value: str) -> str:
    _refuse_unprintable(value, free=False)  # a NUL or a bidi control hides where it points
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
# Lengths first (in pydantic's core, before any Python runs), then the text checks.
BusinessName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_label)]
PersonName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_label)]
ResellerId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{1,63}$")]
LeadId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_label)]
SessionId = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_label)]
ShortText = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(check_label)]
"""A label: a source, an advisor, a delegation; a name's rules, up to 64 characters."""
Comment = Annotated[str, Field(max_length=2000), AfterValidator(_free_text(2000)),
                    AfterValidator(_none_if_blank)]
"""Free text up to 2000 characters; blank reads as no comment (None)."""
Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_free_text(500))]
"""Free text up to 500 characters, not blank: why consent was withdrawn."""

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
