"""The OpenAPI part of the webhook routes and the pull feed: their schemas, bodies and examples.

Kept beside ``openapi.py`` (which holds the ingest's and the queries' part) so
that neither grows past a readable size; ``create_app`` hands ``SCHEMAS`` to
``openapi.install``. The webhook routes read their bodies themselves (to tell
400, 413, 415 and 422 apart, as the ingest does), so their request bodies are
declared here.
"""

from __future__ import annotations

from typing import Any

from connectors.api.openapi import json_response, problem_responses, ref
from connectors.api.problems import MEDIA_TYPE
from schemas import catalog
from schemas.webhooks import EVENT_TYPES
from services.readmodel.consistency import Token
from services.readmodel.feed import encode_cursor

_STRING = {"type": "string"}
_STRING_OR_NULL = {"type": ["string", "null"]}
_TIME = {"type": "string", "format": "date-time"}
_TIME_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
_INTEGER_OR_NULL = {"type": ["integer", "null"]}
_TOKEN = {"type": ["string", "null"], "description": "Pass it as `after` to a read to wait "
          "until the read model reflects this write (null: its place is not known)."}
_ACCEPTED = {"type": "string", "enum": ["accepted"]}
_EVENT_ID = {"type": "string", "format": "uuid", "description": "the command's event id"}
_SECRET = {"type": "string", "description": "The signing secret (Standard Webhooks, "
           "`whsec_…`): shown in this answer only, never again. Verify each delivery's "
           "`webhook-signature` with it."}
_FINGERPRINT = {"type": ["string", "null"], "description": "First 12 hex digits of the secret's "
                "SHA-256: tells secrets apart, reveals nothing."}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


#: Schemas of the webhook and feed answers, added to the document's components.
SCHEMAS: dict[str, dict[str, Any]] = {
    "WebhookRegistration": {**_object(
        ["url"], url={"type": "string", "minLength": 1, "maxLength": 2048, "description":
                      "https (http only to a host the operator's allow-list names); never a "
                      "private, loopback or link-local address"},
        enabled={"type": "boolean", "default": True,
                 "description": "false pauses deliveries (messages are kept for a replay)"}),
        "additionalProperties": False},
    "WebhookRegistered": _object(
        ["reseller_id", "url", "enabled", "status", "event_id", "secret_fingerprint",
         "consistency_token"],
        reseller_id=_STRING, url=_STRING, enabled={"type": "boolean"}, status=_ACCEPTED,
        event_id=_EVENT_ID,
        secret={**_SECRET, "description": "Only in the answer to the first registration: "
                + _SECRET["description"]},
        secret_fingerprint=_FINGERPRINT, consistency_token=_TOKEN),
    "WebhookRotated": _object(
        ["reseller_id", "status", "event_id", "secret", "secret_fingerprint",
         "previous_valid_until", "consistency_token"],
        reseller_id=_STRING, status=_ACCEPTED, event_id=_EVENT_ID, secret=_SECRET,
        secret_fingerprint=_FINGERPRINT,
        previous_valid_until={**_TIME, "description": "until when the previous secret signs "
                              "too (deliveries then carry both signatures)"},
        consistency_token=_TOKEN),
    "WebhookTestAccepted": _object(
        ["reseller_id", "status", "event_id", "message_id", "consistency_token"],
        reseller_id=_STRING, status=_ACCEPTED, event_id=_EVENT_ID,
        message_id={**_STRING, "description": "the ping's webhook-id: its attempts are "
                    "`GET …/deliveries?message_id=`"},
        consistency_token=_TOKEN),
    "Replay": {**_object(
        ["since"], since={**_TIME, "description": "re-send the messages created at or after"},
        until={**_TIME_OR_NULL, "description": "and before (null or absent: up to now)"}),
        "additionalProperties": False},
    "ReplayAccepted": _object(
        ["reseller_id", "status", "event_id", "since", "until", "consistency_token"],
        reseller_id=_STRING, status=_ACCEPTED, event_id=_EVENT_ID, since=_TIME,
        until=_TIME_OR_NULL, consistency_token=_TOKEN),
    "WebhookEndpoint": _object(
        ["reseller_id", "url", "enabled", "secrets", "version"],
        reseller_id=_STRING, url=_STRING, enabled={"type": "boolean"},
        disabled_reason={"type": ["string", "null"], "description": "by_owner | gone (the "
                         "endpoint answered 410) | failing (no success for days) | refused "
                         "(the URL is not allowed)"},
        failing_since={**_TIME_OR_NULL, "description": "first failure since the last success"},
        secrets={"type": "array", "description": "the secrets that sign now, newest first",
                 "items": _object(["fingerprint"], fingerprint=_STRING, created_at=_TIME,
                                  expires_at=_TIME_OR_NULL)},
        version={"type": "integer", "description": "+1 at every change"},
        updated_at=_TIME_OR_NULL),
    "Delivery": _object(
        ["message_id", "type", "attempt", "outcome"],
        message_id={**_STRING, "description": "the webhook-id: the same on every attempt"},
        type=_STRING, lead_id=_STRING_OR_NULL,
        attempt={"type": "integer", "description": "1-based; a replay starts again at 1"},
        url=_STRING,
        outcome={**_STRING, "description": "delivered | retrying | failed | skipped | refused"},
        http_status=_INTEGER_OR_NULL, latency_ms=_INTEGER_OR_NULL, error=_STRING_OR_NULL,
        next_attempt_at=_TIME_OR_NULL, replay={"type": "boolean"}, at=_TIME_OR_NULL),
    "Deliveries": _object(["reseller_id", "deliveries"], reseller_id=_STRING,
                          deliveries={"type": "array", "items": ref("Delivery")}),
    "LeadEvent": {**_object(
        ["id", "type", "timestamp", "data"],
        id={**_STRING, "description": "the webhook-id: a CRM drops an id it already has"},
        type={"type": "string", "enum": list(EVENT_TYPES)}, timestamp=_TIME,
        data={"type": "object", "description": "the lead as this reseller may see it"},
        reseller_id={**_STRING, "description": "whose event (in the admin's feed only)"}),
        "description": "The body a webhook delivers, and an item of the pull feed."},
    "ResellerFeed": _object(
        ["reseller_id", "events", "next_cursor"], reseller_id=_STRING,
        events={"type": "array", "items": ref("LeadEvent")},
        next_cursor={**_STRING, "description": "the `cursor` of the next call (the same when "
                     "nothing was new)"}),
    "LeadEvents": _object(
        ["events", "next_cursor"], events={"type": "array", "items": ref("LeadEvent")},
        next_cursor=_STRING),
}

