"""The auth matrix: every role x every route x its own tenant's data and another's.

The cells are generated from the app itself: every route of ``app.routes``
(``iter_route_contexts`` opens the included routers; a new route is a new
row, and fails until ``POLICY`` says who may call it),
its path parameters filled with the calling tenant's or the other tenant's
values, its documented body (the OpenAPI document's ``requestBody``) built
for that tenant, and a variant per documented query example (the feed's
``cursor``, a read's ``after``). The two event routes take one variant per
event type, plus the ways a delegation could reach another département's
business (re-enrolling it into its own).

The app is the real one (``create_app``, in process) over fakes of our own
interfaces: a read side holding two tenants' data built with the read
model's own views (``services.readmodel.views``), and the fake publisher of
tests/unit/test_api_webhooks.py, which records every record written. Each
cell checks the answer (401/403/404 against 2xx), that no 2xx a bound key
gets carries the other tenant's data, and that nothing written is for a
tenant the key is not bound to: the cross-tenant reads and writes, both 0.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from prometheus_client import CollectorRegistry

from connectors.api import create_app, keys
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.api.ratelimit import Limit, Limiter
from connectors.publish import Record
from hub.config import Settings
from schemas import catalog
from schemas.models import EXAMPLES
from services.readmodel import views
from services.readmodel.consistency import Token
from tests.integration.test_readmodel import passport_datum
from tests.unit.test_api_webhooks import CODEC, SECRET_KEY, Writer

NOW_MS = 1_767_261_600_000  # 2026-01-01T10:00:00Z
DEV = "matrix-dev-key"
OWN, OTHER = "own", "other"
TENANCIES = (OWN, OTHER)

# The two tenants of each kind: the calling key's (own) and another's.
SIREN = {OWN: "732829320", OTHER: "552100554"}
DEPARTEMENT = {OWN: "78", OTHER: "95"}
ORG = {OWN: "Formateurs Alpha", OTHER: "Formateurs Bravo"}
RESELLER = {OWN: "web-78", OTHER: "paris-web"}
LEAD = {OWN: "lead-alpha", OTHER: "lead-bravo"}
NAME = {OWN: "Entreprise Alpha", OTHER: "Entreprise Bravo"}
CONTACT = {OWN: "alpha@example.fr", OTHER: "bravo@example.fr"}
HOOK = {tenancy: f"http://127.0.0.1:8099/hooks/{RESELLER[tenancy]}" for tenancy in TENANCIES}

#: Every role: the keys of the three tenant-bound kinds, an admin's, the dev key, the
#: three ways of holding no valid key, and a delegation key from a keys file of before the
#: binding (unbound: unrestricted within its role, as documented in connectors/api/keys.py).
BOUND = ("delegation", "trainer", "reseller")
ADMINS = ("admin", "dev")
KEYLESS = ("no key", "revoked", "expired")
UNBOUND = "unbound delegation"
ROLES = (*BOUND, *ADMINS, *KEYLESS, UNBOUND)

#: What another tenant's data looks like in an answer, for each bound role.
FOREIGN = {"delegation": (SIREN[OTHER], NAME[OTHER], CONTACT[OTHER]),
           "trainer": (SIREN[OTHER], NAME[OTHER], RESELLER[OTHER], LEAD[OTHER]),
           "reseller": (RESELLER[OTHER], LEAD[OTHER], CONTACT[OTHER], HOOK[OTHER])}


# -- who may call what ------------------------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    """Who may call a route: the admins' answer, and each bound role's (own, other); a bound
    role not named is a 403 either way. ``public``: no key needed (200 for everyone)."""

    ok: int = 200
    bound: tuple[tuple[str, tuple[int, int]], ...] = ()
    public: bool = False


PUBLIC = Rule(public=True)
#: Per route: a reseller's route (its own, not another's), an admin's, a delegation's.
RESELLER_ONLY_OWN = (("reseller", (200, 403)),)
POLICY: dict[str, Rule] = {
    "GET /livez": PUBLIC, "GET /healthz": PUBLIC, "GET /readyz": PUBLIC, "GET /metrics": PUBLIC,
    "GET /openapi.json": PUBLIC, "GET /docs": PUBLIC, "GET /docs/oauth2-redirect": PUBLIC,
    "GET /asyncapi.json": PUBLIC, "GET /kpi/assets/{name}": PUBLIC,
    # GET /kpi and /kpi/data.json: kpi_rule (they depend on kpi_public).
    "GET /v1/passports/{siren}": Rule(bound=(("delegation", (200, 404)),)),
    "GET /v1/delegations/{departement}/passports": Rule(bound=(("delegation", (200, 403)),)),
    "GET /v1/stats": Rule(bound=(("delegation", (200, 200)),)),
    "GET /v1/resellers/{reseller_id}/leads": Rule(bound=RESELLER_ONLY_OWN),
    "GET /v1/leads/{lead_id}": Rule(bound=RESELLER_ONLY_OWN),
    "POST /v1/leads/{lead_id}/answer": Rule(202, (("reseller", (202, 403)),)),
    "PUT /v1/resellers/{reseller_id}/webhook": Rule(202, (("reseller", (202, 403)),)),
    "GET /v1/resellers/{reseller_id}/webhook": Rule(bound=RESELLER_ONLY_OWN),
    "POST /v1/resellers/{reseller_id}/webhook/rotate": Rule(202, (("reseller", (202, 403)),)),
    "POST /v1/resellers/{reseller_id}/webhook/test": Rule(202, (("reseller", (202, 403)),)),
    "GET /v1/resellers/{reseller_id}/deliveries": Rule(bound=RESELLER_ONLY_OWN),
    "POST /v1/resellers/{reseller_id}/deliveries/replay": Rule(202),
    "GET /v1/lead-events": Rule(),
    # The event routes: expected_event (by event type).
    "POST /v1/events": Rule(202), "POST /v1/events:batch": Rule(202),
}
EVENT_ROUTES = ("POST /v1/events", "POST /v1/events:batch")


def policy(kpi_public: bool) -> dict[str, Rule]:
    """``POLICY`` and the KPI page's two routes: open, or a delegation's or an admin key."""
    kpi = PUBLIC if kpi_public else Rule(bound=(("delegation", (200, 200)),))
    return {**POLICY, "GET /kpi": kpi, "GET /kpi/data.json": kpi}


def expected(rule: Rule, role: str, tenancy: str) -> int:
    if rule.public:
        return 200
    if role in KEYLESS:
        return 401
    if role in ADMINS:
        return rule.ok
    if role == UNBOUND:  # a delegation's rights, whichever département
        return dict(rule.bound).get("delegation", (403, 403))[0]
    own, other = dict(rule.bound).get(role, (403, 403))
    return own if tenancy == OWN else other


def expected_event(role: str, event_type: str, tenancy: str) -> int:
    """A role's answer to an event: 202 for its own type and tenant, 403 for another's
    tenant or a type outside its scopes (the admins: 202 for every one)."""
    if role in KEYLESS:
        return 401
    if role in ADMINS:
        return 202
    if event_type not in keys.ROLES["delegation" if role == UNBOUND else role]:
        return 403
    return 202 if tenancy == OWN or role == UNBOUND else 403


# -- the two tenants' data --------------------------------------------------------------------

def _lead_view(tenancy: str) -> dict[str, Any]:
    """A lead as the read model shows an admin: the decision names both resellers, and the
    own tenant's lead came from the other reseller (reassigned), so that a reseller's view of
    it has another reseller's id to hide."""
    holder, previous = RESELLER[tenancy], RESELLER[OTHER if tenancy == OWN else OWN]
    at = datetime(2026, 1, 1, 9, tzinfo=UTC)
    candidates = [{"reseller_id": r, "weight": 1, "share": 0.5, "entitlement": 1.0,
                   "received": 3, "deficit": 0.1, "open": 1, "capacity": 10}
                  for r in (RESELLER[OWN], RESELLER[OTHER])]
    datum = {"event_id": str(uuid.uuid4()), "occurred_at": at, "lead_id": LEAD[tenancy],
             "siren": SIREN[tenancy], "business_name": NAME[tenancy], "category": "e-commerce",
             "departement": DEPARTEMENT[tenancy], "region": "11", "status": "assigned",
             "change": "reassigned" if tenancy == OWN else "assigned", "version": 2,
             "reseller_id": holder, "previous_reseller_id": previous if tenancy == OWN else None,
             "rule": "departement", "candidates": [holder, previous],
             "decision": {"rule": "departement", "scope": DEPARTEMENT[tenancy], "winner": holder,
                          "candidates": candidates, "excluded": []},
             "contact_email": CONTACT[tenancy], "deadline_at": at + timedelta(days=2)}
    return views.lead(datum)


