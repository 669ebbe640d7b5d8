"""One row of a dropped file to an event, or to the reasons it is not one (pure).

CSV cells are text: each is turned into what the model's JSON schema asks
for (a boolean from "oui"/"x", an integer, a list, a date read the French way
in Europe/Paris), then the row goes through ``EVENT_ADAPTER``, the validation
the HTTP API uses, so the file drop can never accept what the API refuses. A
JSON Lines record is an API body as it is. Errors name the field, never the
value of a contact field.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import PydanticUserError, ValidationError

from connectors.file_drop.headers import normalise
from schemas.fields import safe_cell
from schemas.models import EVENT_ADAPTER, MODELS_BY_RECORD, NOW, EventModel

#: Where a date without an offset was written: the programme is French.
PARIS = ZoneInfo("Europe/Paris")

# Filled in by the reader, not by columns: never the ground for guessing a type.
_ENVELOPE = frozenset({"event_id", "occurred_at", "source", "type"})
_TRUE = frozenset({"oui", "o", "1", "true", "vrai", "x", "yes", "y"})
_FALSE = frozenset({"non", "n", "0", "false", "faux", "no"})
_FRENCH_DATE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2})[:hH](\d{2})(?::(\d{2}))?)?")
# 18 digits at most: a longer "number" is no count of anything, and int() of thousands of
# digits raises; the model refuses it as text instead.
_INTEGER = re.compile(r"[+-]?\d{1,18}(?:[.,]0+)?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_OUT_OF_RANGE = "a date out of the range the hub holds (before year 1 in UTC)"
_REASON_LIMIT = 500  # the longest message the models write (the known values listed) fits
# French type names a spreadsheet may carry instead of the API's tags.
_TYPE_ALIASES = {
    "inscription": "business_enrolled",
    "adhesion": "business_enrolled",
    "module": "module_completed",
    "modulevalide": "module_completed",
    "presence": "training_session_attended",
    "avis": "training_feedback",
    "offre": "offer_requested",
    "demandedoffre": "offer_requested",
    "retraitduconsentement": "consent_withdrawn",
    "effacement": "erasure_requested",
}


@dataclass(frozen=True, slots=True)
class FieldError:
    """Why one field of one line is refused."""

    line: int
    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a row takes from the file when it does not say it itself."""

    source: str
    event_id: Callable[[int], str]
    """The event id of the row at a line (derived, so a re-read gives the same id)."""
    type: str | None = None
    """The type tag of rows without a Type cell (``--type``, or inferred from the headers)."""
    now: datetime | None = None
    """Replaces the clock of the future-timestamp check (tests)."""


Outcome = EventModel | list[FieldError]


@cache
def models_by_tag() -> dict[str, type[EventModel]]:
    """Every partner-event model by its ``type`` tag."""
    return {str(model.model_fields["type"].default): model
            for model in MODELS_BY_RECORD.values()}


@cache
def _tag_spellings() -> dict[str, str]:
    spellings = {normalise(alias): tag for alias, tag in _TYPE_ALIASES.items()}
    for tag, model in models_by_tag().items():
        spellings[normalise(tag)] = tag
        spellings[normalise(model.RECORD)] = tag
    return spellings


def type_tag(text: str) -> str | None:
    """The type tag a cell or option names ("business_enrolled", "BusinessEnrolled",
    "Inscription"), or None."""
    return _tag_spellings().get(normalise(text))


class TypeUnknown(ValueError):
    """A file's rows have no type and its headers do not tell one."""


def infer_type(fields: Iterable[str]) -> str:
    """The type of the rows of a file whose columns feed ``fields``.

    Only a type's distinctive required fields count: a field that most types
    require (the SIREN) says nothing about which one a file holds, so a list of
    SIRENs is never taken for, say, consent withdrawals. The model whose
    distinctive fields the columns cover wins: first one covered entirely, then
    the one with the most covered. A tie is no answer.
    """
    present = frozenset(fields)
    required = {tag: {name for name, info in model.model_fields.items()
                      if info.is_required() and name not in _ENVELOPE}
                for tag, model in models_by_tag().items()}
    counts = Counter(name for names in required.values() for name in names)
    shared = {name for name, count in counts.items() if 2 * count > len(required)}
    ranked: list[tuple[tuple[bool, int], str]] = []
    for tag, names in required.items():
        distinctive = names - shared
        found = len(distinctive & present)
        if found:
            ranked.append(((found == len(distinctive), found), tag))
    ranked.sort(reverse=True)
    if not ranked:
        raise TypeUnknown("the columns name no event type's own fields")
    if len(ranked) > 1 and ranked[0][0] == ranked[1][0]:
        raise TypeUnknown(f"the columns fit {ranked[0][1]} and {ranked[1][1]} alike")
    return ranked[0][1]


def parse_date(text: str, tz: ZoneInfo = PARIS) -> datetime:
    """A date or time as partners write it: ISO 8601, or "dd/mm/yyyy [hh:mm[:ss]]".

    Without an offset it is a time in ``tz`` (Paris); a date alone is its midnight.
    """
    text = text.strip()
    match = _FRENCH_DATE.fullmatch(text)
    if match:
        day, month, year, hour, minute, second = (int(part or 0) for part in match.groups())
        parsed = datetime(year, month, day, hour, minute, second)  # noqa: DTZ001  # zone set below
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


