"""SIGKILL the delivery component in a retry storm; restarted, it delivers everything, once.

The component runs as ``python -m connectors.crm_webhook`` with a one-second
retry schedule. Every receiver fails until the kill, so every message is
retried (and some are in flight when it dies); after the restart they all
succeed. From what the receivers got: every message arrived, each under
exactly one webhook-id with one body, a lead's update never before its
assignment went through, every request signed by its reseller's secret.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook

from connectors.crm_webhook.receiver import Delivery, Receiver
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.signing import new_secret
from hub.config import Settings
from hub.reader import TopicReader
from schemas import catalog
from schemas.webhooks import lead_events
from tests.integration.processes import Service, services
from tests.integration.test_routing_service import produce
from tests.unit.test_crm_webhook_processor import command, lead_change

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

RESELLERS = ("north", "south", "west")
LEADS_EACH = 6
ENV = {"PASSPORT_HUB_WEBHOOK_RETRY_SCHEDULE_S": "0,1,1,1,1,1,1,1,1,1",
       "PASSPORT_HUB_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
       "PASSPORT_HUB_WEBHOOK_PER_ENDPOINT": "8"}


def _wait(what: str, done: Callable[[], object], service: Service,
          timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert service.process.poll() is None, "".join(service.lines[-30:])
        assert time.monotonic() < deadline, f"{what}\n" + "".join(service.lines[-30:])
        time.sleep(0.1)


def test_a_killed_component_resends_what_was_pending_and_loses_nothing(
        topics: Settings, tmp_path: Path) -> None:
    secrets = {reseller: new_secret() for reseller in RESELLERS}
    now = time.time_ns() // 1_000_000
    changes = []
    for reseller in RESELLERS:
        for i in range(LEADS_EACH):
            lead_id = f"{reseller}-{i}"
            changes.append(lead_change(lead_id, holder=reseller, at=now))
            changes.append(lead_change(lead_id, holder=reseller, change="accepted",
                                       status="accepted", version=2, at=now + 1))
    expected = {event.message_id: event for change in changes for event in lead_events(change)}
    assert len(expected) == 2 * LEADS_EACH * len(RESELLERS)
    endpoints = TopicReader(topics, [catalog.WEBHOOK_ENDPOINTS])
    endpoints.start()
    seen_endpoints: list[object] = []
    with Receiver(behaviour="fail") as receiver, services() as running:
        sealer = Sealer(None)
        produce(topics, catalog.WEBHOOK_COMMANDS, "WebhookCommand", [
            (r, command(r, "register", at=now, url=receiver.url(f"/r/{r}"), enabled=True,
                        secret=sealer.seal(secrets[r]))) for r in RESELLERS])
        first = Service(topics, tmp_path / "data", topics.group_prefix,
                        module="connectors.crm_webhook", env=ENV)
        running.append(first)

        def registered() -> bool:
            seen_endpoints.extend(endpoints.poll(timeout_ms=0))
            return len(seen_endpoints) >= len(RESELLERS)

        _wait("the endpoints were never registered", registered, first)
        produce(topics, catalog.LEADS, "LeadAssigned", [(c["lead_id"], c) for c in changes])

        def storming() -> bool:  # every assignment failed twice: the retries are under way
            tries: dict[str, int] = defaultdict(int)
            for delivery in receiver.deliveries():
                tries[delivery.headers["webhook-id"]] += 1
            return sum(n >= 2 for n in tries.values()) >= LEADS_EACH * len(RESELLERS)

        _wait("no retry storm", storming, first)
        first.kill()
        before = len(receiver.deliveries())
        for reseller in RESELLERS:
            receiver.behave(f"/r/{reseller}", "ok")
        second = Service(topics, tmp_path / "data", topics.group_prefix,
                         module="connectors.crm_webhook", env=ENV)
        running.append(second)

        def delivered() -> set[str]:
            return {d.headers["webhook-id"] for d in receiver.deliveries()
                    if d.status_answered == 204}

        _wait("not every message was delivered", lambda: delivered() >= set(expected), second)
        time.sleep(1.5)  # a wrongly repeated or extra delivery gets the time to show up
        second.stop()
        got = receiver.deliveries()
    endpoints.close()

    assert before < len(got), "nothing was sent after the restart"
    [loaded] = [json.loads(line) for line in second.lines if '"webhook.state_loaded"' in line]
    assert loaded["pending"] > 0, "the restart found nothing pending"
    _check(got, expected, secrets)


def _check(got: list[Delivery], expected: Mapping[str, object],
           secrets: dict[str, str]) -> None:
    bodies: dict[str, bytes] = {}
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    for delivery in got:
        reseller = delivery.path.rsplit("/", 1)[-1]
        Webhook(secrets[reseller]).verify(delivery.body, delivery.headers)
        message_id = delivery.headers["webhook-id"]
        assert message_id in expected, message_id  # nothing that was not asked for
        assert bodies.setdefault(message_id, delivery.body) == delivery.body
        body = delivery.json()
        ids[body["data"]["lead_id"], body["type"]].add(message_id)
    assert all(len(one) == 1 for one in ids.values())  # one id per message
    assert len(ids) == len(expected)  # and every message came
    through: set[str] = set()
    for delivery in got:  # arrival order: an update only after its lead's assignment
        body = delivery.json()
        lead_id = body["data"]["lead_id"]
        if body["type"] == "lead.updated":
            assert lead_id in through, lead_id
        elif delivery.status_answered == 204:
            through.add(lead_id)
