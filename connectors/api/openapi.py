"""The API's OpenAPI document: event bodies as the discriminated union, every problem answer.

The ingest endpoints read their bodies themselves (to tell 400, 413, 415 and
422 apart), so FastAPI cannot see their schema: it is declared here, from the
same pydantic union that validates them, with one example per event type.
Each route lists the problems it answers, as ``application/problem+json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from connectors.api.bodies import MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_EVENT_BYTES
from connectors.api.problems import MEDIA_TYPE, RETRY_AFTER_S
from schemas.fields import REJECT_REASONS
from schemas.models import EVENT_ADAPTER, EXAMPLES

_REF = "#/components/schemas/{model}"


def ref(name: str) -> dict[str, str]:
    """A reference to one of the document's component schemas."""
    return {"$ref": _REF.format(model=name)}


_ref = ref


_STRING = {"type": "string"}
_INTEGER = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_NUMBER = {"type": "number"}
_STRING_OR_NULL = {"type": ["string", "null"]}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_TIME = {"type": "string", "format": "date-time"}
_BOOLEAN = {"type": "boolean"}
_STRINGS = {"type": "array", "items": _STRING}

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

def _counts(description: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": _COUNT, "description": description}


_CANDIDATE = _object(
    ["reseller_id", "weight", "share", "entitlement", "received", "deficit", "open", "capacity"],
    reseller_id=_STRING, weight=_INTEGER,
    share={**_NUMBER, "description": "its weight over the eligible weights"},
    entitlement={**_NUMBER, "description": "leads it was entitled to, this one included"},
    received={**_COUNT, "description": "leads it had received before this one"},
    deficit={**_NUMBER, "description": "entitlement - received: the largest wins"},
    open={**_COUNT, "description": "open leads it held before this one"}, capacity=_COUNT)
_LEAD_FIELDS: dict[str, Any] = {
    "lead_id": _STRING, "siren": _STRING, "business_name": _STRING, "category": _STRING,
    "departement": _STRING, "region": _STRING,
    "status": {**_STRING, "description": "assigned | accepted | queued | rejected | expired | "
               "won | lost | withdrawn | duplicate"},
    "change": {**_STRING, "description": "the last change: assigned | reassigned | accepted | "
               "rejected | expired | won | lost | withdrawn | queued | duplicate"},
    "version": {**_INTEGER, "description": "1 for the lead's first change, +1 for each"},
    "hops": _COUNT, "rule": _STRING, "requested_at": _TIME, "updated_at": _TIME,
    "reseller_id": _STRING_OR_NULL, "previous_reseller_id": _STRING_OR_NULL,
    "reason": _STRING_OR_NULL, "assigned_at": _TIME_OR_NULL, "deadline_at": _TIME_OR_NULL,
    "contact_email": _STRING_OR_NULL,
    "requested_as": {**_STRING, "description": "the duplicate request's id that was asked for"},
    "history": {"type": "array", "items": ref("LeadChange")},
}
_LEAD_REQUIRED = ["lead_id", "siren", "category", "status", "version", "rule", "reseller_id",
                  "history"]

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
        "type": "object", "required": ["event_id", "topic", "status", "consistency_token"],
        "properties": {"event_id": {**_STRING, "format": "uuid"}, "topic": _STRING,
                       "status": {"type": "string", "enum": ["accepted"]},
                       "consistency_token": _ref("ConsistencyToken")},
    },
    "BatchItemAccepted": {
        "type": "object", "required": ["index", "status", "event_id", "topic",
                                       "consistency_token"],
        "properties": {"index": _INTEGER, "status": {"type": "integer", "enum": [202]},
                       "event_id": {**_STRING, "format": "uuid"}, "topic": _STRING,
                       "consistency_token": _ref("ConsistencyToken")},
    },
    "ConsistencyToken": {
        "type": ["string", "null"],
        "description": "Where the broker wrote the event, opaque: pass it as `after` to "
        "`GET /v1/passports/{siren}` or `GET /v1/leads/{lead_id}` to read your write (the "
        "read waits until it is reflected). A retry answers the first write's token; null "
        "when its place is not known.",
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
        ["target", "national", "regions", "departements", "modules", "quality", "leads"],
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
                        by_delegation=_quality("delegation")),
        leads=ref("LeadFigures")),
    "LeadChange": _object(
        ["version", "change", "at", "reseller_id", "previous_reseller_id", "reason"],
        version=_INTEGER, change=_STRING, at=_TIME,
        reseller_id={**_STRING_OR_NULL, "description": "who held the lead after the change"},
        previous_reseller_id=_STRING_OR_NULL, reason=_STRING_OR_NULL),
    "Lead": {**_object(
        [*_LEAD_REQUIRED, "excluded_resellers", "decision", "holders"], **_LEAD_FIELDS,
        excluded_resellers={**_STRINGS, "description": "resellers that rejected it or let "
                            "it expire: never given it again"},
        candidates={**_STRINGS, "description": "the last decision's candidates (v1 field)"},
        sla_breached=_BOOLEAN, duplicate_of=_STRING_OR_NULL,
        holders={**_STRINGS, "description": "every reseller that held the lead"},
        decision={"anyOf": [{"type": "null"}, _object(
            ["rule", "scope", "winner", "candidates", "excluded"], rule=_STRING, scope=_STRING,
            winner=_STRING_OR_NULL, candidates={"type": "array", "items": _CANDIDATE},
            excluded={"type": "array", "items": _object(
                ["reseller_id", "reason"], reseller_id=_STRING,
                reason={**_STRING, "description": "inactive | absent | at_capacity | "
                        "seen_before"})})],
            "description": "the trace of the last decision (null before any, v1)"}),
        "description": "A lead as an admin sees it: the whole trace and history."},
    "ResellerLead": {**_object(
        [*_LEAD_REQUIRED, "held", "decision"], **_LEAD_FIELDS,
        held={**_BOOLEAN, "description": "the caller holds the lead now"},
        decision={"anyOf": [{"type": "null"}, _object(
            ["rule", "scope", "won", "standing"], rule=_STRING, scope=_STRING,
            won={**_BOOLEAN, "description": "the caller won the last decision"},
            standing={"anyOf": [{"type": "null"}, _CANDIDATE],
                      "description": "the caller's own candidate entry (null: not one)"})]}),
        "description": "A lead as a reseller that holds or held it sees it: its own part, "
        "never another reseller's id or figures (their ids are null)."},
    "ResellerLeads": {
        "type": "object", "required": ["reseller_id", "leads"],
        "properties": {"reseller_id": _STRING, "leads": {"type": "array", "items": {
            "anyOf": [ref("Lead"), ref("ResellerLead")]}}},
    },
    "LeadAnswer": {**_object(
        ["answer"],
        answer={**_STRING, "enum": ["accepted", "rejected", "won", "lost"],
                "description": "accepted or rejected while assigned; won or lost once accepted"},
        reason={"type": ["string", "null"], "enum": [*REJECT_REASONS, None],
                "description": "the rejection's reason code: required for rejected, "
                "refused otherwise"},
        event_id={**_STRING, "format": "uuid", "description": "for safe retries: the same "
                  "event_id and body is accepted once (send occurred_at with it too)"},
        occurred_at={**_TIME, "description": "when the reseller answered (default: now)"}),
        "additionalProperties": False},
    "LeadFigures": _object(
        ["total", "open", "by_status", "reassignments", "sla_breaches", "rejections_by_reason"],
        total={**_COUNT, "description": "leads (duplicate requests aside)"},
        open={**_COUNT, "description": "assigned, accepted or queued"},
        by_status=_counts("leads in each status now"),
        reassignments={**_COUNT, "description": "times a lead went on to another reseller"},
        sla_breaches={**_COUNT, "description": "times a holder let the deadline pass"},
        rejections_by_reason=_counts("rejections by reason code")),
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
    504: "Not yet consistent: the read model did not reflect the write `after` names within "
         "`wait` seconds; retry (or read without `after`).",
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


