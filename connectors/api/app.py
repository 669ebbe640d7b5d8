"""The HTTP API: partner events in (202 only after the broker's ack), passports and leads out.

``create_app`` builds the whole application from what it is given (settings,
a publisher, a read model, a metrics registry): no globals, so tests and the
entry point wire it the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import TypeAdapter, ValidationError

from connectors.api import problems
from connectors.api.observe import HttpMetrics, Observe
from connectors.contract import Sink
from hub import logs
from hub.config import Settings
from hub.errors import BrokerUnavailable
from schemas.models import EVENT_ADAPTER, ResellerId, Siren

#: Largest event body accepted: events are a few hundred bytes; this only stops abuse.
MAX_BODY_BYTES = 64 * 1024

_SIREN: TypeAdapter[str] = TypeAdapter(Siren)
_RESELLER: TypeAdapter[str] = TypeAdapter(ResellerId)


class ReadSide(Protocol):
    """What the API needs from the read model (``services.readmodel.ReadModel``)."""

    @property
    def caught_up(self) -> bool: ...

    def passport(self, siren: str) -> dict[str, Any] | None: ...

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]: ...


def create_app(settings: Settings, *, publisher: Sink, readmodel: ReadSide,
               registry: CollectorRegistry) -> FastAPI:
    """The API application, wired to its collaborators."""
    log = logs.get().bind(component="api")
    app = FastAPI(title="passport-hub", version="1", docs_url="/docs", redoc_url=None)
    app.add_middleware(Observe, metrics=HttpMetrics.create(registry))
    problems.install(app)

    @app.post("/v1/events", status_code=202, response_model=None)
    async def ingest(request: Request) -> Response:
        """Validate one partner event and publish it; 202 once the broker acknowledged."""
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return problems.problem(413, "too-large", "Body too large",
                                    f"an event body is at most {MAX_BODY_BYTES} bytes")
        try:
            event = EVENT_ADAPTER.validate_json(body)
        except ValidationError as exc:
            errors = exc.errors(include_input=False)
            if any(error["type"] == "json_invalid" for error in errors):
                return problems.problem(400, "malformed-json", "Malformed JSON",
                                        "the body is not a JSON document")
            # Field names only: the values may be contact data.
            log.info("ingest.rejected", fields=[e["field"] for e in problems.field_errors(errors)])
            return problems.invalid(errors, "the event breaks the contract; see errors")
        try:
            # Kafka's client blocks: keep it off the event loop.
            await run_in_threadpool(publisher.publish, event)
        except BrokerUnavailable as exc:
            log.warning("ingest.unavailable", topic=event.TOPIC, event_id=str(event.event_id),
                        error=type(exc.__cause__ or exc).__name__)
            return problems.unavailable("the event broker did not acknowledge in time; "
                                        "nothing was accepted, retry later")
        topic = settings.topic(event.TOPIC)
        log.debug("ingest.accepted", topic=topic, event_id=str(event.event_id))
        return JSONResponse({"event_id": str(event.event_id), "topic": topic,
                             "status": "accepted"}, status_code=202)

    @app.get("/v1/passports/{siren}", response_model=None)
    def passport(siren: str) -> Response:
        """The latest passport of a business."""
        try:
            _SIREN.validate_python(siren)
        except ValidationError as exc:
            return problems.invalid(_located("siren", exc), "not a valid SIREN")
        found = readmodel.passport(siren)
        if found is None:
            return problems.problem(404, "not-found", "Not found",
                                    f"no passport for SIREN {siren}")
        return JSONResponse(found)

    @app.get("/v1/resellers/{reseller_id}/leads", response_model=None)
    def leads(reseller_id: str,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
        """The leads a reseller holds, most recent first."""
        try:
            _RESELLER.validate_python(reseller_id)
        except ValidationError as exc:
            return problems.invalid(_located("reseller_id", exc), "not a valid reseller id")
        return JSONResponse({"reseller_id": reseller_id,
                             "leads": readmodel.leads_for(reseller_id, limit)})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False, response_model=None)
    def readyz() -> Response:
        checks = {"broker": publisher.ready(), "readmodel": readmodel.caught_up}
        ready = all(checks.values())
        return JSONResponse({"status": "ready" if ready else "not_ready", "checks": checks},
                            status_code=200 if ready else 503)

    return app


def _located(name: str, exc: ValidationError) -> list[dict[str, Any]]:
    """A single-value check's errors, placed at the parameter ``name``."""
    return [{**error, "loc": (name, *error["loc"])} for error in exc.errors(include_input=False)]
