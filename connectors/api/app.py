"""The HTTP API: partner events in (202 only after the broker's ack), passports and leads out,
resellers' webhooks managed, their lead events pulled.

``create_app`` builds the whole application from what it is given (settings,
a publisher, a read side, a key ring, an idempotency store, a metrics
registry, a clock): no globals, so tests and the entry point wire it the same
way. Every route but the probes, ``/metrics``, the documents and the KPI page
(``kpi.py``: aggregates only, open by default) needs an API key, and counts against
that key's rate limit (``ratelimit.py``).

Tenants (``keys.py``): a delegation key reads and writes only the businesses of its
départements. The passport of a business elsewhere answers the same 404 as an unknown
one, so that a key cannot tell which SIRENs another département enrolled; a listing
of another département, whose name is in the path, is a 403. Writes are checked by
``Ingest`` on the one accept path every event route shares.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest
from pydantic import TypeAdapter, ValidationError

from connectors.api import (
    bodies,
    consistency,
    feed,
    kpi,
    leads,
    openapi,
    openapi_webhooks,
    problems,
    ratelimit,
)
from connectors.api import webhooks as webhook_routes
from connectors.api.auth import KeyRing
from connectors.api.bearer import Authenticated
from connectors.api.commands import Commands
from connectors.api.idempotency import AcceptedStore
from connectors.api.ingest import EventWriter, Ingest
from connectors.api.ingested import IngestMetrics
from connectors.api.observe import HttpMetrics, Observe
from connectors.api.problems import LastResort
from connectors.api.ratelimit import Limiter
from connectors.api.readside import ReadSide
from connectors.api.waiting import Changes
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.ssrf import Guard
from hub.config import Settings
from hub.probes import Probes
from schemas import asyncapi
from schemas.models import Siren
from schemas.reference import DEPARTEMENTS
from services.readmodel.queries import MAX_PAGE

_SIREN: TypeAdapter[str] = TypeAdapter(Siren)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def create_app(settings: Settings, *, publisher: EventWriter, readside: ReadSide,
               keyring: KeyRing, store: AcceptedStore, registry: CollectorRegistry,
               clock: Callable[[], int] = _wall_ms, limiter: Limiter | None = None) -> FastAPI:
    """The API application, wired to its collaborators (``clock``: epoch ms, for commands;
    ``limiter``: the keys' rate limits, by default the settings' on the monotonic clock)."""
    app = FastAPI(title="passport-hub", version="1", docs_url="/docs", redoc_url=None,
                  description="Partner events in, passports and leads out. Errors are RFC 9457 "
                  "problem details (`application/problem+json`).")
    app.add_middleware(LastResort)
    app.add_middleware(Observe, metrics=HttpMetrics.create(registry))
    problems.install(app)
    openapi.install(app, openapi_webhooks.SCHEMAS)
    _document_rate_limits(app)
    app.state.keyring = keyring
    app.state.limiter = limiter or Limiter.from_settings(settings)
    ingest = Ingest(
        publisher=publisher, readside=readside, store=store,
        ack_timeout_s=settings.produce_timeout_s, topic_prefix=settings.topic_prefix,
        metrics=IngestMetrics.create(registry, "api"))
    changes = Changes(readside.wait_for_change)
    commands = Commands(ingest, Sealer.from_settings(settings), clock)
    app.include_router(leads.routes(readside, ingest, changes))
    app.include_router(webhook_routes.routes(
        readside, commands, changes, guard=Guard.from_settings(settings),
        overlap_ms=int(settings.webhook_rotation_overlap_s * 1000)))
    app.include_router(feed.routes(readside, changes))
    app.include_router(kpi.routes(readside, clock=clock, public=settings.kpi_public))

    @app.post("/v1/events", status_code=202, response_model=None, **openapi.event_route())
    async def ingest_one(request: Request, who: Authenticated) -> Response:
        """Validate one partner event and publish it; 202 once the broker acknowledged."""
        body = await bodies.read(request, bodies.MAX_EVENT_BYTES)
        outcome = await ingest.accept_body(who, body)
        if outcome.problem is not None:
            return problems.respond(outcome.problem)
        return JSONResponse(outcome.accepted_body(), status_code=202)

    @app.post("/v1/events:batch", status_code=202, response_model=None, **openapi.batch_route())
    async def ingest_batch(request: Request, who: Authenticated) -> Response:
        """Validate and publish up to 1,000 events; one result per event, in order."""
        body = await bodies.read(request, bodies.MAX_BATCH_BYTES)
        outcomes = await run_in_threadpool(ingest.accept_batch, who, body)
        statuses = {outcome.status for outcome in outcomes}
        status = 503 if 503 in statuses else 202 if 202 in statuses else 422
        headers = {"Retry-After": str(problems.RETRY_AFTER_S)} if status == 503 else None
        # orjson: a thousand results are ~1 µs an item with json, ~0.3 with orjson.
        return Response(orjson.dumps({"results": [o.as_item(i) for i, o in enumerate(outcomes)]}),
                        status_code=status, headers=headers, media_type="application/json")

    app.include_router(_passport_routes(readside, changes))

    @app.get("/asyncapi.json", include_in_schema=False)
    def asyncapi_document() -> JSONResponse:
        return JSONResponse(asyncapi.document())

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    # Liveness: the process answers, its event loop turns. /healthz is the name it had first.
    @app.get("/livez", include_in_schema=False)
    @app.get("/healthz", include_in_schema=False)
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    # The same checks as every component's (hub.probes), and the same gauges beside them:
    # passport_hub_ready, passport_hub_broker_up and passport_hub_build_info of "api".
    probes = Probes("api", registry, checks={"broker": publisher.ready,
                                            "readmodel": lambda: readside.caught_up,
                                            "store": store.writable})
    Gauge("passport_hub_broker_up",
          "1 when the broker answered the component's last check, 0 otherwise.",
          ["component"], registry=registry).labels("api").set_function(
              lambda: float(publisher.ready()))

    @app.get("/readyz", include_in_schema=False, response_model=None)
    def readyz() -> Response:
        ready, checks = probes.ready()
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                            status_code=200 if ready else 503)

    return app


def _passport_routes(readside: ReadSide, changes: Changes) -> APIRouter:
    """The passports' routes (a business's, a département's) and the programme figures."""
    api = APIRouter()

    @api.get("/v1/passports/{siren}", response_model=None, responses={
        200: openapi.json_response("Passport", "The passport."),
        **openapi.problem_responses(401, 403, 404, 422, 503, 504)})
    async def passport(siren: Annotated[str, Path(openapi_examples={
            "enrolled": {"summary": "a SIREN", "value": "732829320"}})],
                       who: Authenticated,
                       after: Annotated[str | None, consistency.AFTER] = None,
                       wait: Annotated[int | None, consistency.WAIT] = None) -> Response:
        """The latest passport of a business (a delegation's or an admin key).

        A delegation's key reads the businesses of its départements only: another
        département's business answers 404, as an unknown SIREN does.

        **Read your writes**: `after` (the `consistency_token` of a 202, e.g. of an
        enrolment) answers only once the passport reflects that write, waiting
        `wait` seconds at most (default 10; 0-30), else a 504
        `not-yet-consistent`. `wait` alone waits for a passport not known yet
        to appear instead of answering 404 at once.
        """
        try:
            _SIREN.validate_python(siren)
        except ValidationError as exc:
            return problems.invalid(problems.located("siren", exc.errors(include_input=False)),
                                    "not a valid SIREN")
        if not who.reads_passports:
            return problems.respond(problems.forbidden(
                f"key {who.key_id} may not read passports"))

        def shown() -> dict[str, Any] | None:
            found = readside.passport(siren)  # another département's: as if unknown
            return found if found is not None and who.covers(found.get("departement")) else None

        await consistency.settle(
            changes, after=after, wait=wait,
            reflects=lambda token: readside.reflects_passport(siren, token),
            present=lambda: shown() is not None,
            what=f"the passport of {siren}")
        found = await run_in_threadpool(shown)
        if found is None:
            return problems.respond(problems.not_found(f"no passport for SIREN {siren}"))
        return JSONResponse(found)

    @api.get("/v1/delegations/{departement}/passports", response_model=None, responses={
        200: openapi.json_response("PassportPage", "One page of the département's passports."),
        **openapi.problem_responses(401, 403, 404, 422, 503)})
    def delegation_passports(
            departement: Annotated[str, Path(pattern=openapi.DEPARTEMENT_SHAPE, openapi_examples={
                "yvelines": {"summary": "the Yvelines", "value": "78"}})],
            who: Authenticated,
            state: Annotated[Literal["enrolled", "in_training", "passport_issued"] | None,
                             Query()] = None,
            cursor: Annotated[str | None, Query(pattern=r"^[0-9]{9}$")] = None,
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100) -> Response:
        """The passports of a département's businesses, by SIREN, a page at a time.

        A delegation's key for one of its départements (another one is a 403), or
        an admin key. **Cursor pagination**: the answer's
        `next_cursor` (null on the last page) is the `cursor` of the next call.
        Pages are cut by SIREN (keyset), not by offset: a page costs an index
        seek however deep it is, and a business enrolled or moving state while a
        client walks the pages never shifts the rest (no repeats, no gaps among
        those that stay). `limit` is 1-500 (default 100); `total` counts every
        page as it stands now. `state` keeps one state; businesses still
        awaiting their enrolment are never listed. A code that is not shaped
        like a département (`78`, `2A`, `971`) is a 422; one shaped like it that
        the reference data does not know (`20`, `975`) is a 404.
        """
        if not who.reads_passports:
            return problems.respond(problems.forbidden(
                f"key {who.key_id} may not read passports"))
        if not who.covers(departement):
            return problems.respond(problems.forbidden(
                f"key {who.key_id} may not read the passports of département {departement}"))
        if departement not in DEPARTEMENTS:
            return problems.respond(problems.not_found(f"no département {departement}"))
        page = readside.passports_in(departement, state=state, after=cursor, limit=limit)
        return JSONResponse({"departement": departement, "state": state, "limit": limit,
                             **page})

    @api.get("/v1/stats", response_model=None, responses={
        200: openapi.json_response("Stats", "The programme figures."),
        **openapi.problem_responses(401, 403, 503)})
    def stats(who: Authenticated) -> Response:
        """The programme figures (a delegation's or an admin key).

        Passports issued against the **150,000** target of the 2009-2011
        convention, nationally (`share_of_target`), and by région and by
        département with the businesses enrolled. Only the national target
        exists, so a région's or a département's `share_of_national_target` is
        its issued passports over the same 150,000: its contribution to the
        national goal. Then the businesses that completed each module, and the
        quality referential: trainees' feedback (count and average score, 1-5)
        per module, per trainer organisation and per delegation. Last the leads:
        how many stand in each status now (`by_status`; `open` is assigned,
        accepted and queued), the reassignments and SLA breaches so far, and the
        rejections by reason code; no reseller is named. The figures are
        kept as the snapshots arrive, so this answer costs one small table read.
        """
        if not who.reads_passports:
            return problems.respond(problems.forbidden(
                f"key {who.key_id} may not read the programme figures"))
        return JSONResponse(readside.stats())

    return api


def _document_rate_limits(app: FastAPI) -> None:
    """Make the OpenAPI document show the 429 of every limited route (``ratelimit.document``)."""
    built = app.openapi

    def openapi() -> dict[str, Any]:
        return ratelimit.document(built())  # idempotent: the document is built once

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way
