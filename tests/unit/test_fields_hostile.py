"""Text fields are text: hostile values are refused naming the field, or neutralised.

The rules are schemas/fields.py's (its docstring lists them); here each one is
tried on every text type and every event field that carries one, then the
models are fuzzed with *almost valid* events: a valid example of
schemas/examples.py with one field mutated (a hostile character slipped in, a
look-alike spelling, a formula, an overlong or mistyped value, a field
dropped or added). Every input must be either accepted clean or refused with
a ``ValidationError`` whose every error names a field, never another
exception. tests/contract/test_hostile_events.py posts the same mutations to
the API, tests/unit/test_file_drop_hostile.py drops mutated files.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import unicodedata
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, TypeAdapter, ValidationError

from connectors.api import problems
from schemas.codec import Codec
from schemas.fields import (
    BusinessName,
    Comment,
    LeadId,
    PersonName,
    Reason,
    SessionId,
    ShortText,
    WebhookUrl,
    check_label,
    formula_safe,
    safe_cell,
)
from schemas.models import EXAMPLES, MODELS_BY_TYPE, parse_event

#: The clock of the future check: the examples are of 2009, the fuzzed dates before 2100.
NOW = datetime(2100, 1, 1, tzinfo=UTC)
#: Deterministic in CI (the same inputs every run), no example database on disk.
FUZZ = settings(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CODEC = Codec.default()

#: The name-like fields of each event type (the label rules) and its free-text fields.
LABELS = {
    "business_enrolled": ("source", "name", "advisor_id", "delegation", "contact_name"),
    "module_completed": ("source", "trainer_org"),
    "training_session_attended": ("source", "session_id", "trainer_org"),
    "training_feedback": ("source", "trainer_org", "delegation"),
    "offer_requested": ("source",),
    "consent_withdrawn": ("source",),
    "erasure_requested": ("source", "requested_by"),
    "reseller_profile": ("source", "name"),
    "lead_answered": ("source", "lead_id"),
}
FREE_TEXT = {"training_feedback": ("comment",), "consent_withdrawn": ("reason",)}
_FREE_FIELDS = frozenset(name for names in FREE_TEXT.values() for name in names)

# Characters no text field takes, each a way to hide or disguise text.
REFUSED_EVERYWHERE = [
    "\x00", "\x01", "\x07", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f",  # C0, DEL
    "\x80", "\x85", "\x9b", "\x9f",  # C1 (NEL, CSI)
    "\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",  # bidi
    "\u2066", "\u2067", "\u2068", "\u2069",
    "\u200b", "\u2060", "\ufeff", "\u180e", "\u3164", "\u115f", "\uffa0", "\u034f",  # invisible
    "\U000e0001", "\U000e0041",  # tag characters ("ASCII smuggling")
    "\ufdd0", "\ufffe", "\uffff", "\U0010ffff",  # noncharacters
]
# Characters free text keeps (layout, emoji sequences, soft hyphens) and names refuse.
FREE_ONLY = ["\t", "\n", "\r", "\u200d", "\u200c", "\u00ad", "\ufe0f", "\u2028", "\u2029"]
LONE_SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
FORMULAS = ["=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil.example/\",\"x\")",
            "+1+cmd|' /C calc'!A0", "-2+3+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
            "\uff1d1+1", "\uff0bx", "=1+1"]
LOOKALIKES = [
    "B\u043eulangerie",  # a Cyrillic o in a Latin word
    "\u0412oulangerie Martin",  # a Cyrillic capital VE for B
    "Boulangeri\u0435",  # Cyrillic ie
    "\u0420\u0430\u0440\u0430",  # "Papa", all Cyrillic look-alikes
    "\u0391\u0392\u0395",  # "ABE" in Greek capitals
    "Lab\u00b5",  # the micro sign reads as a Greek mu after NFKC
    "\U0001d401oulangerie",  # a mathematical bold B is a Latin B after NFKC: not a mix...
]
INVISIBLE_NAMES = ["\u200b\u200b", "\u3164", "\u2800\u2800", "...", "- -", "\u00a0.", "'"]
#: Names that are fine, and must stay so: accents, apostrophes, the narrow no-break space
#: of French typography, digits first, brackets, other scripts written in one script.
GOOD_NAMES = [
    "Boulangerie Martin", "Crêperie l'Été", "Café\u202f: Le Zinc", "3 Suisses", "(Le) Bistrot",
    "Œuf & Cie", "Ångström SARL", "Nguyễn Văn", "Ελληνικά", "Москва", "東京寿司",
    "M. Dupont-Durand", "L\u2019Atelier", "Ça va", "«\u00a0Chez Paul\u00a0»",
    "\U0001d401oulangerie", "Z\u0301\u0302",
]

# As the models configure it: the input is kept out of the error's text.
_HIDDEN = ConfigDict(hide_input_in_errors=True)
TEXT_TYPES: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(kind, config=_HIDDEN) for name, kind in [
        ("BusinessName", BusinessName), ("PersonName", PersonName), ("ShortText", ShortText),
        ("LeadId", LeadId), ("SessionId", SessionId), ("Comment", Comment), ("Reason", Reason),
        ("WebhookUrl", WebhookUrl)]
}
LABEL_TYPES = ("BusinessName", "PersonName", "ShortText", "LeadId", "SessionId")
FREE_TYPES = ("Comment", "Reason")

#: What each hostile test tried, for the campaign's figures (printed at the end with -s).
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    print(f"\n{__name__}: {dict(sorted(TALLY.items()))}")


# -- what an accepted value may hold ----------------------------------------------------------

def unprintable(text: str, *, free: bool) -> list[str]:
    """The characters of an accepted ``text`` that no rule lets through (empty: clean)."""
    allowed = {"\t", "\n", "\r"} if free else set()
    return [f"U+{ord(ch):04X}" for ch in text
            if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed)
            or 0x202A <= ord(ch) <= 0x202E or 0x2066 <= ord(ch) <= 0x2069]


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside a dumped model, with the field it sits in."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from strings(item, path or str(key))
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item, path)


def assert_clean(event: Any) -> None:
    """An accepted event: no control, bidi or surrogate character, no formula-led label, and
    it encodes (what the API accepts the publisher can write)."""
    for field, text in strings(event.model_dump(mode="json")):
        assert not unprintable(text, free=field in _FREE_FIELDS), (field, ascii(text))
    for field in LABELS[event.type]:
        value = getattr(event, field)
        if value is not None:
            assert formula_safe(value) == value, (field, ascii(value))
    CODEC.encode(event.RECORD, event.to_avro())


def assert_names_a_field(exc: ValidationError, extra: str | None = None) -> None:
    """Every error of a refused event names a field of its model (or the unknown one sent);
    a missing or wrong ``type`` is reported at the root, as the API reports it as ``type``."""
    for error in exc.errors(include_input=False):
        loc = error["loc"]
        if not loc:
            assert error["type"].startswith("union_tag"), error
            continue
        assert loc[0] in MODELS_BY_TYPE, error
        if len(loc) == 1:  # a key that is no string (a lone surrogate) cannot be a loc
            assert error["type"] == "string_unicode", error
            assert extra is not None
            assert any(0xD800 <= ord(ch) <= 0xDFFF for ch in extra), error
            continue
        assert loc[1] in MODELS_BY_TYPE[str(loc[0])].model_fields or loc[1] == extra, error
        assert error["msg"], error


# -- each rule, each type ---------------------------------------------------------------------

@pytest.mark.parametrize("type_name", [*LABEL_TYPES, *FREE_TYPES])
@pytest.mark.parametrize("char", REFUSED_EVERYWHERE, ids=ascii)
def test_control_bidi_invisible_and_noncharacters_are_refused_by_every_text_type(
        type_name: str, char: str) -> None:
    TALLY["text values tried"] += 1
    with pytest.raises(ValidationError) as caught:
        TEXT_TYPES[type_name].validate_python(f"Bou{char}langerie")
    TALLY["text values rejected"] += 1
    message = caught.value.errors()[0]["msg"]
    # The message says which character and why, without repeating the value.
    assert f"character 4 (U+{ord(char):04X}" in message
    assert "Bou" not in message


@pytest.mark.parametrize("char", FREE_ONLY, ids=ascii)
def test_free_text_keeps_line_breaks_tabs_and_joiners_which_names_refuse(char: str) -> None:
    for type_name in FREE_TYPES:
        assert TEXT_TYPES[type_name].validate_python(f"Très{char}bien") == f"Très{char}bien"
    for type_name in LABEL_TYPES:
        with pytest.raises(ValidationError, match=r"control character|invisible"):
            TEXT_TYPES[type_name].validate_python(f"Très{char}bien")
    TALLY["text values tried"] += len(FREE_TYPES) + len(LABEL_TYPES)
    TALLY["text values rejected"] += len(LABEL_TYPES)


@pytest.mark.parametrize("type_name", TEXT_TYPES)
@pytest.mark.parametrize("char", LONE_SURROGATES, ids=ascii)
def test_lone_surrogates_are_not_strings(type_name: str, char: str) -> None:
    with pytest.raises(ValidationError) as caught:
        TEXT_TYPES[type_name].validate_python(f"ab{char}cd")
    assert caught.value.errors()[0]["type"] == "string_unicode"


@pytest.mark.parametrize("name", INVISIBLE_NAMES, ids=ascii)
def test_a_name_without_a_letter_or_digit_names_no_one(name: str) -> None:
    for type_name in LABEL_TYPES:
        with pytest.raises(ValidationError, match=r"no letter or digit|invisible"):
            TEXT_TYPES[type_name].validate_python(name)


@pytest.mark.parametrize("name", LOOKALIKES[:-1], ids=ascii)
def test_look_alike_spellings_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="look-alike") as caught:
        TEXT_TYPES["BusinessName"].validate_python(name)
    assert name not in str(caught.value)


@pytest.mark.parametrize("name", GOOD_NAMES, ids=ascii)
def test_real_names_in_any_one_script_are_kept_as_given(name: str) -> None:
    for type_name in ("BusinessName", "PersonName"):
        assert TEXT_TYPES[type_name].validate_python(name) == name


def test_stacked_combining_marks_are_refused() -> None:
    assert check_label("Nguye\u0302\u0303n") == "Nguye\u0302\u0303n"  # Vietnamese: two marks
    with pytest.raises(ValueError, match="more than 4 combining marks"):
        check_label("Z" + "\u0301\u0302\u0303\u0304\u0305" + "algo")
    with pytest.raises(ValidationError, match="more than 4 combining marks"):
        TEXT_TYPES["Comment"].validate_python("Z" + "\u0301" * 30)


@pytest.mark.parametrize("formula", FORMULAS, ids=ascii)
def test_a_formula_is_refused_in_a_name_and_neutralised_in_free_text(formula: str) -> None:
    for type_name in LABEL_TYPES:
        with pytest.raises(ValidationError, match="runs as a formula"):
            TEXT_TYPES[type_name].validate_python(formula[:64])
    for type_name in FREE_TYPES:
        kept = TEXT_TYPES[type_name].validate_python(formula)
        assert kept == "'" + formula
        # Stored once, it re-validates as itself (a replay, a redrive: no second apostrophe).
        assert TEXT_TYPES[type_name].validate_python(kept) == kept


def test_neutralised_free_text_stays_within_its_length() -> None:
    comment = "-" * 2000
    kept = TEXT_TYPES["Comment"].validate_python(comment)
    assert len(kept) == 2000
    assert kept.startswith("'-")
    assert TEXT_TYPES["Comment"].validate_python(kept) == kept
    assert TEXT_TYPES["Comment"].validate_python("") is None  # blank is still no comment


def test_formula_safe_and_safe_cell() -> None:
    assert formula_safe("Boulangerie") == "Boulangerie"
    assert formula_safe("=1+1") == "'=1+1"
    assert formula_safe("\tx") == "'\tx"
    assert formula_safe("\uff1d1") == "'\uff1d1"
    assert formula_safe("'=1") == "'=1"
    assert safe_cell("=cmd\x00\u202e") == "'=cmd\\x00\\u202e"
    assert safe_cell("\ud800") == "\\ud800"
    assert safe_cell("x" * 500, limit=10) == "x" * 10 + "…"


@pytest.mark.parametrize(("type_name", "limit"), [
    ("BusinessName", 200), ("PersonName", 200), ("ShortText", 64), ("LeadId", 128),
    ("SessionId", 128), ("Comment", 2000), ("Reason", 500), ("WebhookUrl", 2000)])
def test_overlong_values_are_refused_before_any_character_is_looked_at(
        type_name: str, limit: int) -> None:
    adapter = TEXT_TYPES[type_name]
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python("https://a.fr/" + "\x00" * 1_000_000)
    assert caught.value.errors()[0]["type"] == "string_too_long"
    assert f"at most {limit} characters" in caught.value.errors()[0]["msg"]


def test_a_webhook_url_with_a_control_or_bidi_character_is_refused() -> None:
    for char in ("\x00", "\x7f", "\u202e", "\u200b"):
        with pytest.raises(ValidationError, match=f"U\\+{ord(char):04X}"):
            TEXT_TYPES["WebhookUrl"].validate_python(f"https://crm.example.fr/{char}hook")


def test_codes_quoted_in_messages_are_cut_short() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event({**EXAMPLES["business_enrolled"], "siren": "7" * 100_000}, now=NOW)
    assert len(str(caught.value)) < 1000


# -- every text field of every event ------------------------------------------------------------

_TEXT_FIELDS = [(kind, name) for kind, names in LABELS.items() for name in names] + \
    [(kind, name) for kind, names in FREE_TEXT.items() for name in names]


@pytest.mark.parametrize(("kind", "name"), _TEXT_FIELDS)
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x85", "\u202e", "\U000e0041"], ids=ascii)
def test_every_text_field_refuses_with_its_own_name(kind: str, name: str, char: str) -> None:
    event = {**EXAMPLES[kind], name: f"ab{char}cd"}
    TALLY["events tried"] += 1
    with pytest.raises(ValidationError) as caught:
        parse_event(event, now=NOW)
    TALLY["events rejected"] += 1
    (error,) = caught.value.errors()
    assert error["loc"] == (kind, name)
    assert f"U+{ord(char):04X}" in error["msg"]
    assert "abcd" not in str(caught.value)
    assert "ab" + char not in str(caught.value)


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, n in _TEXT_FIELDS if n != "source"])
def test_a_name_or_comment_is_never_echoed_in_the_error(kind: str, name: str) -> None:
    person = "Jeanne\u202eMartin"  # a person's name: personal data, and errors get logged
    with pytest.raises(ValidationError) as caught:
        parse_event({**EXAMPLES[kind], name: person}, now=NOW)
    assert "Jeanne" not in str(caught.value)
    assert "Jeanne" not in json.dumps(caught.value.errors(include_input=False), default=str)


def test_an_occurred_at_before_the_first_utc_instant_is_a_field_error() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_event({**EXAMPLES["offer_requested"], "occurred_at": "0001-01-01T00:30:00+01:00"},
                    now=NOW)
    assert caught.value.errors()[0]["loc"] == ("offer_requested", "occurred_at")


# -- almost valid events ------------------------------------------------------------------------

#: A field no model has: the unknown key an almost valid event may carry.
EXTRA = "\x00extra"
_HOSTILE_KEYS = st.sampled_from(["extra", "=cmd|' /C calc'!A0", "\x00", "\u202ename", "NAME",
                                 "name ", "__class__", "\ud800", "type\x00", "x" * 10_000])
_HOSTILE_CHARS = st.sampled_from([*REFUSED_EVERYWHERE, *FREE_ONLY, *LONE_SURROGATES,
                                  "\u0301", "\U0001f600", "\u00a0", "\u202f", "\u0430"])
_HOSTILE_VALUES = st.sampled_from([
    "", " ", "\t", "\n", *INVISIBLE_NAMES, *FORMULAS, *LOOKALIKES, "\x00", "\ud800x",
    "Z" + "\u0301" * 12, "\u202eevil", "null", "None", "0", "-1", "1e309", "NaN", "true",
    "2009-03-12", "732829320", "78", "https://x.fr/\x00",
    *("a" * n for n in (63, 64, 65, 127, 128, 129, 199, 200, 201, 499, 500, 501, 1999, 2000,
                        2001, 100_000)),
])
# Values of the wrong type or shape (a recursive strategy would cost more than the check).
_ANY: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([None, True, False, 0, -1, 2**63, -(2**63) - 1, 10**30, 1.5, math.nan,
                     math.inf, -math.inf, [], {}, [None], {"a": None}, [[[[[]]]]], {"$gt": ""},
                     ["78"], [{"start": "2026-01-01"}], {"start": "x", "end": "y"}, "x"]),
    st.integers(), st.floats(), st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3),
)
_INSTANTS = st.datetimes(
    # From year 2: the year-1 overflow has its own test above.
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),  # noqa: DTZ001
    timezones=st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))),
).map(datetime.isoformat)


_LOOKALIKE_OF = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441",
                 "B": "\u0412", "M": "\u041c", "A": "\u0391", "i": "\u0456"}


def _lookalike(original: str, start: int) -> str:
    """``original`` with its Latin letters from ``start`` on swapped for look-alikes."""
    return "".join(_LOOKALIKE_OF.get(ch, ch) if i >= start else ch
                   for i, ch in enumerate(original))


@functools.cache  # one strategy per value of the examples: building one costs more than a draw
def _mutated_text(original: str) -> st.SearchStrategy[str]:
    """``original`` with hostile characters slipped in, a formula sign first, look-alike
    letters, repeated past its length or padded; or a hostile or random text instead."""
    return st.one_of(
        st.builds(lambda at, chars: original[:at] + "".join(chars) + original[at:],
                  st.integers(0, len(original)), st.lists(_HOSTILE_CHARS, min_size=1, max_size=3)),
        _HOSTILE_VALUES,
        st.text(st.characters(exclude_categories=()), max_size=80),
        st.sampled_from("=+-@\uff1d\t\r").map(lambda sign: sign + original),
        st.integers(0, max(len(original) - 1, 0)).map(lambda at: _lookalike(original, at)),
        st.integers(2, 60).map(lambda times: original * times),
        st.sampled_from(["", " ", "\u00a0", "\u3000"]).map(lambda pad: pad * 3 + original + "   "),
    )


@st.composite
def _mutated(draw: st.DrawFn, original: Any, name: str) -> Any:
    if name == "occurred_at" and draw(st.booleans()):
        return draw(_INSTANTS)
    if isinstance(original, str) and draw(st.integers(0, 3)):
        return draw(_mutated_text(original))
    if isinstance(original, list) and original and draw(st.booleans()):
        items = copy.deepcopy(original)
        at = draw(st.integers(0, len(items) - 1))
        items[at] = draw(_mutated(items[at], name))
        return items if draw(st.integers(0, 4)) else items * 400
    if isinstance(original, dict) and original and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(original)))
        return {**original, key: draw(_mutated(original[key], name))}
    return draw(st.one_of(_ANY, _HOSTILE_VALUES))


@st.composite
def almost_valid(draw: st.DrawFn, kind: str) -> tuple[dict[str, Any], str]:
    """A valid example of ``kind`` with one field mutated, dropped or added; and that field."""
    event = copy.deepcopy(dict(EXAMPLES[kind]))
    names = sorted(set(MODELS_BY_TYPE[kind].model_fields) | set(event))
    name = draw(st.sampled_from([*names, EXTRA]))
    if name == EXTRA:
        name = draw(_HOSTILE_KEYS)
        event[name] = draw(st.one_of(_ANY, _HOSTILE_VALUES))
    elif name in event and not draw(st.integers(0, 7)):
        del event[name]
    else:
        event[name] = draw(_mutated(event.get(name, "Boulangerie"), name))
    return event, name


def judge(event: dict[str, Any], name: str) -> bool:
    """Validate one almost valid event as the API does: True accepted (and clean), False
    refused (naming fields); any other exception fails the test that called it."""
    try:
        accepted = parse_event(event, now=NOW)
    except ValidationError as exc:
        assert_names_a_field(exc, extra=name)
        return False
    assert_clean(accepted)
    return True


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
@settings(FUZZ, max_examples=700)
@given(data=st.data())
def test_an_almost_valid_event_is_accepted_clean_or_refused_naming_a_field(
        kind: str, data: st.DataObject) -> None:
    event, name = data.draw(almost_valid(kind))
    accepted = judge(event, name)
    TALLY["events tried"] += 1
    TALLY["events accepted" if accepted else "events rejected"] += 1


@pytest.mark.parametrize("type_name", TEXT_TYPES)
@settings(FUZZ, max_examples=200)
@given(text=st.one_of(st.text(st.characters(exclude_categories=()), max_size=120),
                      _HOSTILE_VALUES, st.builds(lambda a, b: a + b, _HOSTILE_CHARS,
                                                 st.text(max_size=10))))
def test_any_text_is_accepted_printable_or_refused(type_name: str, text: str) -> None:
    TALLY["text values tried"] += 1
    try:
        kept = TEXT_TYPES[type_name].validate_python(text)
    except ValidationError as exc:
        refused = exc.errors()
    else:
        refused = []
    if refused:
        assert refused[0]["msg"]
        TALLY["text values rejected"] += 1
        return
    TALLY["text values accepted"] += 1
    if kept is None:
        assert type_name == "Comment"
        assert text == ""
        return
    assert not unprintable(kept, free=type_name in FREE_TYPES), ascii(kept)
    if type_name in LABEL_TYPES:
        assert formula_safe(kept) == kept
        assert any(ch.isalnum() for ch in unicodedata.normalize("NFKC", kept))
    if type_name in FREE_TYPES:
        assert formula_safe(kept) == kept


def test_the_examples_themselves_stay_valid_and_clean() -> None:
    # The mutations start from them: a refused example would make every mutation a refusal.
    for example in EXAMPLES.values():
        assert judge(copy.deepcopy(dict(example)), "")


def test_a_refusal_never_echoes_an_unknown_type_nor_a_raw_key() -> None:
    bad_key = "=HYPERLINK(\x00\u202e" + "x" * 500
    try:
        parse_event({**EXAMPLES["offer_requested"], bad_key: 1}, now=NOW)
    except ValidationError as exc:
        fields = problems.field_errors(exc.errors(include_input=False))
    assert all(len(f["field"]) <= 65 and f["field"].isprintable() for f in fields)
    try:
        parse_event({**EXAMPLES["offer_requested"], "type": "drop_table_\u202e"}, now=NOW)
    except ValidationError as exc:
        fields = problems.field_errors(exc.errors(include_input=False))
    assert fields[0]["field"] == "type"
    assert "drop_table" not in fields[0]["message"]