_REGISTRATION_EXAMPLES = {
    "register": {"summary": "register (or change) the endpoint",
                 "value": {"url": "https://crm.example.com/hooks/passport-hub"}},
    "pause": {"summary": "pause deliveries",
              "value": {"url": "https://crm.example.com/hooks/passport-hub", "enabled": False}},
}
_REPLAY_EXAMPLES = {
    "since": {"summary": "everything since a time",
              "value": {"since": "2026-11-02T00:00:00+01:00"}},
    "window": {"summary": "one day",
               "value": {"since": "2026-11-02T00:00:00Z", "until": "2026-11-03T00:00:00Z"}},
}
_BODY_PROBLEMS = (400, 401, 403, 413, 415, 422, 503)
_TOKEN_EXAMPLE = Token(catalog.WEBHOOK_COMMANDS, 0, 42, "web-78").encode()
_FINGERPRINT_EXAMPLE = "9f2c41d07a3e"
#: Examples of the answers, one per schema that has one.
_EXAMPLES: dict[str, Any] = {
    "WebhookRegistered": {
        "reseller_id": "web-78", "url": "https://crm.example.com/hooks/passport-hub",
        "enabled": True, "status": "accepted", "event_id": "5b0e8f3c-2d4a-4c1e-9f6b-7a8d9e0f1a2b",
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "secret_fingerprint": _FINGERPRINT_EXAMPLE, "consistency_token": _TOKEN_EXAMPLE},
    "WebhookEndpoint": {
        "reseller_id": "web-78", "url": "https://crm.example.com/hooks/passport-hub",
        "enabled": True, "disabled_reason": None, "failing_since": None,
        "secrets": [{"fingerprint": _FINGERPRINT_EXAMPLE, "created_at": "2026-11-02T09:00:00.000Z",
                     "expires_at": None}],
        "version": 1, "updated_at": "2026-11-02T09:00:00.120Z"},
    "Deliveries": {"reseller_id": "web-78", "deliveries": [{
        "message_id": "msg_2b1f4c7e9a0d4e6f8a3b5c7d9e1f2a4b", "type": "lead.assigned",
        "lead_id": "lead-1", "attempt": 2, "url": "https://crm.example.com/hooks/passport-hub",
        "outcome": "delivered", "http_status": 204, "latency_ms": 83, "error": None,
        "next_attempt_at": None, "replay": False, "at": "2026-11-02T09:00:05.310Z"}]},
    "ResellerFeed": {"reseller_id": "web-78", "next_cursor": encode_cursor(81), "events": [{
        "id": "msg_2b1f4c7e9a0d4e6f8a3b5c7d9e1f2a4b", "type": "lead.assigned",
        "timestamp": "2026-11-02T09:00:00.000Z",
        "data": {"lead_id": "lead-1", "version": 1, "status": "assigned", "change": "assigned",
                 "category": "website-hosting", "answer_by": "2026-11-04T09:00:00.000Z",
                 "business": {"siren": "732829320", "name": "Boulangerie Martin",
                              "departement": "78", "region": "11"}}}]},
}


def _answer(schema: str, description: str) -> dict[str, Any]:
    """A JSON answer of one of ``SCHEMAS``, with its example when it has one."""
    response = json_response(schema, description)
    if schema in _EXAMPLES:
        response["content"]["application/json"]["example"] = _EXAMPLES[schema]
    return response


