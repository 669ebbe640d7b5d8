"""Request bodies of the ingest: media type, size, JSON, then the events in them (or why not).

Every way a body can be wrong has its own answer: 415 for a media type that
is not JSON, 413 over the size (or count) limit, 400 when it is not a JSON
object, 422 naming each field that breaks the contract. A batch's items are
validated one by one only when the whole batch is not valid at once, so the
common case costs one ``validate_json`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from connectors.api import problems
from connectors.api.problems import ProblemError
from hub import logs
from schemas.models import EVENT_ADAPTER, NOW, Event, EventModel

#: Largest single event body: events are a few hundred bytes; this only stops abuse.
MAX_EVENT_BYTES = 64 * 1024
#: Largest batch body.
MAX_BATCH_BYTES = 1024 * 1024
#: Most events in one batch.
MAX_BATCH_EVENTS = 1000

_WHITESPACE = b" \t\r\n"


class Batch(BaseModel):
    """The body of ``POST /v1/events:batch``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


_BATCH: TypeAdapter[Batch] = TypeAdapter(Batch)


def json_media_type(value: str | None) -> bool:
    """Whether a Content-Type names JSON: ``application/json`` or ``application/*+json``, utf-8."""
    if not value:
        return False
    media, *params = value.split(";")
    media = media.strip().lower()
    kind, _, subtype = media.partition("/")
    if kind != "application" or not (subtype == "json" or subtype.endswith("+json")):
        return False
    for param in params:
        name, _, given = param.partition("=")
        if name.strip().lower() == "charset" and given.strip().strip('"').lower() not in (
                "utf-8", "utf8"):
            return False
    return True


async def read(request: Request, limit: int) -> bytes:
    """The body of a JSON request, at most ``limit`` bytes (else a ``ProblemError``)."""
    if not json_media_type(request.headers.get("content-type")):
        raise ProblemError(problems.unsupported_media(
            "send the body as application/json (utf-8)"))
    too_large = problems.too_large(f"the body is over {limit} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ProblemError(too_large)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(too_large)
        chunks.append(chunk)
    return b"".join(chunks)


def _object_expected(body: bytes) -> None:
    # Every valid body is an object: anything else is a 400, whatever it parses to.
    if not body.lstrip(_WHITESPACE).startswith(b"{"):
        raise ProblemError(problems.malformed("the body must be a JSON object"))


def _is_malformed(errors: Sequence[Any]) -> bool:
    return any(error["type"] == "json_invalid" for error in errors)


def event(body: bytes) -> EventModel:
    """One event from a body; a ``ProblemError`` (400 or 422) when there is none."""
    _object_expected(body)
    try:
        return EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_input=False)
        if _is_malformed(errors):
            raise ProblemError(problems.malformed("the body is not valid JSON")) from exc
        _log_rejected(errors)
        raise ProblemError(problems.invalid_body(
            errors, "the event breaks the contract; see errors")) from exc


def json_object(body: bytes) -> dict[str, Any]:
    """A body's JSON object, for a route that builds its event itself (400 when there is none)."""
    _object_expected(body)
    try:
        document = from_json(body)
    except ValueError as exc:
        raise ProblemError(problems.malformed("the body is not valid JSON")) from exc
    if not isinstance(document, dict):  # "{" then not an object: not valid JSON after all
        raise ProblemError(problems.malformed("the body must be a JSON object"))
    return document


def batch(body: bytes) -> list[EventModel | dict[str, Any]]:
    """A batch's items in order: each an event, or the problem document of an invalid one."""
    _object_expected(body)
    # One clock reading for the batch's future check, not one per event (~0.7 µs each).
    context = {NOW: datetime.now(UTC)}
    try:
        return list(_BATCH.validate_json(body, context=context).events)
    except ValidationError as exc:
        if _is_malformed(exc.errors(include_input=False)):
            raise ProblemError(problems.malformed("the body is not valid JSON")) from exc
    # Some item (or the envelope) is wrong: find out which, one by one.
    document = from_json(body)
    extra = sorted(set(document) - {"events"})
    items = document.get("events")
    if extra or not isinstance(items, list) or not items:
        raise ProblemError(problems.body(
            422, "invalid-input", "Invalid input",
            "a batch is an object with one member, events: a non-empty list of events",
            errors=[{"field": name, "message": "not allowed"} for name in extra]
            or [{"field": "events", "message": "a non-empty list of events is required"}]))
    if len(items) > MAX_BATCH_EVENTS:
        raise ProblemError(problems.too_large(
            f"a batch holds at most {MAX_BATCH_EVENTS} events, not {len(items)}"))
    out: list[EventModel | dict[str, Any]] = []
    for item in items:
        try:
            out.append(EVENT_ADAPTER.validate_python(item, context=context))
        except ValidationError as exc:
            errors = exc.errors(include_input=False)
            _log_rejected(errors)
            out.append(problems.invalid_body(errors, "the event breaks the contract; see errors"))
    return out


def _log_rejected(errors: Sequence[Any]) -> None:
    # Field names only: the values may be contact data.
    logs.get().info("ingest.rejected", fields=[e["field"] for e in problems.field_errors(errors)])
