"""The programme's KPI page: ``GET /kpi`` (the page), ``/kpi/data.json`` (its figures) and
``/kpi/assets/*`` (its script, style sheet and icon).

For programme managers (docs/architecture.md "Users"): passports issued over time
against the 150,000 target, by région, businesses per module, the quality
referential, leads by outcome and by reseller. The figures are the read model's
(``services.readmodel.kpi``); the page draws them in the browser with the hub's
own small script (``static/kpi.js``, SVG, French labels and number formats).

**Open by default**: the page and its data carry aggregates only — no SIREN, no
business, no contact data; resellers appear by name with their lead figures, the
programme's own account of them. A dev stack shows them to whoever reaches the
API port. ``routes(public=False)`` asks for a delegation's or an admin key, as
``GET /v1/stats`` does (a browser sends no bearer token on its own: such a
deployment puts a proxy that adds one in front of the page).

**Nothing from elsewhere**: every asset is served here, and the page says so to
the browser with ``Content-Security-Policy: default-src 'self'``, under which it
refuses any script, style, font or request from another origin (and any inline
script or style). The figures are inlined into the page as a JSON data block,
which the policy does not treat as a script, so the page draws at once from one
request; the script then refreshes them from ``data.json`` every minute.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, JSONResponse, Response

from connectors.api import problems
from connectors.api.bearer import Authenticated
from connectors.api.problems import ProblemError
from connectors.api.readside import ReadSide

#: What the browser may load for the page: this origin only, nothing inline, no framing.
POLICY = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_PAGE_HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff",
                 "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml"}
_TEMPLATE = "kpi.html"
_DATA_MARK = "__KPI_DATA__"


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of ``static/`` as served: its bytes, type and content version."""

    body: bytes
    media_type: str
    version: str


def _assets() -> dict[str, Asset]:
    static = files("connectors.api") / "static"
    out = {}
    for entry in static.iterdir():
        suffix = entry.name[entry.name.rfind("."):]
        if suffix in _TYPES:
            body = entry.read_bytes()
            out[entry.name] = Asset(body, _TYPES[suffix], hashlib.sha256(body).hexdigest()[:12])
    return out


#: The page's assets by file name, read once: they are the package's, not data.
ASSETS: Mapping[str, Asset] = _assets()


def _template() -> str:
    """The page with each asset's URL versioned by its content (cached for a day safely)."""
    text = (files("connectors.api") / "static" / _TEMPLATE).read_text(encoding="utf-8")
    for name, asset in ASSETS.items():
        text = text.replace(f"kpi/assets/{name}\"", f"kpi/assets/{name}?v={asset.version}\"")
    return text


_PAGE = _template()


def inline_json(document: Mapping[str, Any]) -> str:
    """A document as JSON safe inside a ``<script type="application/json">`` block: no
    ``<``, ``>`` or ``&`` a reseller's name could use to close the block early."""
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(document: Mapping[str, Any]) -> str:
    """The page with its figures inlined."""
    return _PAGE.replace(_DATA_MARK, inline_json(document))


def data(readside: ReadSide, clock: Callable[[], int]) -> dict[str, Any]:
    """The page's data document: the read model's KPI figures, when and how complete."""
    at = datetime.fromtimestamp(clock() / 1000, tz=UTC).isoformat(timespec="seconds")
    return {"generated_at": at, "caught_up": readside.caught_up, **readside.kpi()}


async def _reader(who: Authenticated) -> None:
    if not who.reads_passports:
        raise ProblemError(problems.forbidden(
            f"key {who.key_id} may not read the programme figures"))


def routes(readside: ReadSide, *, clock: Callable[[], int], public: bool = True) -> APIRouter:
    """The KPI routes (left out of the OpenAPI document: a page, not an API)."""
    router = APIRouter(include_in_schema=False)
    guard = [] if public else [Depends(_reader)]

    @router.get("/kpi", dependencies=guard)
    def page() -> Response:
        return HTMLResponse(render(data(readside, clock)), headers=_PAGE_HEADERS)

    @router.get("/kpi/data.json", dependencies=guard)
    def figures() -> Response:
        return JSONResponse(data(readside, clock), headers={"Cache-Control": "no-store"})

    @router.get("/kpi/assets/{name}")
    def asset(name: str, v: str | None = None) -> Response:
        found = ASSETS.get(name)
        if found is None:
            return problems.respond(problems.not_found(f"no KPI page asset {name}"))
        # A versioned URL names this content for good; an unversioned one is revalidated.
        cache = "public, max-age=86400" if v == found.version else "no-cache"
        return Response(found.body, media_type=found.media_type,
                        headers={"Cache-Control": cache, "X-Content-Type-Options": "nosniff",
                                 "ETag": f'"{found.version}"'})

    return router
