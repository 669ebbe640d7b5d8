"""Listings and programme figures over real HTTP: a delegation's pages, /v1/stats, privacy."""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.synthetic.identities import siren as random_siren
from hub.config import Settings
from schemas import catalog
from services.readmodel import ReadModel
from tests.integration.test_api import (
    DEV_KEY,
    Api,
    assert_no_private_data,
    assert_problem,
    running,
)
from tests.integration.test_readmodel import (
    T0,
    passport_datum,
    produce,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(20)]


def _pages(api: Api, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every page of a listing, walked by cursor; each page checked for private data."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        answer = api.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        assert_no_private_data(answer)
        pages.append(answer.json())
        cursor = pages[-1]["next_cursor"]
        if cursor is None:
            return pages


def test_a_delegation_lists_its_businesses_a_page_at_a_time(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    rng = random.Random(78)
    sirens = sorted({random_siren(rng) for _ in range(23)})
    states = ["enrolled", "in_training", "passport_issued"]
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum(s, state=states[i % 3]) for i, s in enumerate(sirens)]
            + [passport_datum(random_siren(rng), departement="92"),
               passport_datum(random_siren(rng), state="awaiting_enrolment")])
    wait_for(lambda: readmodel.passports_in("78")["total"] == len(sirens), 10, "the passports")

    pages = _pages(api, "/v1/delegations/78/passports", limit=5)
    assert [len(page["passports"]) for page in pages] == [5, 5, 5, 5, len(sirens) - 20]
    assert [p["siren"] for page in pages for p in page["passports"]] == sirens
    assert {page["total"] for page in pages} == {len(sirens)}
    assert pages[0]["departement"] == "78"
    assert pages[0]["limit"] == 5
    first = pages[0]["passports"][0]
    assert first["departement"] == "78"
    assert {"name", "state", "modules", "feedback", "consent", "updated_at"} <= first.keys()

    # The cursor is a position, not a page number: a business enrolled before it is not
    # seen, one after it is, and nothing repeats.
    body = api.get("/v1/delegations/78/passports", params={"cursor": sirens[9]}).json()
    assert [p["siren"] for p in body["passports"]] == sirens[10:]
    assert body["next_cursor"] is None


def test_a_delegation_listing_filters_by_state(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    rng = random.Random(92)
    sirens = sorted({random_siren(rng) for _ in range(9)})
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum(s, departement="92", state="passport_issued" if i < 4
                            else "in_training") for i, s in enumerate(sirens)])
    wait_for(lambda: readmodel.passports_in("92")["total"] == 9, 10, "the passports")
    issued = _pages(api, "/v1/delegations/92/passports", state="passport_issued", limit=3)
    assert [p["siren"] for page in issued for p in page["passports"]] == sirens[:4]
    assert {p["state"] for page in issued for p in page["passports"]} == {"passport_issued"}
    assert issued[0]["state"] == "passport_issued"
    assert issued[0]["total"] == 4
    enrolled = api.get("/v1/delegations/92/passports", params={"state": "enrolled"}).json()
    assert enrolled["passports"] == []
    assert enrolled["total"] == 0
    body = assert_problem(api.get("/v1/delegations/92/passports",
                                  params={"state": "awaiting_enrolment"}), 422)
    assert [e["field"] for e in body["errors"]] == ["state"]


def test_a_bad_departement_cursor_or_limit_is_a_problem(readmodel: ReadModel, api: Api) -> None:
    assert readmodel.wait_caught_up(10)
    for code in ("abc", "7", "780", "2a", "9A", "%20"):
        body = assert_problem(api.get(f"/v1/delegations/{code}/passports"), 422)
        assert [e["field"] for e in body["errors"]] == ["departement"], code
    for code in ("20", "00", "96", "975", "979"):
        assert_problem(api.get(f"/v1/delegations/{code}/passports"), 404)
    for code in ("2A", "2B", "971", "976", "01", "95"):
        assert api.get(f"/v1/delegations/{code}/passports").status_code == 200, code
    for params, field in (({"cursor": "12345"}, "cursor"), ({"limit": 0}, "limit"),
                          ({"limit": 501}, "limit")):
        body = assert_problem(api.get("/v1/delegations/78/passports", params=params), 422)
        assert [e["field"] for e in body["errors"]] == [field]
    assert api.get("/v1/delegations/78/passports", params={"limit": 500}).status_code == 200


