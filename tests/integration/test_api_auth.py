"""API keys over real HTTP: 401 without a valid key, 403 outside a key's scope, resellers' leads."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.api import keys
from hub.config import Settings
from schemas import catalog
from services.readmodel import ReadModel
from tests.integration.test_api import (
    DEV_KEY,
    SIREN,
    Api,
    assert_problem,
    enrolment,
    read_topic,
    running,
)
from tests.integration.test_readmodel import lead_datum, passport_datum, produce, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def profile(reseller_id: str) -> dict[str, Any]:
    return {"type": "reseller_profile", "occurred_at": _now(), "source": "mspp",
            "reseller_id": reseller_id, "name": "Web", "departements": ["78"],
            "categories": ["website-hosting"]}


def answer(lead_id: str, reseller_id: str) -> dict[str, Any]:
    return {"type": "lead_answered", "occurred_at": _now(), "source": "crm",
            "lead_id": lead_id, "reseller_id": reseller_id, "answer": "accepted"}


def module(siren: str = SIREN) -> dict[str, Any]:
    return {"type": "module_completed", "occurred_at": _now(), "source": "trainer-google",
            "siren": siren, "module_id": "website-create"}


def test_no_key_or_a_wrong_key_is_401_with_www_authenticate(api: Api) -> None:
    for key in (None, "not-a-key", "x" * 43, "not a key at all"):
        for call in (lambda k: api.post("/v1/events", json=enrolment(), key=k),
                     lambda k: api.post("/v1/events:batch", json={"events": [enrolment()]}, key=k),
                     lambda k: api.get(f"/v1/passports/{SIREN}", key=k),
                     lambda k: api.get("/v1/resellers/yvelines-web/leads", key=k)):
            answered = call(key)
            assert_problem(answered, 401)
            assert answered.headers["www-authenticate"] == "Bearer"
    # Another scheme, or a key's hash in place of the key, is no key at all.
    basic = api.client.post("/v1/events", json=enrolment(),
                            headers={"Authorization": f"Basic {api.tokens['admin']}"})
    assert_problem(basic, 401)
    stored = keys.token_hash(api.tokens["admin"])
    assert_problem(api.post("/v1/events", json=enrolment(), key=stored), 401)
    # 401 comes before anything is read: even a malformed body gets it.
    assert_problem(api.post("/v1/events", content=b"{", key=None,
                            headers={"content-type": "application/json"}), 401)


def test_each_role_sends_its_own_event_types_only(topics: Settings, api: Api) -> None:
    assert api.post("/v1/events", json=enrolment(), key="delegation").status_code == 202
    assert api.post("/v1/events", json=module(), key="trainer").status_code == 202
    assert api.post("/v1/events", json=profile("yvelines-web"), key="reseller").status_code == 202
    body = assert_problem(api.post("/v1/events", json=enrolment(), key="trainer"), 403)
    assert "business_enrolled" in body["detail"]
    assert_problem(api.post("/v1/events", json=module(), key="delegation"), 403)
    assert_problem(api.post("/v1/events", json=enrolment(), key="reseller"), 403)
    assert_problem(api.post("/v1/events", json=profile("yvelines-web"), key="delegation"), 403)
    # A reseller edits its own profile, not another's.
    body = assert_problem(api.post("/v1/events", json=profile("paris-web"), key="reseller"), 403)
    assert "paris-web" in body["detail"]
    # Validation comes first: an invalid event is a 422 whoever sends it.
    assert_problem(api.post("/v1/events", json=enrolment(siren="1"), key="trainer"), 422)
    # Nothing refused reached a topic.
    assert len(read_topic(topics, catalog.ENROLMENTS)) == 1
    assert len(read_topic(topics, catalog.RESELLERS)) == 1


def test_a_reseller_answers_only_the_leads_assigned_to_it(
        topics: Settings, readmodel: ReadModel, api: Api) -> None:
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id",
            [lead_datum("lead-mine", "yvelines-web"), lead_datum("lead-theirs", "paris-web")])
    wait_for(lambda: readmodel.leads_for("paris-web"), 10, "the leads in the read model")
    mine = api.post("/v1/events", json=answer("lead-mine", "yvelines-web"), key="reseller")
    assert mine.status_code == 202, mine.text
    # Its own reseller id on another's lead: the read model says whose lead it is.
    body = assert_problem(api.post("/v1/events", json=answer("lead-theirs", "yvelines-web"),
                                   key="reseller"), 403)
    assert "lead-theirs" in body["detail"]
    # Another's reseller id: refused before the lead is even looked at.
    assert_problem(api.post("/v1/events", json=answer("lead-theirs", "paris-web"),
                            key="reseller"), 403)
    assert_problem(api.post("/v1/events", json=answer("lead-nobody", "yvelines-web"),
                            key="reseller"), 404)
    assert_problem(api.post("/v1/events", json=answer("lead-mine", "yvelines-web"),
                            key="delegation"), 403)
    answers = read_topic(topics, catalog.LEAD_RESPONSES)
    assert [(r.datum["lead_id"], r.datum["reseller_id"]) for r in answers] == [
        ("lead-mine", "yvelines-web")]


def test_reads_need_the_right_key(topics: Settings, readmodel: ReadModel, api: Api) -> None:
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id",
            [lead_datum("lead-1", "yvelines-web")])
    wait_for(lambda: readmodel.leads_for("yvelines-web"), 10, "the lead in the read model")
    leads = api.get("/v1/resellers/yvelines-web/leads", key="reseller")
    assert [lead["lead_id"] for lead in leads.json()["leads"]] == ["lead-1"]
    assert api.get("/v1/resellers/yvelines-web/leads", key="admin").status_code == 200
    assert api.get("/v1/resellers/yvelines-web/leads", key=DEV_KEY).status_code == 200
    for key in ("other-reseller", "delegation", "trainer"):
        assert_problem(api.get("/v1/resellers/yvelines-web/leads", key=key), 403)
    assert_problem(api.get(f"/v1/passports/{SIREN}", key="delegation"), 404)  # allowed, absent
    assert_problem(api.get(f"/v1/passports/{SIREN}", key="admin"), 404)
    for key in ("reseller", "trainer"):
        assert_problem(api.get(f"/v1/passports/{SIREN}", key=key), 403)


def test_the_dev_key_is_an_admin_and_only_when_configured(
        topics: Settings, readmodel: ReadModel, tmp_path: Path) -> None:
    with running(topics, readmodel, tmp_path) as api:
        for event in (enrolment(), module(), profile("any-reseller")):
            assert api.post("/v1/events", json=event, key=DEV_KEY).status_code == 202
    with running(topics, readmodel, tmp_path, dev_key=None) as api:
        assert_problem(api.post("/v1/events", json=enrolment(), key=DEV_KEY), 401)
        assert api.post("/v1/events", json=enrolment(), key="admin").status_code == 202


def test_a_key_added_or_revoked_takes_effect_without_a_restart(
        topics: Settings, readmodel: ReadModel, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("connectors.api.auth.RELOAD_EVERY_S", 0.0)
    with running(topics, readmodel, tmp_path) as api:
        keys_file = next(tmp_path.glob("keys-*.json"))
        token, key = keys.mint("cefac-75", "delegation")
        assert_problem(api.post("/v1/events", json=enrolment(), key=token), 401)
        keys.save(keys_file, [*keys.load(keys_file), key])
        assert api.post("/v1/events", json=enrolment(), key=token).status_code == 202
        keys.save(keys_file, [k for k in keys.load(keys_file) if k.key_id != key.key_id])
        assert_problem(api.post("/v1/events", json=enrolment(), key=token), 401)
        # A broken file keeps the keys already loaded.
        keys_file.write_text("[{")
        assert api.post("/v1/events", json=enrolment(), key="delegation").status_code == 202


def test_the_request_log_names_the_key_never_the_token(
        api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    assert api.post("/v1/events", json=enrolment(), key="delegation").status_code == 202
    assert_problem(api.post("/v1/events", json=enrolment(), key="trainer"), 403)
    assert_problem(api.post("/v1/events", json=enrolment(), key="wrong-token-123"), 401)
    captured = capsys.readouterr()
    logged = captured.out + captured.err
    assert "cefac-78-" in logged  # the key id
    for secret in (*api.tokens.values(), "wrong-token-123",
                   *(keys.token_hash(t) for t in api.tokens.values())):
        assert secret not in logged
    assert "contact@martin.fr" not in logged


def test_the_api_refuses_to_start_without_keys(topics: Settings, tmp_path: Path) -> None:
    assert topics.kafka_bootstrap_servers is not None
    env = {key: value for key, value in os.environ.items()
           if key not in ("PASSPORT_HUB_DEV_API_KEY", "PASSPORT_HUB_API_KEYS_FILE")}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
            "PASSPORT_HUB_TOPIC_PREFIX": topics.topic_prefix,
            "PASSPORT_HUB_DATA_DIR": str(tmp_path), "PASSPORT_HUB_LOG_FORMAT": "json"}
    done = subprocess.run([sys.executable, "-m", "connectors.api"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "PASSPORT_HUB_API_KEYS_FILE" in done.stderr
    assert "PASSPORT_HUB_DEV_API_KEY" in done.stderr
    missing = subprocess.run([sys.executable, "-m", "connectors.api"], cwd=tmp_path,
                             env={**env, "PASSPORT_HUB_API_KEYS_FILE": str(tmp_path / "no.json")},
                             capture_output=True, text=True, timeout=30, check=False)
    assert missing.returncode == 2
    assert "no.json" in missing.stderr


OTHER_SIREN = "552100554"  # a business of the Val-d'Oise (95)


def _bind(api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Add a delegation key bound to the Yvelines (78) and a trainer key bound to Google to
    the running API's keys file; their tokens (the ring reloads at the next request)."""
    monkeypatch.setattr("connectors.api.auth.RELOAD_EVERY_S", 0.0)
    keys_file = next(tmp_path.glob("keys-*.json"))
    tokens: dict[str, str] = {}
    tokens["yvelines"], delegation = keys.mint("cefac-78b", "delegation", departements=["78"])
    tokens["google"], trainer = keys.mint("google-b", "trainer", trainer_org="Google")
    keys.save(keys_file, [*keys.load(keys_file), delegation, trainer])
    return tokens


