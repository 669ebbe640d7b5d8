"""The whole hub as a user runs it: `passport-hub up`, real HTTP in, passport and lead out."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.stack import AUTH, up, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SIREN = "732829320"


@pytest.fixture
def hub_up(tmp_path: Path) -> Iterator[str]:
    """`passport-hub up`: the API and the services, no demo traffic."""
    with up(tmp_path) as base:
        yield base


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "occurred_at": datetime.now(UTC).isoformat(), "source": "e2e", **fields}


def test_enrolment_to_routed_lead_over_http(hub_up: str) -> None:
    post = lambda body: httpx.post(f"{hub_up}/v1/events", json=body, headers=AUTH,  # noqa: E731
                                   timeout=15)
    anonymous = httpx.post(f"{hub_up}/v1/events", json={}, timeout=15)
    assert anonymous.status_code == 401
    reseller = _event("reseller_profile", reseller_id="yvelines-web", name="Yvelines Web",
                      departements=["78"], categories=["website-hosting"], capacity=10, weight=1)
    assert post(reseller).status_code == 202
    enrol = _event("business_enrolled", siren=SIREN, name="Boulangerie Martin", departement="78",
                   naf="10.71C", employees=3, contact_email="contact@boulangerie-martin.fr",
                   consent_share_with_resellers=True)
    assert post(enrol).status_code == 202
    for module in ("website-create", "website-traffic", "website-performance"):
        answer = post(_event("module_completed", siren=SIREN, module_id=module))
        assert answer.status_code == 202, answer.text

    passport = wait_for(lambda: _issued(hub_up), 60, "the passport to be issued")
    assert sorted(passport["modules_completed"]) == [
        "website-create", "website-performance", "website-traffic"]

    offer = _event("offer_requested", siren=SIREN, category="website-hosting")
    assert post(offer).status_code == 202
    leads = wait_for(lambda: _leads(hub_up, "yvelines-web"), 60, "the lead to be routed")
    assert [lead["siren"] for lead in leads] == [SIREN]
    assert leads[0]["category"] == "website-hosting"

    bad = post(_event("business_enrolled", siren="732829321", name="X", departement="78"))
    assert bad.status_code == 422
    assert "siren" in bad.text


def _issued(base: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{base}/v1/passports/{SIREN}", headers=AUTH, timeout=5)
    if answer.status_code != 200:
        return None
    body: dict[str, Any] = answer.json()
    return body if body["state"] == "passport_issued" else None


def _leads(base: str, reseller: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/v1/resellers/{reseller}/leads", headers=AUTH, timeout=5)
    assert answer.status_code == 200, answer.text
    leads: list[dict[str, Any]] = answer.json()["leads"]
    return leads


def test_the_demo_s_resellers_answer_and_leads_expire_and_move_on(tmp_path: Path) -> None:
    """`up --demo`: synthetic CRMs answer, and a fast clock (set here, faster than the demo's
    own, which a user setting must override) lets unanswered leads expire and move on."""
    with up(tmp_path, "--demo", "--rate", "400",
             env={"PASSPORT_HUB_ROUTING_CLOCK_SPEED": "20000"}):
        figures = wait_for(lambda: _live(tmp_path / "up.log"), 150,
                        "accepted, rejected, expired and reassigned leads on the live line")
    assert all(figures[name] > 0 for name in ("accepted", "rejected", "expired", "reassigned"))
    assert figures["reassigned"] >= figures["expired"]


def _live(log: Path) -> dict[str, int] | None:
    """The figures of the last live line, once every kind of outcome has shown up."""
    lines = [line for line in log.read_text(encoding="utf-8").splitlines()
             if " leads " in line and not line.startswith("{")]
    if not lines:
        return None
    detail = re.search(r"\((.*)\)", lines[-1])
    assert detail is not None, lines[-1]
    figures = {name: int(count) for name, count in
               (item.rsplit(" ", 1) for item in detail.group(1).split(" · "))}
    wanted = ("accepted", "rejected", "expired", "reassigned")
    return figures if all(figures.get(name, 0) > 0 for name in wanted) else None
