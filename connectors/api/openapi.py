"""The API's OpenAPI document: event bodies as the discriminated union, every problem answer.

The ingest endpoints read their bodies themselves (to tell 400, 413, 415 and
422 apart), so FastAPI cannot see their schema: it is declared here, from the
same pydantic union that validates them, with one example per event type.
Each route lists the problems it answers, as ``application/problem+json``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from connectors.api.bodies import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from connectors.api.problems import MEDIA_TYPE, RETRY_AFTER_S
from schemas.models import EVENT_ADAPTER, EXAMPLES

_REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF.format(model=name)}


_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_STRING_OR_NULL = {"type": ["string", "null"]}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}

#: What a département code looks like ("78", "2A", "971"); the reference data says which exist.
DEPARTEMENT_SHAPE = r"^(?:[0-9]{2}|2[AB]|97[0-9])$"


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _figures(name: str, *extra: str) -> dict[str, Any]:
    """A place's line of the stats: its code, name and counts."""
    return _object([name, "name", *extra, "businesses_enrolled", "passports_issued",
                    "share_of_national_target"],
                   **{name: _STRING, "name": _STRING_OR_NULL},
                   **dict.fromkeys(extra, _STRING_OR_NULL),
                   businesses_enrolled=_COUNT, passports_issued=_COUNT,
                   share_of_national_target={**_NUMBER, "description": "passports_issued over "
                                             "the national target (no regional target exists)"})


def _quality(name: str) -> dict[str, Any]:
    return {"type": "array", "items": _object(
        [name, "responses", "average_score"], **{name: _STRING}, responses=_COUNT,
        average_score={**_NUMBER, "minimum": 1, "maximum": 5})}

#: Schemas of our own answers, added to the document's components.
SCHEMAS: dict[str, dict[str, Any]] = {
    "FieldError": {
        "type": "object", "required": ["field", "message"],
        "properties": {"field": {**_STRING, "description": "dotted path, e.g. departements.2"},
                       "message": _STRING},
    },
    "Problem": {
        "type": "object", "description": "RFC 9457 problem details.",
        "required": ["type", "title", "status", "detail"],
        "properties": {"type": _STRING, "title": _STRING, "status": _INTEGER, "detail": _STRING,
                       "errors": {"type": "array", "items": _ref("FieldError"),
                                  "description": "each field that breaks the contract (422)"}},
    },
    "Accepted": {
        "type": "object", "required": ["event_id", "topic", "status"],
        "properties": {"event_id": {**_STRING, "format": "uuid"}, "topic": _STRING,
                       "status": {"type": "string", "enum": ["accepted"]}},
    },
    "BatchItemAccepted": {
        "type": "object", "required": ["index", "status", "event_id", "topic"],
        "properties": {"index": _INTEGER, "status": {"type": "integer", "enum": [202]},
                       "event_id": {**_STRING, "format": "uuid"}, "topic": _STRING},
    },
    "BatchItemFailed": {
        "type": "object", "required": ["index", "status", "problem"],
        "properties": {"index": _INTEGER, "status": _INTEGER, "problem": _ref("Problem")},
    },
    "BatchResults": {
        "type": "object", "required": ["results"],
        "properties": {"results": {"type": "array", "items": {
            "anyOf": [_ref("BatchItemAccepted"), _ref("BatchItemFailed")]}}},
    },
    "Batch": {
        "type": "object", "required": ["events"], "additionalProperties": False,
        "properties": {"events": {"type": "array", "items": _ref("Event"), "minItems": 1,
                                  "maxItems": MAX_BATCH_EVENTS}},
    },
    "Passport": {
        "type": "object", "description": "A business's passport. Contact data never appears "
        "here (it reaches a reseller only on a lead, with consent).",
        "required": ["siren", "name", "departement", "state", "modules_completed"],
        "properties": {
            "siren": _STRING, "name": _STRING, "departement": _STRING, "region": _STRING,
            "naf": _STRING_OR_NULL,
            "state": {**_STRING, "enum": ["awaiting_enrolment", "enrolled", "in_training",
                                          "passport_issued"]},
            "enrolled_at": _TIME_OR_NULL,
            "modules_completed": {"type": "array", "items": _STRING},
            "modules": {"type": "array", "items": _object(
                ["module_id", "completed_at"], module_id=_STRING,
                completed_at={**_STRING, "format": "date-time"})},
            "passport_issued_at": _TIME_OR_NULL,
            "offer_requests": _COUNT, "leads_requested": _COUNT,
            "offers": {"type": "array", "items": _object(
                ["category", "outcome"], event_id=_STRING,
                occurred_at={**_STRING, "format": "date-time"}, category=_STRING,
                outcome={**_STRING, "enum": ["lead_requested", "no_passport", "no_consent"]},
                lead_id=_STRING_OR_NULL)},
            "feedback": {"type": "array", "items": _object(
                ["module_id", "score"], module_id=_STRING, trainer_org=_STRING_OR_NULL,
                delegation=_STRING_OR_NULL, score={**_INTEGER, "minimum": 1, "maximum": 5})},
            "consent": {"type": "boolean",
                        "description": "consent to share contact data, not withdrawn"},
            "consent_withdrawn": {"type": "boolean"}, "erased": {"type": "boolean"},
            "updated_at": {**_STRING, "format": "date-time"}},
    },
    "PassportPage": _object(
        ["departement", "state", "limit", "passports", "next_cursor", "total"],
        departement=_STRING,
        state={"type": ["string", "null"],
               "enum": ["enrolled", "in_training", "passport_issued", None]},
        limit=_INTEGER, passports={"type": "array", "items": _ref("Passport")},
        next_cursor={"type": ["string", "null"],
                     "description": "the `cursor` of the next page; null on the last"},
        total={**_COUNT, "description": "passports in the whole listing, every page"}),
    "Stats": _object(
        ["target", "national", "regions", "departements", "modules", "quality"],
        target=_object(["passports", "scope"], passports=_INTEGER,
                       scope={**_STRING, "enum": ["national"]}),
        national=_object(
            ["businesses_enrolled", "passports_issued", "share_of_target", "awaiting_enrolment"],
            businesses_enrolled=_COUNT, passports_issued=_COUNT, share_of_target=_NUMBER,
            awaiting_enrolment={**_COUNT, "description": "businesses whose events came before "
                                "their enrolment"}),
        regions={"type": "array", "items": _figures("region")},
        departements={"type": "array", "items": _figures("departement", "region")},
        modules={"type": "array", "items": _object(
            ["module_id", "title", "businesses"], module_id=_STRING, title=_STRING_OR_NULL,
            businesses={**_COUNT, "description": "businesses that completed the module"})},
        quality=_object(["by_module", "by_trainer_org", "by_delegation"],
                        by_module=_quality("module_id"), by_trainer_org=_quality("trainer_org"),
                        by_delegation=_quality("delegation"))),
    "ResellerLeads": {
        "type": "object", "required": ["reseller_id", "leads"],
        "properties": {"reseller_id": _STRING, "leads": {"type": "array", "items": {
            "type": "object", "required": ["lead_id", "siren", "category", "status"],
            "properties": {"lead_id": _STRING, "siren": _STRING, "category": _STRING,
                           "status": _STRING}}}},
    },
}

