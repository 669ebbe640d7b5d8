"""The KPI page as the API serves it: the page, its data, its own assets, its headers, its access.

The app is the real one (``create_app`` under uvicorn) over a read side whose
KPI figures come from a real read-model file fed with the services' own records
(``tests/unit/test_readmodel_kpi.py``); the browser's view is the e2e test's
(tests/e2e/test_kpi_page.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from connectors.api import create_app, keys, kpi, problems
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from hub.config import Settings
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from tests.integration.test_api import serve
from tests.unit.test_api_ingest import FakeWriter
from tests.unit.test_api_webhooks import Side
from tests.unit.test_readmodel_kpi import NAMES, Topics, lead_changes, passports

NOW = 1_767_261_600_000  # 2026-01-01T10:00:00Z
DEV = "unit-dev-key"


class KpiSide(Side):
    """The fake read side, with the KPI figures of a real read-model file."""

    def __init__(self, queries: Queries) -> None:
        super().__init__()
        self.queries = queries

    def kpi(self) -> dict[str, Any]:
        return self.queries.kpi()


@pytest.fixture
def side(model: tuple[Writer, Queries]) -> KpiSide:
    writer, queries = model
    topics = Topics()
    passports(topics)
    lead_changes(topics)
    writer.apply(topics.read)
    return KpiSide(queries)


@pytest.fixture
def http(tmp_path: Path, side: KpiSide) -> Iterator[httpx.Client]:
    """A client of the whole app (no API key: the page is open)."""
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", data_dir=tmp_path)
    store = AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600)
    app = create_app(settings, publisher=FakeWriter(), readside=side,
                     keyring=KeyRing(None, DEV), store=store, registry=CollectorRegistry(),
                     clock=lambda: NOW)
    try:
        with serve(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            yield client
    finally:
        store.close()


class References(HTMLParser):
    """What a page loads: every src and href, and the inline JSON data block."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.data: list[str] = []
        self._in_data = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        if tag == "script":
            self.scripts.append(found)
            self._in_data = found.get("type") == "application/json"

    def handle_endtag(self, tag: str) -> None:
        self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._in_data:
            self.data.append(data)


def parsed(page: str) -> References:
    references = References()
    references.feed(page)
    return references


def test_the_page_inlines_the_data_document_and_names_the_figures_in_french(
        http: httpx.Client) -> None:
    answer = http.get("/kpi")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    page = answer.text
    for label in ("Passeports délivrés", "par région", "Entreprises par module",
                  "Référentiel qualité", "Leads par statut", "Leads par revendeur"):
        assert label in page
    (inline,) = parsed(page).data
    data = http.get("/kpi/data.json")
    assert data.status_code == 200
    assert data.headers["cache-control"] == "no-store"
    assert json.loads(inline) == data.json()
    document = data.json()
    assert document["generated_at"] == "2026-01-01T10:00:00+00:00"
    assert document["caught_up"] is True
    assert document["target"] == {"passports": 150_000, "scope": "national"}
    assert document["national"]["passports_issued"] == 3
    assert [p["cumulative"] for p in document["passports_by_day"]["series"]] == [1, 2, 3]
    assert {r["name"] for r in document["resellers"]["by_reseller"]} == set(NAMES.values())


def test_a_name_cannot_close_the_data_block(http: httpx.Client) -> None:
    page = http.get("/kpi").text
    (inline,) = parsed(page).data
    assert "</script>" not in inline  # a reseller is named "Paris Web </script>"
    assert "<" not in inline
    assert "&" not in inline
    assert "Paris Web </script>" in json.dumps(json.loads(inline), ensure_ascii=False)


def test_the_page_loads_only_the_hub_s_own_assets_and_says_so(http: httpx.Client) -> None:
    answer = http.get("/kpi")
    policy = answer.headers["content-security-policy"]
    assert policy.startswith("default-src 'self'")
    assert "unsafe" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    references = parsed(answer.text)
    assets = [url for url in references.urls if url.startswith("kpi/assets/")]
    assert {url.split("?")[0] for url in assets} == {
        "kpi/assets/kpi.js", "kpi/assets/kpi.css", "kpi/assets/icon.svg"}
    assert set(references.urls) - set(assets) == {"kpi/data.json"}  # the <noscript> link
    # No inline script: the one script element without src is the JSON data block.
    assert [s.get("type") for s in references.scripts if not s.get("src")] == [
        "application/json"]
    assert " style=" not in answer.text
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    for url in assets:
        served = http.get(f"/{url}")
        assert served.status_code == 200, url
        name = url.split("?")[0]
        assert served.headers["content-type"].startswith(types[name[name.rfind("."):]])
        assert served.headers["cache-control"] == "public, max-age=86400"
        text = served.text
        # Nothing fetched from elsewhere: no URL but the SVG namespace, no CSS import.
        assert re.findall(r"https?://[^\s\"')]+", text) in ([], ["http://www.w3.org/2000/svg"])
        assert "@import" not in text
        assert "url(" not in text


def test_an_unversioned_asset_is_revalidated_and_an_unknown_one_is_404(http: httpx.Client) -> None:
    plain = http.get("/kpi/assets/kpi.js")
    assert plain.status_code == 200
    assert plain.headers["cache-control"] == "no-cache"
    assert plain.headers["etag"] == f'"{kpi.ASSETS["kpi.js"].version}"'
    for name in ("kpi.html", "nope.js", "..%2Fkpi.py"):
        missing = http.get(f"/kpi/assets/{name}")
        assert missing.status_code == 404, name
        assert missing.headers["content-type"] == "application/problem+json"


def test_the_page_and_its_data_are_open_and_the_probes_answer(http: httpx.Client) -> None:
    for path in ("/kpi", "/kpi/data.json"):
        assert http.get(path).status_code == 200  # no key sent
    for path in ("/livez", "/healthz"):
        answer = http.get(path)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})


def test_a_closed_page_needs_a_key_that_reads_the_figures(tmp_path: Path, side: KpiSide) -> None:
    reseller_token, reseller_key = keys.mint("web-78", "reseller", "web-78")
    keys.save(tmp_path / "keys.json", [reseller_key])
    app = FastAPI()
    problems.install(app)
    app.state.keyring = KeyRing(tmp_path / "keys.json", DEV)
    app.include_router(kpi.routes(side, clock=lambda: NOW, public=False))
    as_reseller = {"Authorization": f"Bearer {reseller_token}"}
    as_admin = {"Authorization": f"Bearer {DEV}"}
    with serve(app) as url, httpx.Client(base_url=url, timeout=10) as http:
        for path in ("/kpi", "/kpi/data.json"):
            assert http.get(path).status_code == 401
            assert http.get(path, headers=as_reseller).status_code == 403
            assert http.get(path, headers=as_admin).status_code == 200
        assert http.get("/kpi/assets/kpi.js").status_code == 200