class World:
    """The read side of two tenants of each kind (``ReadSide``), always caught up."""

    caught_up = True

    def __init__(self) -> None:
        self.passports = {SIREN[t]: views.passport({
            **passport_datum(SIREN[t], departement=DEPARTEMENT[t]), "name": NAME[t],
            "contact_email": CONTACT[t]}) for t in TENANCIES}
        self.leads = {LEAD[t]: _lead_view(t) for t in TENANCIES}
        self.endpoints = {RESELLER[t]: {
            "reseller_id": RESELLER[t], "url": HOOK[t], "enabled": True,
            "disabled_reason": None, "failing_since": None, "version": 1,
            "secrets": [{"fingerprint": f"fp{t}", "created_at": None, "expires_at": None}],
            "updated_at": None} for t in TENANCIES}

    def departement(self, siren: str) -> str | None:
        found = self.passports.get(siren)
        return None if found is None else str(found["departement"])

    def passport(self, siren: str) -> dict[str, Any] | None:
        return self.passports.get(siren)

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return [v for v in self.leads.values() if v["reseller_id"] == reseller_id][:limit]

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        return self.leads.get(lead_id)

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        found = self.leads.get(lead_id)
        return (found is not None, None if found is None else found["reseller_id"])

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        found = [p for p in self.passports.values() if p["departement"] == departement]
        return {"passports": found, "next_cursor": None, "total": len(found)}

    def stats(self) -> dict[str, Any]:
        return {"passports_issued": 0, "target": 150_000}

    def kpi(self) -> dict[str, Any]:
        return {"passports_issued": 0}

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        return self.endpoints.get(reseller_id)

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        endpoint = self.endpoints.get(reseller_id)
        return [] if endpoint is None else [{
            "message_id": message_id or "msg_1", "type": "lead.assigned", "attempt": 1,
            "lead_id": next((v["lead_id"] for v in self.leads_for(reseller_id)), None),
            "url": endpoint["url"], "outcome": "delivered", "http_status": 200}]

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        events = [{"id": f"evt-{v['lead_id']}", "reseller_id": v["reseller_id"],
                   "lead_id": v["lead_id"], "contact_email": v["contact_email"]}
                  for v in self.leads.values()
                  if reseller_id is None or v["reseller_id"] == reseller_id]
        return {"events": events, "next_cursor": "c1"}

    def wait_for_change(self, timeout_s: float) -> bool:
        time.sleep(min(timeout_s, 0.01))
        return False

    def reflects_passport(self, siren: str, token: Token) -> bool:
        return True

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        return True