def test_listings_and_figures_need_a_key_that_reads_passports(api: Api) -> None:
    for path in ("/v1/delegations/78/passports", "/v1/stats"):
        assert_problem(api.get(path, key=None), 401)
        assert_problem(api.get(path, key="reseller"), 403)
        assert_problem(api.get(path, key="trainer"), 403)
        assert api.get(path, key="delegation").status_code == 200
        assert api.get(path, key=DEV_KEY).status_code == 200


def test_stats_follow_a_replaced_snapshot_and_a_rebuild_serves_the_same(
        topics: Settings, readmodel: ReadModel, api: Api, tmp_path: Path) -> None:
    rng = random.Random(2009)
    first, second = random_siren(rng), random_siren(rng)
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren", [
        passport_datum(first, scores=(("trainer-google", 3),)),
        passport_datum(second, state="passport_issued", departement="971",
                       modules=("website-create", "website-traffic", "email-pro"),
                       scores=(("trainer-google", 5),))])
    wait_for(lambda: api.get("/v1/stats").json()["national"]["businesses_enrolled"] == 2,
             10, "both businesses in the figures")
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren", [passport_datum(
        first, state="passport_issued", at=T0 + timedelta(days=1),
        modules=("website-create", "website-traffic", "website-performance"),
        scores=(("trainer-google", 3), ("cci-78", 1)))])
    answer = wait_for(
        lambda: _ok_if(api.get("/v1/stats"), lambda b: b["national"]["passports_issued"] == 2),
        10, "the replaced snapshot in the figures")
    assert_no_private_data(answer)
    figures = answer.json()
    assert figures["target"] == {"passports": 150_000, "scope": "national"}
    assert figures["national"] == {"businesses_enrolled": 2, "passports_issued": 2,
                                   "share_of_target": round(2 / 150_000, 6),
                                   "awaiting_enrolment": 0}
    regions = {r["region"]: r for r in figures["regions"]}
    assert (regions["11"]["passports_issued"], regions["01"]["passports_issued"]) == (1, 1)
    assert regions["01"]["share_of_national_target"] == round(1 / 150_000, 6)
    modules = {m["module_id"]: m["businesses"] for m in figures["modules"]}
    assert (modules["website-create"], modules["website-performance"],
            modules["email-pro"]) == (2, 1, 1)
    quality = figures["quality"]
    assert {q["module_id"]: (q["responses"], q["average_score"])
            for q in quality["by_module"]} == {"website-create": (3, 3.0)}
    assert {q["trainer_org"]: (q["responses"], q["average_score"])
            for q in quality["by_trainer_org"]} == {"cci-78": (1, 1.0),
                                                    "trainer-google": (2, 4.0)}
    assert {q["delegation"]: q["responses"] for q in quality["by_delegation"]} == {
        "78": 2, "971": 1}

    rebuilt = ReadModel(topics, tmp_path / "rebuilt.sqlite", poll_timeout_ms=100)
    rebuilt.start()
    try:
        assert rebuilt.wait_caught_up(10)
        with running(topics, rebuilt, tmp_path) as again:
            assert again.get("/v1/stats").json() == figures
            for code in ("78", "971"):
                path = f"/v1/delegations/{code}/passports"
                assert again.get(path).json() == api.get(path).json()
    finally:
        rebuilt.stop()


def _ok_if(answer: httpx.Response, check: Any) -> httpx.Response | None:
    return answer if answer.status_code == 200 and check(answer.json()) else None