#: Examples of an answer's body, one per kind.
ANSWER_EXAMPLES: dict[str, dict[str, Any]] = {
    "accepted": {"summary": "accept the lead", "value": {"answer": "accepted"}},
    "rejected": {"summary": "reject it, with a reason code",
                 "value": {"answer": "rejected", "reason": "budget"}},
    "won": {"summary": "an accepted lead became a sale, retry-safe",
            "value": {"answer": "won", "event_id": "0b6f0b2e-3c1a-4f7e-9d2a-5c8e1f4a7b90",
                      "occurred_at": "2026-11-04T15:30:00+01:00"}},
    "lost": {"summary": "an accepted lead ended without a sale", "value": {"answer": "lost"}},
}


def answer_route() -> dict[str, Any]:
    """Keyword arguments of the ``POST /v1/leads/{lead_id}/answer`` route."""
    return {
        "responses": {
            202: json_response("Accepted", "Accepted: the broker acknowledged the answer (or "
                               "had: the same event_id and body again is not published twice)."),
            **problem_responses(400, 401, 403, 404, 409, 413, 415, 422, 503),
            409: {"description": "This event_id was already accepted with a different body, "
                  "or nobody holds the lead (an admin's answer has no holder to answer for).",
                  "content": {MEDIA_TYPE: {"schema": ref("Problem")}}}},
        "openapi_extra": {"requestBody": {"required": True, "content": {"application/json": {
            "schema": ref("LeadAnswer"), "examples": ANSWER_EXAMPLES}}}},
        "description": (
            "The holder's answer to its lead: `accepted` or `rejected` (with a `reason` "
            f"code: {', '.join(REJECT_REASONS)}) within the deadline, then `won` or `lost`. "
            "A reseller's key answers only the leads it holds now (403 otherwise, 404 for an "
            "unknown lead); an admin's key answers for the current holder. The answer is "
            "published as a `lead_answered` event on the lead-responses topic, exactly as "
            "`POST /v1/events` would: 202 only once the broker acknowledged it, 503 with "
            "Retry-After when it did not. Retrying with the same `event_id` and the same "
            "body answers 202 without publishing twice (send `occurred_at` too: its default, "
            "now, would differ); another body under a used `event_id` is a 409. The router "
            "then applies it: an answer the lead's status does not allow (won before "
            "accepted) is dead-lettered there, not refused here."),
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


def install(app: FastAPI, extra: Mapping[str, dict[str, Any]] | None = None) -> None:
    """Make ``app.openapi()`` carry the event schemas, the problem schemas and ``extra``
    (the schemas of other route modules: ``openapi_webhooks.SCHEMAS``)."""
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
            schemas.update(extra or {})
            app.openapi_schema = document
        return app.openapi_schema

    replace: Callable[[], dict[str, Any]] = openapi
    app.openapi = replace  # type: ignore[method-assign]  # FastAPI's documented way to customise