_DESCRIPTIONS = {
    400: "The body is not a JSON object.",
    401: "No API key, or not a valid one.",
    403: "The key's scope does not cover this event type, reseller, lead or query.",
    404: "Nothing known under that name.",
    409: "This event_id was already accepted with a different body.",
    413: "The body (or the batch) is over its limit.",
    415: "The body is not application/json (or application/*+json) in utf-8.",
    422: "The input breaks the contract: `errors` names each field.",
    503: f"The broker (or the read model) is not available: retry after {RETRY_AFTER_S} s.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": _STRING, "description": "Bearer"}},
    503: {"Retry-After": {"schema": _INTEGER, "description": "seconds"}},
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` of a route: each status as a problem document."""
    return {status: {"description": _DESCRIPTIONS[status],
                     "content": {MEDIA_TYPE: {"schema": _ref("Problem")}},
                     **({"headers": _HEADERS[status]} if status in _HEADERS else {})}
            for status in statuses}


def json_response(schema: str, description: str) -> dict[str, Any]:
    """An OpenAPI response: JSON of one of ``SCHEMAS``."""
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def event_route() -> dict[str, Any]:
    """Keyword arguments of the ``POST /v1/events`` route: responses, body, description."""
    examples = {kind: {"summary": kind, "value": example} for kind, example in EXAMPLES.items()}
    return {
        "responses": {
            202: json_response("Accepted", "Accepted: the broker acknowledged the event (or had "
                       "already: the same event again is not published twice)."),
            **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503)},
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("Event"), "examples": examples}}}},
        "description": (
            f"One partner event, at most {MAX_EVENT_BYTES // 1024} KiB. The answer is 202 "
            "only once the broker acknowledged it (acks=all). Retrying with the same "
            "`event_id` and the same body answers 202 again without publishing twice; a "
            "different body under a used `event_id` is a 409. A reseller's `lead_answered` "
            "must be about a lead assigned to it (403), and known (404)."),
    }


def batch_route() -> dict[str, Any]:
    """Keyword arguments of the ``POST /v1/events:batch`` route."""
    results = {"application/json": {"schema": _ref("BatchResults")}}
    return {
        "responses": {
            202: {"description": "At least one event accepted, no broker failure: see each "
                  "item.", "content": results},
            422: {"description": "No event accepted (each item says why), or the envelope "
                  "itself is invalid (a problem).",
                  "content": {**results, MEDIA_TYPE: {"schema": _ref("Problem")}}},
            503: {"description": "The broker failed: the items it did not acknowledge say "
                  "503; retry them (or the whole batch: accepted ones are not published twice).",
                  "content": results, "headers": _HEADERS[503]},
            **problem_responses(400, 401, 413, 415)},
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("Batch"),
            "examples": {"every type": {"summary": "one event of each type",
                                        "value": {"events": list(EXAMPLES.values())}}}}}}},
        "description": (
            f"Up to {MAX_BATCH_EVENTS} events, at most {MAX_BATCH_BYTES // 1024} KiB. The "
            "answer has one result per event, in order (`index`). **Valid events are "
            "published even when others in the batch are invalid**: each item says 202 "
            "(acknowledged by the broker), or its own problem (403, 404, 409, 422, 503). "
            "The batch answers 202 when at least one event was accepted and the broker did "
            "not fail, 503 (with Retry-After) when it failed for any, 422 when none was "
            "accepted. Events are published in bulk: sent together, acknowledged together."),
    }


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` carry the event schemas and the problem schemas."""
    events = EVENT_ADAPTER.json_schema(ref_template=_REF)
    definitions = events.pop("$defs", {})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(definitions)
            schemas["Event"] = events
            schemas.update(SCHEMAS)
            app.openapi_schema = document
        return app.openapi_schema

    replace: Callable[[], dict[str, Any]] = openapi
    app.openapi = replace  # type: ignore[method-assign]  # FastAPI's documented way to customise
