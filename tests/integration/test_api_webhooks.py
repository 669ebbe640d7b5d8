"""The webhook routes over real HTTP: commands on their topic, the state and log read back.

The API publishes ``WebhookCommand``s; the delivery component's answers (the
endpoint's state, the delivery attempts) are written here as that component
would write them, onto their topics, and the read model follows them as in
production. The API allows plain http to 127.0.0.1 (its allow-list), as a
local CRM's receiver would be.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.signing import fingerprint
from hub.broker import free_port
from hub.config import Settings
from schemas import catalog
from services.readmodel import ReadModel
from services.readmodel.consistency import Token
from tests.integration.test_api import Api, assert_problem, read_topic, running
from tests.integration.test_readmodel import produce, wait_for
from tests.unit.test_readmodel_leads import HOLDER, NOW

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

SEALING_KEY = "integration-sealing-key-0123456789"
URL = f"http://127.0.0.1:8099/r/{HOLDER}"
HOOK = f"/v1/resellers/{HOLDER}/webhook"


@pytest.fixture
def allowed(topics: Settings) -> Settings:
    return topics.model_copy(update={"webhook_allow_hosts": "127.0.0.1",
                                     "webhook_secret_key": SecretStr(SEALING_KEY)})


@pytest.fixture
def hooks(allowed: Settings, readmodel: ReadModel, tmp_path: Path) -> Iterator[Api]:
    with running(allowed, readmodel, tmp_path) as api:
        yield api


def put(api: Api, path: str, body: Any, key: str = "reseller") -> httpx.Response:
    return api.client.put(path, json=body, headers=api.headers(key))


def endpoint_datum(secrets: list[str], *, url: str = URL, version: int = 1,
                   enabled: bool = True) -> dict[str, Any]:
    """A ``WebhookEndpoint`` as the delivery component writes it (fingerprints only)."""
    return {"event_id": str(uuid.uuid4()), "occurred_at": NOW, "source": "crm_webhook",
            "reseller_id": HOLDER, "url": url, "enabled": enabled, "disabled_reason": None,
            "failing_since": None, "version": version,
            "secrets": [{"fingerprint": fingerprint(s), "created_at": NOW, "expires_at": None}
                        for s in secrets]}


def state(settings: Settings, datum: dict[str, Any]) -> None:
    produce(settings, catalog.WEBHOOK_ENDPOINTS, "WebhookEndpoint", "reseller_id", [datum])


def test_a_registration_shows_its_secret_once_and_the_state_once_applied(
        allowed: Settings, readmodel: ReadModel, hooks: Api) -> None:
    first = put(hooks, HOOK, {"url": URL})
    assert first.status_code == 202, first.text
    registered = first.json()
    secret = registered["secret"]
    assert secret.startswith("whsec_")
    assert registered["secret_fingerprint"] == fingerprint(secret)
    written = Token.decode(registered["consistency_token"])
    assert (written.topic, written.key) == (catalog.WEBHOOK_COMMANDS, HOLDER)

    [command] = read_topic(allowed, catalog.WEBHOOK_COMMANDS)
    assert (command.key, command.partition, command.offset) == (
        HOLDER.encode(), written.partition, written.offset)
    assert (command.datum["command"], command.datum["url"], command.datum["enabled"]) == (
        "register", URL, True)
    assert str(command.datum["event_id"]) == registered["event_id"]
    assert Sealer(SEALING_KEY).open(command.datum["secret"]) == secret
    assert secret not in str(command.datum)

    assert_problem(hooks.get(HOOK, key="reseller"), 404)  # not applied yet
    answers: list[httpx.Response] = []
    reading = threading.Thread(target=lambda: answers.append(hooks.get(
        f"{HOOK}?after={registered['consistency_token']}&wait=20", key="reseller",
        timeout=30)), daemon=True)
    reading.start()
    # A state from before the command (another URL) does not answer the read...
    state(allowed, endpoint_datum(["whsec_older"], url="https://old.example/h"))
    wait_for(lambda: readmodel.webhook_endpoint(HOLDER), 10, "the older state")
    # ... the component's state once it applied the command does.
    state(allowed, endpoint_datum([secret], version=2))
    reading.join(25)
    assert answers, "the read did not answer"
    assert answers[0].status_code == 200, answers[0].text
    shown = answers[0].json()
    assert (shown["url"], shown["enabled"], shown["version"]) == (URL, True, 2)
    assert [s["fingerprint"] for s in shown["secrets"]] == [fingerprint(secret)]
    assert secret not in answers[0].text

    # Registered now: a change of URL or flag shows no secret again.
    again = put(hooks, HOOK, {"url": URL, "enabled": False})
    assert again.status_code == 202, again.text
    assert "secret" not in again.json()
    assert again.json()["secret_fingerprint"] == fingerprint(secret)
    last = read_topic(allowed, catalog.WEBHOOK_COMMANDS)[-1].datum
    assert (last["secret"], last["enabled"]) == (None, False)


def test_rotate_test_and_replay_publish_their_commands(
        allowed: Settings, readmodel: ReadModel, hooks: Api) -> None:
    assert_problem(hooks.post(f"{HOOK}/rotate", key="reseller"), 404)
    assert_problem(hooks.post(f"{HOOK}/test", key="reseller"), 404)
    state(allowed, endpoint_datum(["whsec_first"]))
    wait_for(lambda: readmodel.webhook_endpoint(HOLDER), 10, "the endpoint")

    rotated = hooks.post(f"{HOOK}/rotate", key="reseller")
    assert rotated.status_code == 202, rotated.text
    body = rotated.json()
    assert body["secret_fingerprint"] == fingerprint(body["secret"])
    assert body["previous_valid_until"] > "2026"
    ping = hooks.post(f"{HOOK}/test", key="reseller")
    assert ping.status_code == 202, ping.text
    assert ping.json()["message_id"].startswith("msg_")

    window = {"since": "2026-11-01T00:00:00+01:00"}
    replays = f"/v1/resellers/{HOLDER}/deliveries/replay"
    assert_problem(hooks.post(replays, json=window, key="reseller"), 403)
    replay = hooks.post(replays, json=window, key="admin")
    assert replay.status_code == 202, replay.text
    assert (replay.json()["since"], replay.json()["until"]) == ("2026-10-31T23:00:00.000Z", None)

    commands = [r.datum for r in read_topic(allowed, catalog.WEBHOOK_COMMANDS)]
    assert [c["command"] for c in commands] == ["rotate", "test", "replay"]
    assert commands[0]["overlap_ms"] == 86_400_000
    assert Sealer(SEALING_KEY).open(commands[0]["secret"]) == body["secret"]
    assert commands[2]["since"] == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert [str(c["event_id"]) for c in commands] == [
        body["event_id"], ping.json()["event_id"], replay.json()["event_id"]]

    # The rotation shows once the new secret signs beside the old.
    token = body["consistency_token"]
    assert_problem(hooks.get(f"{HOOK}?after={token}&wait=0", key="reseller"), 504)
    state(allowed, endpoint_datum([body["secret"], "whsec_first"], version=2))
    shown = hooks.get(f"{HOOK}?after={token}&wait=20", key="reseller", timeout=30)
    assert shown.status_code == 200, shown.text
    assert len(shown.json()["secrets"]) == 2


def test_the_delivery_log_is_newest_first(allowed: Settings, readmodel: ReadModel,
                                          hooks: Api) -> None:
    def attempt(message: str, number: int, outcome: str, reseller: str = HOLDER,
                ) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "occurred_at": NOW + number,
                "source": "crm_webhook", "reseller_id": reseller, "message_id": message,
                "type": "lead.assigned", "lead_id": "L1", "attempt": number, "url": URL,
                "outcome": outcome, "http_status": 200 if outcome == "delivered" else 503,
                "latency_ms": 12, "error": None if outcome == "delivered" else "HTTP 503",
                "next_attempt_at": NOW + 5000 if outcome == "retrying" else None,
                "replay": False}

    produce(allowed, catalog.DELIVERIES, "WebhookDelivery", "reseller_id", [
        attempt("msg_a", 1, "retrying"), attempt("msg_a", 2, "delivered"),
        attempt("msg_b", 1, "delivered"), attempt("msg_c", 1, "delivered", "paris-web")])
    wait_for(lambda: len(readmodel.deliveries(HOLDER)) == 3, 10, "the attempts")
    log = hooks.get(f"/v1/resellers/{HOLDER}/deliveries", key="reseller").json()
    assert [(d["message_id"], d["attempt"]) for d in log["deliveries"]] == [
        ("msg_b", 1), ("msg_a", 2), ("msg_a", 1)]
    assert log["deliveries"][2]["next_attempt_at"] is not None
    one = hooks.get(f"/v1/resellers/{HOLDER}/deliveries?message_id=msg_a&limit=1",
                    key="reseller").json()
    assert [(d["message_id"], d["attempt"]) for d in one["deliveries"]] == [("msg_a", 2)]
    assert_problem(hooks.get(f"/v1/resellers/{HOLDER}/deliveries", key="other-reseller"), 403)
    assert_problem(hooks.get(f"/v1/resellers/{HOLDER}/deliveries", key="delegation"), 403)


def test_a_refused_url_is_422_and_a_broker_away_503(topics: Settings, readmodel: ReadModel,
                                                    api: Api, tmp_path: Path) -> None:
    # The default allow-list is empty: loopback and private addresses are refused.
    for url in ("http://127.0.0.1:8099/hook", "https://10.1.2.3/hook",
                "https://169.254.169.254/latest", "ftp://crm.example/hook"):
        body = assert_problem(put(api, HOOK, {"url": url}), 422)
        assert body["type"].endswith(":url-refused"), body
        assert body["errors"][0]["field"] == "url"
    assert read_topic(topics, catalog.WEBHOOK_COMMANDS) == []

    dead = topics.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
                                     "produce_timeout_s": 1.0, "request_timeout_ms": 1000})
    with running(dead, readmodel, tmp_path) as down:
        answer = put(down, HOOK, {"url": "https://93.184.215.14/hook"})
        assert_problem(answer, 503)
        assert answer.headers["retry-after"] == "5"
