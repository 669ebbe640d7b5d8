"""The whole hub as a user runs it: `passport-hub up`, real HTTP in, passport and lead out."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.broker import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

SIREN = "732829320"
#: The key `passport-hub up` gives its API on the embedded broker (README's curl uses it).
DEV_KEY = "dev-local-key"
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


@contextlib.contextmanager
def _up(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`passport-hub up ARGS` in a subprocess (embedded broker unless one is configured)."""
    port = free_port()
    env = {**os.environ, "PASSPORT_HUB_API_PORT": str(port),
           "PASSPORT_HUB_DATA_DIR": str(tmp_path / "data"), "PASSPORT_HUB_LOG_FORMAT": "json",
           **(env or {})}
    for name in ("PASSPORT_HUB_DEV_API_KEY", "PASSPORT_HUB_API_KEYS_FILE"):
        env.pop(name, None)  # on the embedded broker, `up` gives the API its dev key itself
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        tag = os.urandom(4).hex()  # a shared broker: keep this run's topics and groups apart
        env |= {"PASSPORT_HUB_TOPIC_PREFIX": f"e2e{tag}.", "PASSPORT_HUB_GROUP_PREFIX": f"e2e{tag}",
                # a configured broker gets no dev key from `up`: say which one to accept
                "PASSPORT_HUB_DEV_API_KEY": DEV_KEY}
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "up", *args], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ready(base), 60, "the API to be ready")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            log.close()
        assert code == 0, (tmp_path / "up.log").read_text()


@pytest.fixture
def hub_up(tmp_path: Path) -> Iterator[str]:
    """`passport-hub up`: the API and the services, no demo traffic."""
    with _up(tmp_path) as base:
        yield base


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


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

    passport = _wait(lambda: _issued(hub_up), 60, "the passport to be issued")
    assert sorted(passport["modules_completed"]) == [
        "website-create", "website-performance", "website-traffic"]

    offer = _event("offer_requested", siren=SIREN, category="website-hosting")
    assert post(offer).status_code == 202
    leads = _wait(lambda: _leads(hub_up, "yvelines-web"), 60, "the lead to be routed")
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
    with _up(tmp_path, "--demo", "--rate", "400",
             env={"PASSPORT_HUB_ROUTING_CLOCK_SPEED": "20000"}):
        figures = _wait(lambda: _live(tmp_path / "up.log"), 150,
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