# -- the requests -----------------------------------------------------------------------------

#: Each path parameter's value for the own and the other tenant.
PATH_VALUES: dict[str, dict[str, str]] = {
    "siren": SIREN, "departement": DEPARTEMENT, "reseller_id": RESELLER, "lead_id": LEAD,
    "name": {OWN: "kpi.js", OTHER: "kpi.js"}}


def event(event_type: str, tenancy: str, *, into: str | None = None) -> dict[str, Any]:
    """A valid event of ``event_type`` about the ``tenancy`` tenant's business, organisation
    or reseller (``into``: an enrolment's département, if not the business's own)."""
    body = {k: v for k, v in EXAMPLES[event_type].items() if k != "siret"}
    body.update(event_id=str(uuid.uuid4()), occurred_at=datetime.now(UTC).isoformat())
    if "siren" in body:
        body["siren"] = SIREN[tenancy]
    if "departement" in body:
        body["departement"] = into or DEPARTEMENT[tenancy]
    if "trainer_org" in body:
        body["trainer_org"] = ORG[tenancy]
    if "reseller_id" in body:
        body["reseller_id"] = RESELLER[tenancy]
    if "lead_id" in body:
        body["lead_id"] = LEAD[tenancy]
    return body


@dataclass(frozen=True)
class Variant:
    """One way of calling a route: a name, its query, and its body for a tenancy."""

    name: str
    query: tuple[tuple[str, str], ...] = ()
    event_type: str | None = None
    into_own: bool = False

    def body(self, schema: str | None, tenancy: str) -> Any:
        if schema is None:
            return None
        if schema in ("Event", "Batch"):
            assert self.event_type is not None
            one = event(self.event_type, tenancy,
                        into=DEPARTEMENT[OWN] if self.into_own else None)
            return one if schema == "Event" else {"events": [one]}
        bodies: dict[str, Any] = {
            "LeadAnswer": {"answer": "accepted"},
            "WebhookRegistration": {"url": HOOK[tenancy]},
            "Replay": {"since": "2025-12-01T00:00:00Z"}}
        assert schema in bodies, f"the matrix cannot build a {schema} body: add it"
        return bodies[schema]


