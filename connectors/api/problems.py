"""RFC 9457 problem details: every error the API answers is ``application/problem+json``.

Validation failures name each bad field as a dotted path (``siren``,
``departements.2``) with pydantic's message, so a partner fixes its input
without reading our code. Input values are never echoed into logs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def problem(status: int, slug: str, title: str, detail: str, *,
            headers: Mapping[str, str] | None = None, **extra: Any) -> ProblemResponse:
    """A problem details response."""
    body = {"type": _TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return ProblemResponse(body, status_code=status, headers=dict(headers or {}))


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """pydantic errors as ``[{"field": "a.b", "message": "..."}]``."""
    out: list[dict[str, str]] = []
    for error in errors:
        out.append({"field": _field(error), "message": _message(str(error.get("msg", "")))})
    return out


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


def invalid(errors: Iterable[Mapping[str, Any]], detail: str) -> ProblemResponse:
    """422: the input is well-formed but breaks the contract."""
    return problem(422, "invalid-input", "Invalid input", detail, errors=field_errors(errors))


def unavailable(detail: str) -> ProblemResponse:
    """503 with Retry-After: try again shortly, nothing was accepted."""
    return problem(503, "unavailable", "Service unavailable", detail,
                   headers={"Retry-After": str(RETRY_AFTER_S)})


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

    @app.exception_handler(BrokerUnavailable)
    async def on_broker(_request: Request, exc: BrokerUnavailable) -> ProblemResponse:
        log.warning("http.broker_unavailable", error=type(exc.__cause__ or exc).__name__)
        return unavailable("the event broker did not acknowledge in time; retry later")

    @app.exception_handler(StoreError)
    async def on_store(_request: Request, exc: StoreError) -> ProblemResponse:
        log.warning("http.readmodel_unavailable", error=str(exc))
        return unavailable("the read model is not available yet; retry later")
