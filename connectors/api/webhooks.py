"""The webhook routes: a reseller's endpoint (register, read, rotate, test), its delivery log
and an operator's replay.

A reseller's own key, or an admin's, manages its endpoint; a replay is an
admin's only (it re-sends a whole window of messages). Every change is a
``WebhookCommand`` for the delivery component (``commands.Commands``), answered
202 once the broker acknowledged it: the endpoint state and the delivery log
the GETs answer are what that component wrote back, as the read model holds
them, so a GET right after a 202 may not show the change yet (pass the 202's
``consistency_token`` as ``after`` to wait for it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.api import bodies, consistency, problems
from connectors.api import openapi_webhooks as docs
from connectors.api.auth import Caller
from connectors.api.bearer import Authenticated, for_reseller
from connectors.api.commands import Commands, registered, rotated
from connectors.api.problems import ProblemError
from connectors.api.readside import ReadSide
from connectors.api.waiting import Changes
from connectors.crm_webhook.ssrf import Guard, UrlRefused
from schemas import webhooks as wire

#: Largest body of a webhook command.
MAX_COMMAND_BYTES = 8 * 1024
#: Most delivery attempts one answer lists.
MAX_DELIVERIES = 1000

RESELLER = Path(openapi_examples={
    "reseller": {"summary": "a reseller id", "value": "web-78"}})


class Registration(BaseModel):
    """The body of ``PUT /v1/resellers/{id}/webhook``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(min_length=1, max_length=2048)
    enabled: bool = True


class Replay(BaseModel):
    """The body of ``POST /v1/resellers/{id}/deliveries/replay``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    since: AwareDatetime
    until: AwareDatetime | None = None

    @model_validator(mode="after")
    def _until_after_since(self) -> Replay:
        if self.until is not None and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def url_refused(reason: str) -> dict[str, Any]:
    """422: the SSRF guard will not let deliveries go to that URL, and says why."""
    return problems.body(422, "url-refused", "URL refused", reason,
                         errors=[{"field": "url", "message": reason}])


async def _body(request: Request, model: type[BaseModel], what: str) -> Any:
    """A command's body, validated by ``model`` (a ``ProblemError`` 400/413/415/422)."""
    document = bodies.json_object(await bodies.read(request, MAX_COMMAND_BYTES))
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        invalid = problems.invalid_body(exc.errors(include_input=False),
                                        f"the {what} breaks the contract; see errors")
        raise ProblemError(invalid) from exc


class _Known:
    """The endpoints the read model knows, as the routes need them."""

    def __init__(self, readside: ReadSide) -> None:
        self.readside = readside

    def endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        """The endpoint the read model knows (a 503 ``ProblemError`` while it cannot tell)."""
        found = self.readside.webhook_endpoint(reseller_id)
        if found is None and not self.readside.caught_up:
            raise ProblemError(problems.unavailable_body(
                "the read model is still catching up; retry"))
        return found

    async def registered(self, reseller_id: str) -> dict[str, Any]:
        """The endpoint, or a 404 ``ProblemError`` when none is registered."""
        found = await run_in_threadpool(self.endpoint, reseller_id)
        if found is None:
            raise ProblemError(problems.not_found(
                f"reseller {reseller_id} has no webhook endpoint registered"))
        return found


def routes(readside: ReadSide, commands: Commands, changes: Changes, *, guard: Guard,
           overlap_ms: int) -> APIRouter:
    """The webhook routes over a read side, publishing through ``commands``."""
    api = APIRouter()
    known = _Known(readside)
    api.include_router(_endpoint_routes(known, commands, changes, guard=guard,
                                        overlap_ms=overlap_ms))
    api.include_router(_delivery_routes(known, commands))
    return api


