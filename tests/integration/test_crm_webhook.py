"""The delivery component against a real broker and real HTTP receivers, in this process.

The processor is wired as ``python -m connectors.crm_webhook`` wires it (``build``)
with a short retry schedule and its clock replaced by one the test moves ahead
of the wall's (a few minutes at most: signatures stay within a receiver's
tolerance). Every request a receiver got is verified with
``standardwebhooks.Webhook(secret).verify``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from connectors.crm_webhook import cli
from connectors.crm_webhook.__main__ import build
from connectors.crm_webhook.processor import DeliveryProcessor
from connectors.crm_webhook.receiver import Delivery, Receiver
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.signing import new_secret
from hub.config import Settings
from hub.processor import ProcessorLoop, store_path
from hub.reader import TopicReader
from hub.service import started
from hub.store import Store
from schemas import catalog
from schemas.webhooks import millis
from tests.integration.test_routing_service import produce
from tests.unit.test_crm_webhook_processor import command, lead_change, withdrawal

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

POLL_MS = 200


class Clock:
    """The wall clock, and as far ahead of it as the test moved it (epoch ms)."""

    def __init__(self) -> None:
        self.ahead = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.ahead


class Watch:
    """What the component wrote: delivery attempts and endpoint versions."""

    def __init__(self, settings: Settings) -> None:
        self.reader = TopicReader(settings, [catalog.DELIVERIES, catalog.WEBHOOK_ENDPOINTS])
        self.reader.start()
        self.deliveries: list[dict[str, Any]] = []
        self.endpoints: list[dict[str, Any]] = []

    def poll(self) -> None:
        for record in self.reader.poll(timeout_ms=0):
            wanted = self.deliveries if record.topic == catalog.DELIVERIES else self.endpoints
            wanted.append(record.datum)

    def of(self, reseller: str) -> list[dict[str, Any]]:
        return [d for d in self.deliveries if d["reseller_id"] == reseller]

    def endpoint(self, reseller: str) -> dict[str, Any]:
        return max((e for e in self.endpoints if e["reseller_id"] == reseller),
                   key=lambda e: e["version"])


@contextmanager
def component(settings: Settings, clock: Clock) -> Iterator[ProcessorLoop]:
    wiring = build(settings)
    assert isinstance(wiring.processor, DeliveryProcessor)
    wiring.processor.clock = clock
    assert wiring.close is not None
    with Store(store_path(settings, "crm_webhook")) as store, \
            started(wiring, settings=settings, store=store) as loop:
        yield loop


def run_until(loop: ProcessorLoop, watch: Watch, done: Callable[[], bool], *,
              clock: Clock | None = None, step_ms: int = 0, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, (
            f"not done; {len(watch.deliveries)} attempts recorded: {watch.deliveries[-5:]}")
        loop.run_once(timeout_ms=POLL_MS)
        if clock is not None:
            clock.ahead += step_ms
        watch.poll()


def verify(delivery: Delivery, secret: str) -> None:
    """Raise unless ``secret`` signed the delivery (the library's verify, clock included)."""
    Webhook(secret).verify(delivery.body, delivery.headers)


def register(settings: Settings, receiver: Receiver, sealer: Sealer, clock: Clock,
             behaviours: dict[str, str]) -> dict[str, str]:
    """Register one endpoint per reseller, at /r/<reseller>; return their secrets."""
    secrets = {reseller: new_secret() for reseller in behaviours}
    for reseller, behaviour in behaviours.items():
        receiver.behave(f"/r/{reseller}", behaviour)
        receiver.secrets(f"/r/{reseller}", [secrets[reseller]])
    produce(settings, catalog.WEBHOOK_COMMANDS, "WebhookCommand", [
        (reseller, command(reseller, "register", at=clock(), url=receiver.url(f"/r/{reseller}"),
                           enabled=True, secret=sealer.seal(secrets[reseller])))
        for reseller in behaviours])
    return secrets


def leads(settings: Settings, *datums: dict[str, Any]) -> None:
    produce(settings, catalog.LEADS, "LeadAssigned", [(d["lead_id"], d) for d in datums])


def test_each_endpoint_gets_what_its_answers_call_for_and_a_slow_one_holds_no_other(
        topics: Settings) -> None:
    settings = topics.model_copy(update={
        "webhook_retry_schedule_s": "0,1,1,1", "webhook_allow_hosts": "127.0.0.1",
        "webhook_per_endpoint": 2, "webhook_timeout_s": 60.0})
    clock = Clock()
    behaviours = {"ok": "ok", "fail": "fail", "flap": "flap", "gone": "gone",
                  "throttle": "throttle:20", "slow": "hang"}
    watch = Watch(settings)
    with Receiver(clock=clock) as receiver, Receiver(behaviour="hang") as hanging, \
            component(settings, clock) as loop:
        secrets = register(settings, receiver, Sealer(None), clock, behaviours)
        # The slow reseller's endpoint never answers while it runs.
        produce(settings, catalog.WEBHOOK_COMMANDS, "WebhookCommand", [("slow", command(
            "slow", "register", at=clock(), url=hanging.url("/r/slow")))])
        hanging.secrets("/r/slow", [secrets["slow"]])
        run_until(loop, watch, lambda: len(watch.endpoints) >= 7)
        now = clock()
        leads(settings, *(lead_change(f"ok-{i}", holder="ok", at=now) for i in range(3)),
              lead_change("fail-1", holder="fail", at=now),
              lead_change("flap-1", holder="flap", at=now),
              withdrawal("flap-1", "flap", reason="consent_withdrawn", at=now),
              lead_change("gone-1", holder="gone", at=now),
              lead_change("throttle-1", holder="throttle", at=now),
              *(lead_change(f"slow-{i}", holder="slow", at=now) for i in range(4)))
        run_until(loop, watch, lambda: len(receiver.deliveries("/r/ok")) >= 3)
        run_until(loop, watch, lambda: len(hanging.deliveries("/r/slow")) >= 2)
        for _ in range(3):  # the slow endpoint holds two attempts, never more
            loop.run_once(timeout_ms=POLL_MS)
        assert len(hanging.deliveries("/r/slow")) == 2
        # Retries: a step of the clock per round, 1 s apart on the schedule, 20 s after a 429.
        run_until(loop, watch, lambda: (
            len(receiver.deliveries("/r/fail")) >= 4 and len(receiver.deliveries("/r/flap")) >= 4
            and len(receiver.deliveries("/r/throttle")) >= 2
            and any(e["disabled_reason"] == "gone" for e in watch.endpoints)
            and any(d["outcome"] == "failed" for d in watch.of("fail"))),
            clock=clock, step_ms=1000)
        leads(settings, lead_change("gone-2", holder="gone", at=clock()))
        # The slow reseller moves to a working endpoint: what hung is sent there.
        receiver.behave("/r/slow", "ok")
        produce(settings, catalog.WEBHOOK_COMMANDS, "WebhookCommand", [("slow", command(
            "slow", "register", at=clock(), url=receiver.url("/r/slow")))])
        moved = receiver.url("/r/slow")
        run_until(loop, watch, lambda: any(
            e["reseller_id"] == "slow" and e["url"] == moved and e["version"] > 1
            for e in watch.endpoints))
        # What hung is answered 503 (from a URL no longer the endpoint's: no effect on
        # it), and goes to the new one on the schedule, with the two that waited.
        hanging.stop()
        run_until(loop, watch, lambda: len(watch.of("gone")) >= 2 and sum(
            d["outcome"] == "delivered" for d in watch.of("slow")) >= 4, clock=clock,
            step_ms=1000)
    watch.reader.close()
    _check_outcomes(watch, receiver, hanging, secrets)


def _check_outcomes(watch: Watch, receiver: Receiver, hanging: Receiver,
                    secrets: dict[str, str]) -> None:
    behaviours = secrets  # one secret per reseller
    for reseller in behaviours:
        for delivery in receiver.deliveries(f"/r/{reseller}"):
            verify(delivery, secrets[reseller])
    for delivery in hanging.deliveries():
        verify(delivery, secrets["slow"])
    outcomes = {r: [(d["attempt"], d["outcome"]) for d in watch.of(r)] for r in behaviours}
    assert outcomes["ok"] == [(1, "delivered")] * 3
    assert outcomes["fail"] == [(1, "retrying"), (2, "retrying"), (3, "retrying"), (4, "failed")]
    assert len({d.headers["webhook-id"] for d in receiver.deliveries("/r/fail")}) == 1
    # Flapping, in order: the withdrawal only once the assignment is through.
    flap = [(d.json()["type"], d.status_answered) for d in receiver.deliveries("/r/flap")]
    assert flap == [("lead.assigned", 500), ("lead.assigned", 204),
                    ("lead.withdrawn", 500), ("lead.withdrawn", 204)]
    assert outcomes["flap"] == [(1, "retrying"), (2, "delivered")] * 2
    gone_first, gone_later = watch.of("gone")
    assert (gone_first["outcome"], gone_first["http_status"]) == ("failed", 410)
    assert (gone_later["outcome"], gone_later["attempt"], gone_later["lead_id"]) == (
        "skipped", 0, "gone-2")
    assert len(receiver.deliveries("/r/gone")) == 1
    assert watch.endpoint("gone")["enabled"] is False
    throttled, through = watch.of("throttle")
    assert (throttled["outcome"], throttled["http_status"]) == ("retrying", 429)
    due, at = millis(throttled["next_attempt_at"]), millis(throttled["occurred_at"])
    assert due is not None
    assert at is not None
    assert due == at + 20_000
    second = receiver.deliveries("/r/throttle")[1]
    assert second.received_ms >= due  # by the simulated clock
    assert through["outcome"] == "delivered"
    slow = watch.of("slow")
    assert sorted(d["lead_id"] for d in slow if d["outcome"] == "delivered") == [
        f"slow-{i}" for i in range(4)]
    late = [d for d in slow if d["url"] == hanging.url("/r/slow")]
    assert [(d["outcome"], d["http_status"]) for d in late] == [("retrying", 503)] * 2
    assert watch.endpoint("slow")["enabled"] is True
    assert watch.endpoint("slow")["failing_since"] is None


def test_rotation_carries_two_signatures_and_a_replay_resends_the_original_ids(
        topics: Settings) -> None:
    settings = topics.model_copy(update={
        "webhook_retry_schedule_s": "0,1,1", "webhook_allow_hosts": "127.0.0.1",
        "webhook_secret_key": SecretStr("a long random operator key for the test")})
    sealer = Sealer.from_settings(settings)
    clock = Clock()
    watch = Watch(settings)
    started = clock()
    with Receiver(clock=clock) as receiver, component(settings, clock) as loop:
        [first] = register(settings, receiver, sealer, clock, {"r1": "ok"}).values()
        run_until(loop, watch, lambda: len(watch.endpoints) >= 1)
        leads(settings, lead_change("lead-1", holder="r1", at=clock()))
        run_until(loop, watch, lambda: len(receiver.deliveries()) >= 1)
        run_until(loop, watch, lambda: len(watch.deliveries) >= 1)
        second = new_secret()
        produce(settings, catalog.WEBHOOK_COMMANDS, "WebhookCommand", [("r1", command(
            "r1", "rotate", at=clock(), secret=sealer.seal(second), overlap_ms=60_000))])
        run_until(loop, watch, lambda: len(watch.endpoints) >= 2)
        leads(settings, lead_change("lead-2", holder="r1", at=clock()))
        run_until(loop, watch, lambda: len(receiver.deliveries()) >= 2)
        clock.ahead += 61_000  # the overlap is over: the old secret is dropped
        run_until(loop, watch, lambda: len(watch.endpoints) >= 3)
        leads(settings, lead_change("lead-3", holder="r1", at=clock()))
        run_until(loop, watch, lambda: len(receiver.deliveries()) >= 3)
        run_until(loop, watch, lambda: len(watch.deliveries) >= 3)
        since = datetime.fromtimestamp((started - 1000) / 1000, UTC).isoformat()
        asked = subprocess.run(
            [sys.executable, "-m", "hub.cli", "deliveries", "replay", "--reseller", "r1",
             "--since", since], env={
                "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
                "PASSPORT_HUB_TOPIC_PREFIX": settings.topic_prefix,
                "PASSPORT_HUB_LOG_FORMAT": "json", "PATH": ""},
            capture_output=True, text=True, timeout=60, check=False)
        assert asked.returncode == 0, asked.stderr
        assert "replay the messages of r1" in asked.stdout
        run_until(loop, watch, lambda: len(receiver.deliveries()) >= 6)
        run_until(loop, watch, lambda: len(watch.deliveries) >= 6)
    watch.reader.close()

    got = receiver.deliveries()
    assert [len(d.headers["webhook-signature"].split(" ")) for d in got[:3]] == [1, 2, 1]
    verify(got[0], first)
    verify(got[1], first)
    verify(got[1], second)
    verify(got[2], second)
    with pytest.raises(WebhookVerificationError):
        verify(got[2], first)
    for replayed in got[3:]:
        verify(replayed, second)
    ids = [d.headers["webhook-id"] for d in got]
    assert sorted(ids[3:]) == sorted(ids[:3])  # the same messages, under their ids
    assert [e["secrets"][0]["fingerprint"] for e in watch.endpoints][-1] == watch.endpoints[
        1]["secrets"][0]["fingerprint"]
    assert [len(e["secrets"]) for e in watch.endpoints] == [1, 2, 1]
    assert [d["replay"] for d in watch.deliveries] == [False] * 3 + [True] * 3
    assert all(d["outcome"] == "delivered" for d in watch.deliveries)
    assert len({d["event_id"] for d in watch.deliveries}) == 6


def test_the_replay_command_line_refuses_bad_times() -> None:
    for bad in (["replay", "--reseller", "r1", "--since", "yesterday"],
                ["replay", "--reseller", "r1", "--since", "2026-01-02", "--until", "2026-01-01"],
                ["replay", "--since", "2026-01-02"]):
        with pytest.raises(SystemExit) as exited:
            cli.arguments(bad)
        assert exited.value.code == 2
    args = cli.arguments(["replay", "--reseller", "r1", "--since", "2026-01-02T10:00:00Z",
                          "--until", "1767355200000"])
    assert (args.since, args.until) == (1767348000000, 1767355200000)