def variants(operation: dict[str, Any] | None, schema: str | None) -> list[Variant]:
    """The route as is, one variant per documented query example (but ``wait``), and for
    the event routes one per event type (and a re-enrolment into the caller's own
    département of the other's business)."""
    if schema in ("Event", "Batch"):
        found = [Variant(f"type={t}", event_type=t) for t in EXAMPLES]
        return [*found, Variant("type=business_enrolled into own département",
                                event_type="business_enrolled", into_own=True)]
    found = [Variant("plain")]
    for parameter in (operation or {}).get("parameters", []):
        if parameter["in"] != "query" or parameter["name"] == "wait":
            continue
        for example in parameter.get("examples", {}).values():
            found.append(Variant(f"{parameter['name']}=…",
                                 ((parameter["name"], str(example["value"])),)))
    return found


def body_schema(operation: dict[str, Any] | None) -> str | None:
    content = (operation or {}).get("requestBody", {}).get("content", {})
    if not content:
        return None
    ref: str = content["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def path_names(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)


def routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves (HEAD aside: Starlette adds it to every GET),
    the included routers' routes too (``iter_route_contexts`` flattens them)."""
    found = {(method, route.path) for route in iter_route_contexts(app.routes)
             if route.path is not None
             for method in route.methods or () if method != "HEAD"}
    return sorted(found, key=lambda pair: (pair[1], pair[0]))


# -- the tenant of what was written -----------------------------------------------------------

def decoded(record: Record) -> dict[str, Any]:
    """A record the fake publisher got: an event's JSON, or a webhook command's Avro."""
    if record.topic == catalog.WEBHOOK_COMMANDS:
        return dict(CODEC.decode(record.value, millis=True).datum)
    loaded: dict[str, Any] = json.loads(record.value)
    return loaded


def foreign_write(role: str, datum: dict[str, Any], world: World) -> str | None:
    """Why a record written by a bound role's key is another tenant's, or None."""
    kind = datum.get("type", "webhook_command")
    if role == "reseller":
        if datum.get("reseller_id") != RESELLER[OWN]:
            return f"{kind} for reseller {datum.get('reseller_id')}"
        return None
    if role == "trainer":
        named = datum.get("trainer_org")
        return None if named in (None, ORG[OWN]) else f"{kind} for {named}"
    departements = {world.departement(str(datum.get("siren"))), datum.get("departement")}
    foreign = {str(d) for d in departements if d is not None} - {DEPARTEMENT[OWN]}
    return f"{kind} for département {sorted(foreign)}" if foreign else None


# -- the app and its keys ---------------------------------------------------------------------

@dataclass
class Harness:
    app: FastAPI
    tokens: dict[str, str]
    world: World
    writer: Writer
    document: dict[str, Any]
    policy: dict[str, Rule]
    only: frozenset[str] | None
    """The routes this app's matrix runs (None: all): with the KPI page behind a key, the
    routes whose rule that changes; the rest is the other app's matrix."""


@pytest.fixture(params=[True, False], ids=["kpi public", "kpi behind a key"])
def harness(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    public: bool = request.param
    now_s = NOW_MS / 1000
    later = datetime.fromtimestamp(now_s, UTC) + timedelta(days=30)
    tokens: dict[str, str] = {}
    stored = []
    minted = {
        "delegation": keys.mint("cefac-78", "delegation", departements=[DEPARTEMENT[OWN]],
                                expires_at=later),
        "trainer": keys.mint("alpha", "trainer", trainer_org=ORG[OWN]),
        "reseller": keys.mint(RESELLER[OWN], "reseller", RESELLER[OWN]),
        "admin": keys.mint("ops", "admin"),
        UNBOUND: keys.mint("cefac-legacy", "delegation"),
        "revoked": keys.mint("cefac-78-old", "delegation", departements=[DEPARTEMENT[OWN]]),
        "expired": keys.mint("cefac-78-past", "delegation", departements=[DEPARTEMENT[OWN]],
                             expires_at=datetime.fromtimestamp(now_s - 1, UTC)),
    }
    for role, (token, key) in minted.items():
        tokens[role] = token
        stored.append(key)
    tokens["dev"] = DEV
    path = tmp_path / "keys.json"
    keys.save(path, stored)
    ring = KeyRing(path, DEV, clock=lambda: now_s)
    assert ring.caller(tokens["revoked"]) is not None, "the revoked key worked before"
    assert keys.main(["revoke", "--key-id", minted["revoked"][1].key_id, "--file", str(path)]) == 0
    monkeypatch.setattr("connectors.api.auth.RELOAD_EVERY_S", 0.0)  # the ring sees it at once

    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", data_dir=tmp_path,
                        webhook_secret_key=SECRET_KEY, webhook_allow_hosts="127.0.0.1",
                        kpi_public=public)
    world, writer = World(), Writer()
    store = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600)
    app = create_app(settings, publisher=writer, readside=world, keyring=ring, store=store,
                     registry=CollectorRegistry(), clock=lambda: NOW_MS,
                     limiter=Limiter(Limit(0.0, 1)))  # the limits' own tests: test_ratelimit
    try:
        changed = frozenset(k for k, rule in policy(public).items() if rule != policy(True)[k])
        yield Harness(app, tokens, world, writer, app.openapi(), policy(public),
                      None if public else changed)
    finally:
        store.close()