def test_a_delegation_key_reads_and_writes_its_departements_businesses_only(
        topics: Settings, readmodel: ReadModel, api: Api, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum(SIREN), passport_datum(OTHER_SIREN, departement="95")])
    wait_for(lambda: readmodel.passport(OTHER_SIREN), 10, "the passports in the read model")
    tokens = _bind(api, monkeypatch, tmp_path)
    key = tokens["yvelines"]
    # Reads: its own département's business and listing; the other's is as if unknown.
    assert api.get(f"/v1/passports/{SIREN}", key=key).status_code == 200
    theirs = assert_problem(api.get(f"/v1/passports/{OTHER_SIREN}", key=key), 404)
    unknown = assert_problem(api.get("/v1/passports/542065479", key=key), 404)
    assert theirs["detail"] == unknown["detail"].replace("542065479", OTHER_SIREN)
    listed = api.get("/v1/delegations/78/passports", key=key).json()
    assert [p["siren"] for p in listed["passports"]] == [SIREN]
    assert_problem(api.get("/v1/delegations/95/passports", key=key), 403)
    # The unbound delegation key of before and the admin key still see both.
    for unrestricted in ("delegation", "admin"):
        assert api.get(f"/v1/passports/{OTHER_SIREN}", key=unrestricted).status_code == 200
    # Writes: an enrolment elsewhere, the move of another's business, and events about it.
    assert_problem(api.post("/v1/events", json=enrolment(siren="542065479",
                                                         departement="95"), key=key), 403)
    assert_problem(api.post("/v1/events", json=enrolment(siren=OTHER_SIREN), key=key), 403)
    offer = {"type": "offer_requested", "occurred_at": _now(), "source": "cefac-78",
             "siren": OTHER_SIREN, "category": "e-commerce"}
    assert_problem(api.post("/v1/events", json=offer, key=key), 403)
    batch = api.post("/v1/events:batch", key=key,
                     json={"events": [enrolment(), {**offer, "siren": SIREN},
                                      {**offer, "siren": OTHER_SIREN}]})
    assert batch.status_code == 202, batch.text
    assert [r["status"] for r in batch.json()["results"]] == [202, 202, 403]
    # Only its own business's events reached the topics.
    assert [r.datum["siren"] for r in read_topic(topics, catalog.ENROLMENTS)] == [SIREN]
    assert [r.datum["siren"] for r in read_topic(topics, catalog.OFFER_REQUESTS)] == [SIREN]