@cache
def _kinds(model: type[EventModel]) -> dict[str, str]:
    """Per field, the JSON type a text cell must become: boolean, integer, array, date-time."""
    kinds: dict[str, str] = {}
    try:
        properties = model.model_json_schema().get("properties", {})
    except PydanticUserError:  # a field type without a JSON form: its cells stay text
        properties = {}
    for name, spec in properties.items():
        for branch in [spec, *spec.get("anyOf", [])]:
            kind = branch.get("format") if branch.get("format") == "date-time" \
                else branch.get("type")
            if kind in {"boolean", "integer", "array", "date-time"}:
                kinds[name] = kind
                break
    return kinds


def _convert(kind: str | None, field: str, text: str) -> Any:
    """A cell's text as the value its field takes; ValueError says why it cannot be."""
    if kind == "boolean":
        word = normalise(text)
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ValueError("expected oui/non, 1/0, vrai/faux, true/false or x")
    if kind == "integer":
        number = text.replace(" ", "").replace("\u00a0", "")
        # Anything else is left for the model to refuse in its own words.
        return int(re.split(r"[.,]", number)[0]) if _INTEGER.fullmatch(number) else text
    if kind == "array":
        separator = next((sep for sep in "|;," if sep in text), None)
        parts = text.split(separator) if separator else [text]
        return [part.strip() for part in parts if part.strip()]
    if kind == "date-time":
        try:
            return parse_date(text)
        except ValueError:
            raise ValueError("not a date: write dd/mm/yyyy, dd/mm/yyyy hh:mm "
                             "or ISO 8601") from None
    return _spreadsheet_artefacts(field, text)


def _spreadsheet_artefacts(field: str, text: str) -> str:
    # Spreadsheets print identifiers as numbers: "732 829 320", and "1" for "01".
    # Undoing that is reading the cell; whether the value is valid stays the model's call.
    if field in {"siren", "siret"}:
        return text.replace(" ", "").replace("\u00a0", "").replace(".", "")
    if field == "departement" and text.isdigit() and len(text) == 1:
        return f"0{text}"
    return text


def from_cells(line: int, cells: Mapping[str, str], defaults: Defaults) -> Outcome:
    """A CSV row, its cells by field name, as an event or its errors."""
    cells = {name: text.strip() for name, text in cells.items() if text.strip()}
    tag = type_tag(cells["type"]) if "type" in cells else defaults.type
    if tag is None:
        reason = f"unknown event type; known: {', '.join(models_by_tag())}" if "type" in cells \
            else "no event type: add a Type column or use --type"
        return [FieldError(line, "type", reason)]
    kinds = _kinds(models_by_tag()[tag])
    errors: list[FieldError] = []
    data: dict[str, Any] = {}
    for name, text in cells.items():
        try:
            data[name] = _convert(kinds.get(name), name, text)
        except ValueError as exc:
            errors.append(FieldError(line, name, str(exc)))
    data["type"] = tag
    return _validate(line, data, defaults, errors, cells)


def from_json(line: int, obj: Any, defaults: Defaults) -> Outcome:
    """A JSON Lines record, an API body, as an event or its errors."""
    if not isinstance(obj, dict):
        return [FieldError(line, "line", "not a JSON object")]
    # Python's json reads "\ud800" into a lone surrogate, which the API's parser refuses
    # and pydantic can only report without the key's name: refused here, by name.
    broken = [FieldError(line, safe_cell(key), "a field name that is not text (a lone "
                         "surrogate)") for key in obj if _SURROGATE.search(key)]
    if broken:
        return broken
    data = dict(obj)
    if "type" not in data and defaults.type is not None:
        data["type"] = defaults.type
    return _validate(line, data, defaults, [], obj)


def _validate(line: int, data: dict[str, Any], defaults: Defaults, errors: list[FieldError],
              given: Mapping[str, Any]) -> Outcome:
    data.setdefault("source", defaults.source)
    data.setdefault("event_id", defaults.event_id(line))
    context = {NOW: defaults.now} if defaults.now is not None else None
    try:
        event: EventModel = EVENT_ADAPTER.validate_python(data, context=context)
    except ValidationError as exc:
        reported = {error.field for error in errors}
        errors.extend(error for error in field_errors(line, exc, given)
                      if error.field not in reported)
        return errors
    except OverflowError:
        # schemas/envelope.py moves occurred_at to UTC, and an instant before year 1 there
        # (0001-01-01T00:30+01:00) overflows instead of failing validation: one row's
        # problem, not a crash of the file (and of every later read of it).
        return [*errors, FieldError(line, "occurred_at", _OUT_OF_RANGE)]
    return errors or event


def field_errors(line: int, exc: ValidationError,
                 given: Mapping[str, Any] | None = None) -> list[FieldError]:
    """pydantic's errors, one per field, named as the API names them.

    The models keep inputs out of their messages; contact values found in a
    message all the same (a future check quoting its input) are masked.
    """
    contacts = [str(value) for name, value in (given or {}).items()
                if name.startswith("contact_") and len(str(value)) >= 3]
    out: list[FieldError] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = tuple(error["loc"])
        tag = loc[0] if loc and loc[0] in models_by_tag() else None
        # A JSON key is the sender's text: it goes to the report as a safe cell.
        field = safe_cell(".".join(str(part) for part in (loc[1:] if tag else loc)) or "type")
        reason = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            reason = f"not a field of {tag or 'these'} events"
        elif error["type"] == "union_tag_invalid":  # pydantic's message quotes the tag as sent
            reason = f"unknown event type; known: {', '.join(models_by_tag())}"
        for contact in contacts:
            reason = reason.replace(contact, "…")
        # A message may quote the sender's text all the same: a safe cell too.
        out.append(FieldError(line, field, safe_cell(reason, limit=_REASON_LIMIT)))
    return out
