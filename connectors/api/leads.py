"""The leads' routes: a lead with its explanation, a reseller's leads, and answering one.

What a caller sees of a lead depends on who it is: an admin sees the read
model's whole view (every candidate of the last decision with its standing,
the exclusions, the history, the contact e-mail); a reseller sees only the
leads it holds or held, cut down by ``views.seen_by`` to its own part (never
another reseller's id or figures). Other keys read no lead.

An answer is a ``LeadAnswered`` event built from the route and the body and
sent down the same accept path as ``POST /v1/events`` (``Ingest``): the same
holder check against the read model, the same idempotency by ``event_id``, the
same 202-after-the-ack and 503s, the same consistency token.

A reseller's leads route is also its pull feed: with a ``cursor`` it answers
the lead events after it (``feed.page``) instead of the leads held now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from connectors.api import bodies, consistency, feed, openapi, problems
from connectors.api import openapi_webhooks as docs
from connectors.api.auth import Caller
from connectors.api.bearer import Authenticated, for_reseller
from connectors.api.ingest import Ingest
from connectors.api.problems import ProblemError
from connectors.api.readside import ReadSide
from connectors.api.waiting import Changes
from schemas.models import LeadAnswered
from services.readmodel import views
from services.readmodel.queries import MAX_LEADS

#: What the body of an answer may hold; the lead and the reseller come from the route and key.
ANSWER_MEMBERS = ("answer", "reason", "event_id", "occurred_at")
_LEAD_ID = Path(min_length=1, max_length=128, openapi_examples={
    "lead": {"summary": "a lead id", "value": "lead-1"}})


def _shown(who: Caller, view: dict[str, Any], reseller_id: str) -> dict[str, Any]:
    """A lead as ``who`` may see it when it reads as (or for) ``reseller_id``."""
    return view if who.admin else views.seen_by(view, reseller_id)


async def _answering_for(who: Caller, lead_id: str, ingest: Ingest) -> str:
    """The reseller an answer speaks for: the caller's own, or for an admin the holder now
    (a ``ProblemError``: 404/503 for a lead the read model does not know, 409 when nobody
    holds it, 403 for a key that is neither)."""
    if not who.admin:
        if who.reseller_id is None:
            raise ProblemError(problems.forbidden(f"key {who.key_id} may not answer leads"))
        return who.reseller_id  # the ingest checks that it holds the lead
    holder, unknown = await run_in_threadpool(ingest.holder_of, lead_id)
    if unknown is not None:
        raise ProblemError(unknown)
    if holder is None:
        raise ProblemError(problems.conflict(
            f"nobody holds lead {lead_id}: there is no holder to answer for"))
    return holder


def routes(readside: ReadSide, ingest: Ingest, changes: Changes) -> APIRouter:
    """The leads' routes over a read side, answering through ``ingest``."""
    api = APIRouter()

    @api.get("/v1/resellers/{reseller_id}/leads", response_model=None,
             **docs.reseller_leads_route())
    async def reseller_leads(reseller_id: Annotated[str, Path(openapi_examples={
            "reseller": {"summary": "a reseller id", "value": "web-78"}})],
              who: Authenticated,
              limit: Annotated[int, Query(ge=1, le=MAX_LEADS)] = 100,
              cursor: Annotated[str | None, feed.CURSOR] = None,
              wait: Annotated[int, feed.WAIT] = 0) -> Response:
        """The leads a reseller holds now, most recent first; with `cursor`, its pull feed
        (that reseller's key, or an admin's).

        Each lead comes with its status, version, deadline and history. A reseller's
        key sees its own part only: the rule that decided and its own standing in
        that decision, never the other candidates nor any other reseller's id. An
        admin sees the whole view.

        **The pull feed**: with a `cursor` parameter (empty or `start`: from the
        beginning) the answer is instead the reseller's lead events after it, in
        order, the very bodies the webhook push sends (same `id`, so a CRM that reads
        both drops what it already has), with the `next_cursor` of the next call
        (the same one when nothing is new). `limit` is then 1-500. `wait=N` (0-30)
        long-polls: when nothing is new the answer comes as soon as an event arrives,
        or after N seconds, empty. A malformed cursor is a 422.
        """
        for_reseller(who, reseller_id, "read the leads of")
        if cursor is not None:
            events = await feed.page(readside, changes, reseller_id, cursor=cursor, wait=wait,
                                     limit=limit)
            return JSONResponse({"reseller_id": reseller_id, **events})
        found = await run_in_threadpool(readside.leads_for, reseller_id, limit)
        return JSONResponse({"reseller_id": reseller_id,
                             "leads": [_shown(who, view, reseller_id) for view in found]})

    @api.get("/v1/leads/{lead_id}", response_model=None, responses={
        200: {"description": "The lead: an admin's whole view, or a reseller's own part.",
              "content": {"application/json": {"schema": {"anyOf": [
                  openapi.ref("Lead"), openapi.ref("ResellerLead")]}}}},
        **openapi.problem_responses(401, 403, 404, 422, 503, 504)})
    async def lead(lead_id: Annotated[str, _LEAD_ID], who: Authenticated,
                   after: Annotated[str | None, consistency.AFTER] = None,
                   wait: Annotated[int | None, consistency.WAIT] = None) -> Response:
        """A lead, with why it went where it went (an admin's key, or a reseller's).

        An admin sees everything: the last decision's trace (every candidate with
        its weight, share, entitlement, leads received, deficit, open leads and
        capacity; the resellers left out and why; the rule and the winner), the
        resellers that rejected it or let it expire, and the history of its
        changes. A reseller sees a lead only if it holds it or held it (else 403):
        the lead, the rule that decided, its own standing in that decision and the
        changes it took part in; another reseller's id never appears. The contact
        e-mail, the deadline and the last change's reason are shown to the current
        holder only. The id of a duplicate request answers the open lead it
        duplicates, with `requested_as` naming the id asked for.

        **Read your writes**: `after` (the `consistency_token` of a 202, e.g. of an
        answer) waits until the lead reflects that write, `wait` seconds at most
        (default 10), else a 504. `wait` alone waits for a lead not known yet to
        appear instead of answering 404 at once.
        """
        if not who.admin and who.reseller_id is None:
            return problems.respond(problems.forbidden(f"key {who.key_id} may not read leads"))
        await consistency.settle(
            changes, after=after, wait=wait,
            reflects=lambda token: readside.reflects_lead(lead_id, token),
            present=lambda: readside.lead(lead_id) is not None, what=f"lead {lead_id}")
        view = await run_in_threadpool(readside.lead, lead_id)
        if view is None:
            return problems.respond(problems.not_found(f"no lead {lead_id}"))
        if who.reseller_id is not None and not who.admin:
            if who.reseller_id not in view["holders"]:
                return problems.respond(problems.forbidden(
                    f"lead {lead_id} was never assigned to reseller {who.reseller_id}"))
            return JSONResponse(views.seen_by(view, who.reseller_id))
        return JSONResponse(view)

    @api.post("/v1/leads/{lead_id}/answer", status_code=202, response_model=None,
              **openapi.answer_route())
    async def answer(lead_id: Annotated[str, _LEAD_ID], request: Request,
                     who: Authenticated) -> Response:
        """Answer a lead for its holder; 202 once the broker acknowledged the answer."""
        body = bodies.json_object(await bodies.read(request, bodies.MAX_EVENT_BYTES))
        extra = sorted(set(body) - set(ANSWER_MEMBERS))
        if extra:
            return problems.respond(problems.body(
                422, "invalid-input", "Invalid input",
                f"an answer has only {', '.join(ANSWER_MEMBERS)}",
                errors=[{"field": name, "message": "not allowed"} for name in extra]))
        reseller_id = await _answering_for(who, lead_id, ingest)
        try:
            event = LeadAnswered.model_validate({
                "occurred_at": datetime.now(UTC), **body, "source": who.partner,
                "lead_id": lead_id, "reseller_id": reseller_id})
        except ValidationError as exc:
            return problems.invalid(exc.errors(include_input=False),
                                    "the answer breaks the contract; see errors")
        outcome = await ingest.accept_one(who, event)
        if outcome.problem is not None:
            return problems.respond(outcome.problem)
        return JSONResponse(outcome.accepted_body(), status_code=202)

    return api