def test_a_trainer_key_reports_for_its_own_organisation_only(
        topics: Settings, api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = _bind(api, monkeypatch, tmp_path)["google"]
    assert api.post("/v1/events", json={**module(), "trainer_org": "Google"},
                    key=key).status_code == 202
    body = assert_problem(api.post("/v1/events", json={**module(), "trainer_org": "Orange"},
                                   key=key), 403)
    assert "Google" in body["detail"]
    assert [r.datum["trainer_org"] for r in read_topic(topics, catalog.TRAINING)] == ["Google"]


def test_a_key_over_its_rate_limit_gets_429_over_real_http(
        topics: Settings, readmodel: ReadModel, tmp_path: Path) -> None:
    slow = topics.model_copy(update={"api_rate_per_s": 0.01, "api_rate_burst": 2})
    with running(slow, readmodel, tmp_path) as api:
        answers = [api.get("/v1/stats", key="delegation") for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        body = assert_problem(answers[2], 429)
        assert answers[2].headers["retry-after"] == str(body["retry_after"])
        assert 1 <= int(answers[2].headers["retry-after"]) <= 100  # a token every 100 s
        assert api.get("/v1/stats", key="admin").status_code == 200  # its own bucket
        for path in ("/livez", "/metrics"):  # never limited, even with the exhausted key
            assert [api.get(path, key="delegation").status_code for _ in range(3)] == [200] * 3