# -- the matrix -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """One request of the matrix: a route, a way of calling it, a role, a tenancy."""

    method: str
    path: str
    schema: str | None
    variant: Variant
    role: str
    tenancy: str

    @property
    def route(self) -> str:
        return f"{self.method} {self.path}"

    def __str__(self) -> str:
        return f"{self.route} [{self.variant.name}] {self.role} x {self.tenancy}"

    def url(self) -> str:
        url = self.path
        for name in path_names(self.path):
            assert name in PATH_VALUES, f"{self.route}: no values for {{{name}}}"
            url = url.replace(f"{{{name}}}", PATH_VALUES[name][self.tenancy])
        return url

    def expected(self, rule: Rule) -> int:
        if self.route in EVENT_ROUTES:
            assert self.variant.event_type is not None
            return expected_event(self.role, self.variant.event_type, self.tenancy)
        return expected(rule, self.role, self.tenancy)


def cells(h: Harness) -> Iterator[Cell]:
    """Every cell: each route the app serves, in each of its variants, for each role and
    tenancy."""
    for method, path in routes(h.app):
        if h.only is not None and f"{method} {path}" not in h.only:
            continue
        operation = h.document["paths"].get(path, {}).get(method.lower())
        schema = body_schema(operation)
        for variant in variants(operation, schema):
            for role in ROLES:
                for tenancy in TENANCIES:
                    yield Cell(method, path, schema, variant, role, tenancy)


