"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

Validation failures name each bad field as a dotted path (``siren``,
``departements.2``) with pydantic's message, so a partner fixes its input
without reading our code. Input values are never echoed into logs.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub import logs
from hub.errors import BrokerUnavailable, StoreError
from schemas.models import MODELS_BY_RECORD

MEDIA_TYPE = "application/problem+json"
#: Seconds a client should wait before retrying when the broker or the read side is away.
RETRY_AFTER_S = 5

_TYPE_BASE = "urn:passport-hub:problem:"
# The discriminator values: pydantic puts the chosen tag first in an error's location.
_TAGS = frozenset(str(model.model_fields["type"].default) for model in MODELS_BY_RECORD.values())
# Where FastAPI found a parameter: not part of the field's name for the caller.
_PARAM_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


class ProblemResponse(JSONResponse):
    """A JSON response with the problem media type."""

    media_type = MEDIA_TYPE


def body(status: int, slug: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A problem details document (what a batch item carries, and every error response)."""
    return {"type": _TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}


def respond(document: Mapping[str, Any]) -> ProblemResponse:
    """The response of a problem document (503s and 429s say when to retry)."""
    status = int(document["status"])
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else {}
    if status == 429:
        headers["Retry-After"] = str(document.get("retry_after", RETRY_AFTER_S))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return ProblemResponse(dict(document), status_code=status, headers=headers)


def problem(status: int, slug: str, title: str, detail: str, *,
            headers: Mapping[str, str] | None = None, **extra: Any) -> ProblemResponse:
    """A problem details response."""
    return ProblemResponse(body(status, slug, title, detail, **extra), status_code=status,
                           headers=dict(headers or {}))


class ProblemError(Exception):
    """Raised anywhere in a request to answer with this problem (see ``install``)."""

    def __init__(self, document: dict[str, Any]) -> None:
        super().__init__(document["detail"])
        self.document = document


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic errors as ``[{"field": "a.b", "message": "..."}]``."""
    out: list[dict[str, str]] = []
    for error in errors:
        message = (_UNKNOWN_TAG if error.get("type") == "union_tag_invalid"
                   else _message(str(error.get("msg", ""))))
        out.append({"field": _printable(_field(error)), "message": message})
    return out


#: pydantic's message for an unknown ``type`` quotes the value sent: not ours to echo.
_UNKNOWN_TAG = "unknown event type (see the OpenAPI document for the event types)"
#: Longest field name echoed back: an unknown key is the sender's text, of any length.
_FIELD_ECHO = 64


def _printable(name: str) -> str:
    """A field name as it may go back to the sender and into a log line: printable
    characters only (others as ``?``), cut to ``_FIELD_ECHO``."""
    shown = "".join(c if c.isprintable() else "?" for c in name[:_FIELD_ECHO])
    return shown + ("…" if len(name) > _FIELD_ECHO else "")


def _field(error: Mapping[str, Any]) -> str:
    loc: Sequence[Any] = tuple(error.get("loc", ()))
    if loc and loc[0] in _PARAM_SOURCES:
        loc = loc[1:]
    if loc and loc[0] in _TAGS:
        loc = loc[1:]
    if not loc:
        # A missing or unknown discriminator is reported at the root: it is "type" that is wrong.
        return "type" if str(error.get("type", "")).startswith("union_tag") else "body"
    return ".".join(str(part) for part in loc)


def _message(msg: str) -> str:
    # pydantic prefixes the messages of our own checks with "Value error, ".
    return msg.removeprefix("Value error, ")


def located(name: str, errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A single value's pydantic errors, placed at the parameter or member ``name``."""
    return [{**error, "loc": (name, *error.get("loc", ()))} for error in errors]


def invalid_body(errors: Iterable[Mapping[str, Any]], detail: str) -> dict[str, Any]:
    """422: the input is well-formed but breaks the contract; each bad field named."""
    return body(422, "invalid-input", "Invalid input", detail, errors=field_errors(errors))


def invalid(errors: Iterable[Mapping[str, Any]], detail: str) -> ProblemResponse:
    """422 as a response."""
    return respond(invalid_body(errors, detail))


def unavailable_body(detail: str) -> dict[str, Any]:
    """503: try again shortly, nothing was accepted."""
    return body(503, "unavailable", "Service unavailable", detail)


def unavailable(detail: str) -> ProblemResponse:
    """503 with Retry-After as a response."""
    return respond(unavailable_body(detail))


def malformed(detail: str) -> dict[str, Any]:
    """400: the body is not a JSON object."""
    return body(400, "malformed-json", "Malformed JSON", detail)


def too_large(detail: str) -> dict[str, Any]:
    """413: the body or the batch is over its limit."""
    return body(413, "too-large", "Body too large", detail)


def unsupported_media(detail: str) -> dict[str, Any]:
    """415: only JSON bodies are read."""
    return body(415, "unsupported-media-type", "Unsupported media type", detail)


def unauthorized(detail: str) -> dict[str, Any]:
    """401: no key, or not one of ours."""
    return body(401, "unauthorized", "Unauthorized", detail)


def forbidden(detail: str) -> dict[str, Any]:
    """403: a valid key, outside its scope."""
    return body(403, "forbidden", "Forbidden", detail)


def not_found(detail: str) -> dict[str, Any]:
    """404: nothing known under that name."""
    return body(404, "not-found", "Not found", detail)


def conflict(detail: str) -> dict[str, Any]:
    """409: an event id already accepted with another body."""
    return body(409, "conflict", "Conflict", detail)


def rate_limited(detail: str, retry_after_s: int) -> dict[str, Any]:
    """429: the key is over its rate limit; ``retry_after`` (seconds) is also the response's
    ``Retry-After`` header (connectors/api/ratelimit.py)."""
    return body(429, "rate-limited", "Too many requests", detail, retry_after=retry_after_s)


def install(app: FastAPI) -> None:
    """Answer framework errors (unknown route, bad query, broker down) as problems."""
    log = logs.get()

    @app.exception_handler(StarletteHTTPException)
    async def on_http(_request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        return problem(exc.status_code, f"http-{exc.status_code}", str(exc.detail),
                       str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation(_request: Request, exc: RequestValidationError) -> ProblemResponse:
        return invalid(exc.errors(), "the request parameters are invalid")

    @app.exception_handler(ProblemError)
    async def on_problem(_request: Request, exc: ProblemError) -> ProblemResponse:
        return respond(exc.document)

    @app.exception_handler(BrokerUnavailable)
    async def on_broker(_request: Request, exc: BrokerUnavailable) -> ProblemResponse:
        log.warning("http.broker_unavailable", error=type(exc.__cause__ or exc).__name__)
        return unavailable("the event broker did not acknowledge in time; retry later")

    @app.exception_handler(StoreError)
    async def on_store(_request: Request, exc: StoreError) -> ProblemResponse:
        log.warning("http.readmodel_unavailable", error=str(exc))
        return unavailable("the read model is not available yet; retry later")


class LastResort:
    """ASGI middleware: a bug answers a 500 problem instead of a dropped connection.

    Only genuine bugs get here: every input error has its own 4xx. The log
    names the exception type and where it was raised, never its message,
    which may quote the input.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logs.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            frames = [f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
                      for frame in traceback.extract_tb(exc.__traceback__)[-8:]]
            route = getattr(scope.get("route"), "path", None)
            self.log.error("http.bug", error=type(exc).__name__, route=route, frames=frames)
            if started:
                raise
            response = problem(500, "internal-error", "Internal server error",
                               "an unexpected error on our side; it was logged")
            await response(scope, receive, send)