def _body(schema: str, examples: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": ref(schema), "examples": examples}}}}


def register_route() -> dict[str, Any]:
    """Keyword arguments of ``PUT /v1/resellers/{reseller_id}/webhook``."""
    return {
        "responses": {
            202: _answer("WebhookRegistered", "Accepted: the broker acknowledged the "
                               "command; the delivery component applies it."),
            **problem_responses(*_BODY_PROBLEMS),
            422: {"description": "The body breaks the contract (`errors` names each field), "
                  "or the URL is refused (type `…:url-refused`, the reason in `detail`): not "
                  "https, credentials in it, or an address that is private, loopback, "
                  "link-local or a cloud metadata service.",
                  "content": {MEDIA_TYPE: {"schema": ref("Problem")}}}},
        "openapi_extra": _body("WebhookRegistration", _REGISTRATION_EXAMPLES),
        "description": (
            "Register the reseller's webhook endpoint, or change its URL or pause it (a "
            "reseller's own key, or an admin's). Lead events are then pushed to it as "
            "Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`), "
            "retried with backoff for about a day and a half. The first registration "
            "issues the signing secret: it is in this answer only (`secret`), never shown "
            "again (rotate to get a new one). The answer is 202 once the broker "
            "acknowledged the command; `GET` the endpoint with `after=<consistency_token>` "
            "to see it applied."),
    }


def state_route() -> dict[str, Any]:
    """Keyword arguments of ``GET /v1/resellers/{reseller_id}/webhook``."""
    return {
        "responses": {
            200: _answer("WebhookEndpoint", "The endpoint as the delivery component "
                               "holds it (secrets only as fingerprints)."),
            **problem_responses(401, 403, 404, 422, 503, 504)},
        "description": (
            "The endpoint's state: URL, enabled or why not (by_owner, gone, failing, "
            "refused), failing since when, the secrets signing now (fingerprints) and its "
            "version. `after=<consistency_token>` of a command waits until its effect "
            "shows (`wait` seconds, default 10, else 504); `wait` alone waits for an "
            "endpoint just registered to appear."),
    }


def rotate_route() -> dict[str, Any]:
    """Keyword arguments of ``POST /v1/resellers/{reseller_id}/webhook/rotate``."""
    return {
        "responses": {
            202: json_response("WebhookRotated", "Accepted: the new secret, shown this once."),
            **problem_responses(401, 403, 404, 422, 503)},
        "description": (
            "Issue a new signing secret. The previous one keeps signing beside it until "
            "`previous_valid_until` (deliveries carry both signatures), so the CRM can "
            "switch without losing a delivery. 404 when no endpoint is registered."),
    }


def test_route() -> dict[str, Any]:
    """Keyword arguments of ``POST /v1/resellers/{reseller_id}/webhook/test``."""
    return {
        "responses": {
            202: json_response("WebhookTestAccepted", "Accepted: a ping will be sent."),
            **problem_responses(401, 403, 404, 422, 503)},
        "description": (
            "Send a `ping` delivery to the endpoint, signed as every delivery is; its "
            "attempts appear in the delivery log under the answer's `message_id`. 404 when "
            "no endpoint is registered."),
    }


def deliveries_route() -> dict[str, Any]:
    """Keyword arguments of ``GET /v1/resellers/{reseller_id}/deliveries``."""
    return {
        "responses": {
            200: _answer("Deliveries", "The delivery attempts, newest first."),
            **problem_responses(401, 403, 422, 503)},
        "description": (
            "The delivery log: one entry per attempt (outcome delivered, retrying, failed, "
            "skipped or refused; the HTTP status, latency, error and next attempt), newest "
            "first, `limit` at most (1-1000, default 100). `message_id` keeps one "
            "message's attempts. Bodies and secrets never appear."),
    }


def replay_route() -> dict[str, Any]:
    """Keyword arguments of ``POST /v1/resellers/{reseller_id}/deliveries/replay``."""
    return {
        "responses": {
            202: json_response("ReplayAccepted", "Accepted: the messages will be re-sent."),
            **problem_responses(*_BODY_PROBLEMS, 404)},
        "openapi_extra": _body("Replay", _REPLAY_EXAMPLES),
        "description": (
            "Re-send the reseller's messages created in a window (an admin's key only: a "
            "reseller's own key is a 403). Replayed messages keep their `webhook-id`, so "
            "a CRM drops those it already has. 404 when no endpoint is registered."),
    }


def reseller_leads_route() -> dict[str, Any]:
    """Keyword arguments of ``GET /v1/resellers/{reseller_id}/leads`` (list or feed)."""
    return {"responses": {
        200: {"description": "The reseller's leads, most recent first; with `cursor`, its "
              "lead events after the cursor.",
              "content": {"application/json": {"schema": {"anyOf": [
                  ref("ResellerLeads"), ref("ResellerFeed")]},
                  "examples": {"feed": {"summary": "with a cursor: the pull feed",
                                        "value": _EXAMPLES["ResellerFeed"]}}}}},
        **problem_responses(401, 403, 422, 503)}}


def all_events_route() -> dict[str, Any]:
    """Keyword arguments of ``GET /v1/lead-events``."""
    return {"responses": {
        200: json_response("LeadEvents", "Every reseller's lead events after the cursor."),
        **problem_responses(401, 403, 422, 503)}}