@dataclass
class Tally:
    """What the matrix found: its size, and every cell that went wrong, by how."""

    cells: int = 0
    allowed: int = 0
    refused: int = 0
    wrong: list[str] = field(default_factory=list)
    foreign_reads: list[str] = field(default_factory=list)
    foreign_writes: list[str] = field(default_factory=list)

    def judge(self, h: Harness, cell: Cell, response: httpx.Response,
              written: list[Record]) -> None:
        rule = h.policy[cell.route]
        got, want = answer_of(response, cell.route == EVENT_ROUTES[1]), cell.expected(rule)
        self.cells += 1
        if got != want:
            self.wrong.append(f"{cell}: {got}, expected {want}: {response.text[:200]}")
        if 200 <= got < 300:
            self.allowed += 1
        else:
            self.refused += 1
        if cell.role in KEYLESS:
            self.foreign_writes += [f"{cell}: wrote without a key" for _ in written]
        if cell.role not in BOUND:
            return
        if response.is_success and not rule.public:
            self.foreign_reads += [f"{cell}: shows {marker}" for marker in FOREIGN[cell.role]
                                   if marker in response.text]
        for record in written:
            why = foreign_write(cell.role, decoded(record), h.world)
            if why is not None:
                self.foreign_writes.append(f"{cell}: wrote {why}")


def answer_of(response: httpx.Response, batch: bool) -> int:
    """A cell's answer: the status, or a batch's one item's status."""
    if batch and response.status_code in (202, 422) and "results" in response.text:
        return int(response.json()["results"][0]["status"])
    return int(response.status_code)


async def run(h: Harness) -> Tally:
    """Every cell, in process (httpx's ASGI transport: no socket, the whole app)."""
    tally = Tally()
    transport = httpx.ASGITransport(app=h.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as client:
        for cell in cells(h):
            headers = {} if cell.role == "no key" else {
                "Authorization": f"Bearer {h.tokens[cell.role]}"}
            before = len(h.writer.published)
            response = await client.request(
                cell.method, cell.url(), params=dict(cell.variant.query), headers=headers,
                json=cell.variant.body(cell.schema, cell.tenancy))
            tally.judge(h, cell, response, h.writer.published[before:])
    return tally


def test_every_route_has_its_rule(harness: Harness) -> None:
    """A route the policy does not know fails here, before the matrix."""
    served = {f"{method} {path}" for method, path in routes(harness.app)}
    assert served - harness.policy.keys() == set(), "routes without a rule: add them to POLICY"
    assert harness.policy.keys() - served == set(), "rules of routes the app no longer serves"


def test_the_matrix_answers_as_the_policy_says_and_crosses_no_tenant(
        harness: Harness, capsys: pytest.CaptureFixture[str],
        record_property: Callable[[str, object], None]) -> None:
    tally = asyncio.run(run(harness))
    record_property("cases", tally.cells)  # the reliability report's count (reliability/tally.py)
    with capsys.disabled():
        routed = len(harness.only) if harness.only is not None else len(routes(harness.app))
        print(f"\nauth matrix: {tally.cells} cells ({len(ROLES)} roles x "
              f"{routed} routes x own/other x variants): "
              f"{tally.allowed} allowed, {tally.refused} refused; "
              f"{len(tally.wrong)} unexpected, {len(tally.foreign_reads)} cross-tenant reads, "
              f"{len(tally.foreign_writes)} cross-tenant writes")
    assert tally.wrong == []
    assert tally.foreign_reads == []
    assert tally.foreign_writes == []
    if harness.only is None:
        assert tally.cells >= 900
        # Something was written, and read, in the cells where the policy allows it.
        assert harness.writer.published
        assert tally.allowed > 400
    else:
        assert tally.cells == len(ROLES) * len(TENANCIES) * len(harness.only)
