"""The pull feed: the lead events a CRM would have been pushed, after a cursor, long-polled.

A CRM that cannot take webhooks (or wants to catch up after an outage) reads
the same events the push sends (``schemas.webhooks.lead_events``: same ids,
same bodies, same order) with ``GET /v1/resellers/{id}/leads?cursor=…``. The
answer's ``next_cursor`` is the next call's ``cursor``; an empty cursor (or
``start``) reads from the beginning. With ``wait=N`` a call that finds
nothing new waits up to N seconds for something to arrive, and answers as
soon as it does (``waiting.Changes``), else empty with the same cursor.
Cursors come from the leads topic's offsets, so they stay valid across every
rebuild of the read model. An admin reads every reseller's events at
``GET /v1/lead-events``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from connectors.api import openapi_webhooks as docs
from connectors.api import problems
from connectors.api.bearer import Authenticated
from connectors.api.consistency import MAX_WAIT_S
from connectors.api.problems import ProblemError
from connectors.api.readside import ReadSide
from connectors.api.waiting import Changes

#: Most events one answer holds.
MAX_EVENTS = 500
#: The cursor values that mean "from the beginning".
START = ("", "start")

CURSOR = Query(max_length=200, description="Read the feed after this cursor (the previous "
               "answer's `next_cursor`; empty or `start`: from the beginning).",
               openapi_examples={"start": {"summary": "from the beginning", "value": "start"}})
WAIT = Query(ge=0, le=MAX_WAIT_S, description="With `cursor`: seconds to wait for an event "
             f"when none is new (0-{MAX_WAIT_S}); the answer comes as soon as one is.")


async def page(readside: ReadSide, changes: Changes, reseller_id: str | None, *,
               cursor: str, wait: int, limit: int) -> dict[str, Any]:
    """The events after ``cursor`` (``{"events", "next_cursor"}``), waiting up to ``wait`` s
    for one; a 422 ``ProblemError`` for a limit over ``MAX_EVENTS`` or a malformed cursor."""
    if limit > MAX_EVENTS:
        raise ProblemError(problems.body(
            422, "invalid-input", "Invalid input", "the feed's pages are smaller",
            errors=[{"field": "limit", "message": f"at most {MAX_EVENTS} with a cursor"}]))
    after = None if cursor in START else cursor
    last: list[dict[str, Any]] = []

    def probe() -> dict[str, Any] | None:
        found = readside.lead_feed(reseller_id, cursor=after, limit=limit)
        last[:] = [found]
        return found if found["events"] else None

    try:
        found = await changes.until(probe, wait)
    except ValueError as exc:
        raise ProblemError(problems.body(
            422, "invalid-input", "Invalid input", "not a cursor of this feed",
            errors=[{"field": "cursor", "message": str(exc)}])) from exc
    result = found or last[0]
    return {"events": result["events"], "next_cursor": result["next_cursor"]}


def routes(readside: ReadSide, changes: Changes) -> APIRouter:
    """The admin's feed of every reseller's events (a reseller's is on its leads route)."""
    api = APIRouter()

    @api.get("/v1/lead-events", response_model=None, **docs.all_events_route())
    async def lead_events(who: Authenticated,
                          cursor: Annotated[str, CURSOR] = "",
                          wait: Annotated[int, WAIT] = 0,
                          limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 100) -> Response:
        """Every reseller's lead events after a cursor, long-polled (an admin's key only).

        The same events, bodies and cursors as each reseller's feed
        (`GET /v1/resellers/{id}/leads?cursor=`), all resellers' in one order, each
        naming its `reseller_id`.
        """
        if not who.admin:
            raise ProblemError(problems.forbidden(
                f"key {who.key_id} may not read every reseller's events: an admin's key only"))
        return JSONResponse(await page(readside, changes, None, cursor=cursor, wait=wait,
                                       limit=limit))

    return api