def _endpoint_routes(known: _Known, commands: Commands, changes: Changes, *, guard: Guard,
                     overlap_ms: int) -> APIRouter:
    api = APIRouter()
    readside = known.readside

    @api.put("/v1/resellers/{reseller_id}/webhook", status_code=202, response_model=None,
             **docs.register_route())
    async def register(reseller_id: Annotated[str, RESELLER], request: Request,
                       who: Authenticated) -> Response:
        """Register or change the endpoint; 202 once the broker acknowledged the command."""
        for_reseller(who, reseller_id, "manage the webhook of")
        wanted: Registration = await _body(request, Registration, "registration")
        try:
            await guard.check_async(wanted.url)
        except UrlRefused as exc:
            return problems.respond(url_refused(str(exc)))
        current = await run_in_threadpool(known.endpoint, reseller_id)
        issued = commands.issue() if current is None else None
        sent = await commands.send(
            who, reseller_id, "register", url=wanted.url, enabled=wanted.enabled,
            secret=None if issued is None else issued.sealed,
            expect=registered(wanted.url, wanted.enabled,
                              None if issued is None else issued.fingerprint))
        answer: dict[str, Any] = {"reseller_id": reseller_id, "url": wanted.url,
                                  "enabled": wanted.enabled, "status": "accepted",
                                  "event_id": sent.event_id}
        if issued is not None:
            answer["secret"] = issued.secret  # shown this once, never again
            answer["secret_fingerprint"] = issued.fingerprint
        else:
            current_secrets = (current or {}).get("secrets") or [{}]
            answer["secret_fingerprint"] = current_secrets[0].get("fingerprint")
        answer["consistency_token"] = sent.token
        return JSONResponse(answer, status_code=202)

    @api.get("/v1/resellers/{reseller_id}/webhook", response_model=None, **docs.state_route())
    async def endpoint(reseller_id: Annotated[str, RESELLER], who: Authenticated,
                       after: Annotated[str | None, consistency.AFTER] = None,
                       wait: Annotated[int | None, consistency.WAIT] = None) -> Response:
        """The endpoint's state as the delivery component last wrote it (404: none)."""
        for_reseller(who, reseller_id, "read the webhook of")
        await consistency.settle(
            changes, after=after, wait=wait,
            reflects=lambda token: commands.expectations.reflected(
                token, readside.webhook_endpoint(reseller_id)),
            present=lambda: readside.webhook_endpoint(reseller_id) is not None,
            what=f"the webhook endpoint of {reseller_id}")
        return JSONResponse(await known.registered(reseller_id))

    @api.post("/v1/resellers/{reseller_id}/webhook/rotate", status_code=202,
              response_model=None, **docs.rotate_route())
    async def rotate(reseller_id: Annotated[str, RESELLER], who: Authenticated) -> Response:
        """Issue a new signing secret; the previous one keeps signing beside it for a while."""
        for_reseller(who, reseller_id, "manage the webhook of")
        await known.registered(reseller_id)
        issued = commands.issue()
        sent = await commands.send(who, reseller_id, "rotate", secret=issued.sealed,
                                   overlap_ms=overlap_ms, expect=rotated(issued.fingerprint))
        return JSONResponse({
            "reseller_id": reseller_id, "status": "accepted", "event_id": sent.event_id,
            "secret": issued.secret, "secret_fingerprint": issued.fingerprint,
            "previous_valid_until": wire.iso(sent.at + overlap_ms),
            "consistency_token": sent.token}, status_code=202)

    @api.post("/v1/resellers/{reseller_id}/webhook/test", status_code=202, response_model=None,
              **docs.test_route())
    async def test(reseller_id: Annotated[str, RESELLER], who: Authenticated) -> Response:
        """Send a ``ping`` to the endpoint (its attempts appear in the delivery log)."""
        for_reseller(who, reseller_id, "manage the webhook of")
        await known.registered(reseller_id)
        sent = await commands.send(who, reseller_id, "test")
        return JSONResponse({
            "reseller_id": reseller_id, "status": "accepted", "event_id": sent.event_id,
            "message_id": wire.message_id(sent.event_id, reseller_id, "ping"),
            "consistency_token": sent.token}, status_code=202)

    return api


def _delivery_routes(known: _Known, commands: Commands) -> APIRouter:
    api = APIRouter()
    readside = known.readside

    @api.get("/v1/resellers/{reseller_id}/deliveries", response_model=None,
             **docs.deliveries_route())
    def deliveries(reseller_id: Annotated[str, RESELLER], who: Authenticated,
                   limit: Annotated[int, Query(ge=1, le=MAX_DELIVERIES)] = 100,
                   message_id: Annotated[str | None, Query(
                       min_length=1, max_length=64, openapi_examples={"message": {
                           "summary": "one message's attempts",
                           "value": "msg_2b1f4c7e9a0d4e6f8a3b5c7d9e1f2a4b"}})] = None,
                   ) -> Response:
        """The delivery log, newest attempt first (one message's, with ``message_id``)."""
        for_reseller(who, reseller_id, "read the deliveries of")
        found = readside.deliveries(reseller_id, limit=limit, message_id=message_id)
        return JSONResponse({"reseller_id": reseller_id, "deliveries": found})

    @api.post("/v1/resellers/{reseller_id}/deliveries/replay", status_code=202,
              response_model=None, **docs.replay_route())
    async def replay(reseller_id: Annotated[str, RESELLER], request: Request,
                     who: Authenticated) -> Response:
        """Re-send a window of the reseller's messages (an admin's key only)."""
        _admin_only(who, reseller_id)
        window: Replay = await _body(request, Replay, "replay")
        await known.registered(reseller_id)
        since = _millis(window.since)
        until = None if window.until is None else _millis(window.until)
        sent = await commands.send(who, reseller_id, "replay", since=since, until=until)
        return JSONResponse({
            "reseller_id": reseller_id, "status": "accepted", "event_id": sent.event_id,
            "since": wire.iso(since), "until": None if until is None else wire.iso(until),
            "consistency_token": sent.token}, status_code=202)

    return api


def _admin_only(who: Caller, reseller_id: str) -> None:
    for_reseller(who, reseller_id, "replay the deliveries of")
    if not who.admin:
        raise ProblemError(problems.forbidden(
            f"key {who.key_id} may not replay deliveries: an operator's (admin) key only"))

