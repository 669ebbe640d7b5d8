"""Poison written straight onto every input topic, on a real broker: dead-lettered with its
cause, and the next good record of the same partition applied.

Three kinds on each topic: bytes that are no Avro frame, a frame whose schema
fingerprint no schema has, and a valid frame with a value that cannot be (an
unknown département, module, category, command, a negative capacity, a
version 0) or of a record the topic does not carry. The passport, routing and
delivery services read their inputs through the processor loop (hub/processor.py);
the routers' reseller table and the read model read theirs whole
(hub/reader.py), and dead-letter through the router's outbox and with their own
producer (services/readmodel/letters.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from connectors.crm_webhook.__main__ import build as build_delivery
from hub import deadletter, kafka
from hub.config import Settings
from hub.processor import ProcessorLoop, store_path
from hub.service import Wiring, started
from hub.store import Store
from schemas import catalog
from schemas.codec import MARKER, Codec
from services.passport.__main__ import build as build_passport
from services.readmodel import ReadModel
from services.routing.__main__ import build as build_routing
from tests.integration.test_readmodel import lead_datum, passport_datum
from tests.integration.test_routing_service import answer, lead_request, profile
from tests.unit.test_crm_webhook_processor import command, lead_change
from tests.unit.test_readmodel_webhooks import attempt, endpoint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SIREN = "732829320"
GARBAGE = b"\x00garbage, no Avro frame"
#: A frame whose fingerprint names no schema of schemas/avro.
UNKNOWN = MARKER + bytes.fromhex("deadbeef00000001") + b"\x02\x04"
POLL_MS = 200
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

Poison = tuple[str, str, bytes]
"""(catalog topic, key, value)."""


def _frame(record: str, datum: dict[str, Any]) -> bytes:
    return Codec.default().encode(record, datum)


def _poison(topic: str, key: str, impossible: bytes) -> list[Poison]:
    return [(topic, key, GARBAGE), (topic, key, UNKNOWN), (topic, key, impossible)]


def _produce(settings: Settings, items: Sequence[Poison]) -> None:
    """Write values in this order (one key per partition: the order is kept), acknowledged."""
    producer = kafka.producer(settings)
    try:
        for topic, key, value in items:
            producer.send(settings.topic(topic), key=key.encode(), value=value).get(timeout=10)
    finally:
        producer.close()


class Letters:
    """The dead-letter topic, read whole without a group as it grows."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consumer = kafka.consumer(settings, group=None)
        topic = settings.topic(catalog.DLQ)
        found = kafka.await_partitions(self.consumer, [topic])
        partitions = [TopicPartition(topic, p) for p in sorted(found[topic])]
        self.consumer.assign(partitions)
        self.consumer.seek_to_beginning(*partitions)
        self.seen: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        for records in self.consumer.poll(timeout_ms=0).values():
            self.seen.extend({**{k: v.decode() for k, v in r.headers}, "value": r.value,
                              "key": r.key} for r in records)
        return self.seen

    def causes(self, component: str) -> list[tuple[str, str, str]]:
        """(source base topic, stage, error class) of a component's letters, sorted."""
        prefix = self.settings.topic_prefix
        return sorted((d[deadletter.SOURCE_TOPIC].removeprefix(prefix), d[deadletter.STAGE],
                       d[deadletter.ERROR_CLASS]) for d in self.seen
                      if d[deadletter.COMPONENT] == component)

    def close(self) -> None:
        self.consumer.close()


@contextmanager
def _loop(settings: Settings, name: str, wiring: Wiring) -> Iterator[ProcessorLoop]:
    with Store(store_path(settings, name)) as store, \
            started(wiring, settings=settings, store=store) as loop:
        yield loop


def _until(turn: Callable[[], object], done: Callable[[], bool], what: str,
           timeout_s: float = 40) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        turn()


def _expected(third: dict[str, tuple[str, str]]) -> list[tuple[str, str, str]]:
    """Each topic's three letters: decode (garbage), decode (fingerprint), and the third's
    (stage, error class) as ``third`` says."""
    return sorted([(t, "decode", "MalformedRecordError") for t in third]
                  + [(t, "decode", "UnknownSchemaError") for t in third]
                  + [(t, stage, error) for t, (stage, error) in third.items()])


def _validate(error: str, *topics: str) -> dict[str, tuple[str, str]]:
    return {topic: ("validate", error) for topic in topics}


def _event(siren: str, minutes: int, **fields: Any) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "occurred_at": T0 + timedelta(minutes=minutes),
            "source": "test", "schema_version": 1, "siren": siren, **fields}


def test_the_passport_inputs(topics: Settings) -> None:
    enrolment = _event(SIREN, 0, name="Boulangerie Martin", departement="78", naf=None,
                       contact_email=None, consent_share_with_resellers=False)
    poison = (_poison(catalog.ENROLMENTS, SIREN, _frame(
                  "BusinessEnrolled", {**enrolment, "event_id": str(uuid.uuid4()),
                                       "departement": "999"}))
              + _poison(catalog.TRAINING, SIREN, _frame(
                  "ModuleCompleted", _event(SIREN, 1, module_id="no-such-module")))
              + _poison(catalog.OFFER_REQUESTS, SIREN, _frame(
                  "OfferRequested", _event(SIREN, 2, category="no-such-category"))))
    good = [(catalog.ENROLMENTS, SIREN, _frame("BusinessEnrolled", enrolment)),
            (catalog.TRAINING, SIREN, _frame("ModuleCompleted",
                                             _event(SIREN, 3, module_id="email-pro"))),
            (catalog.OFFER_REQUESTS, SIREN, _frame("OfferRequested",
                                                   _event(SIREN, 4, category="e-commerce")))]
    _produce(topics, poison + good)
    letters = Letters(topics)
    model = ReadModel(topics, topics.data_dir / "rm.sqlite", poll_timeout_ms=100)
    model.start()
    try:
        with _loop(topics, "passport", build_passport(topics)) as loop:
            def applied() -> bool:
                found = model.passport(SIREN)
                return bool(found and found["modules_completed"] == ["email-pro"]
                            and found["offer_requests"] == 1
                            and len(letters.poll()) >= 9)
            _until(lambda: loop.run_once(timeout_ms=POLL_MS), applied, "the good records")
    finally:
        model.stop()
    assert letters.causes("passport") == _expected(_validate(
        "InvalidEventError", catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS))
    impossible = [d for d in letters.seen if d[deadletter.STAGE] == "validate"]
    assert sorted(d[deadletter.ERROR_MESSAGE] for d in impossible) == [
        "BusinessEnrolled: unknown département '999'",
        "ModuleCompleted: unknown module 'no-such-module'",
        "OfferRequested: unknown category 'no-such-category'"]
    assert {d["value"] for d in letters.seen if d["value"] in (GARBAGE, UNKNOWN)} == {
        GARBAGE, UNKNOWN}  # the original bytes, for ops to inspect
    assert {d["key"] for d in letters.seen} == {SIREN.encode()}
    letters.close()


def test_the_routing_inputs_and_its_reseller_table(topics: Settings) -> None:
    refused = lead_request(departement="999")
    good = lead_request()
    minus = _frame("ResellerProfile", profile("alpha", ["78"], capacity=-5))
    _produce(topics, [
        *_poison(catalog.RESELLERS, "alpha", minus),
        (catalog.RESELLERS, "alpha", _frame("ResellerProfile", profile("alpha", ["78"]))),
        *_poison(catalog.LEAD_REQUESTS, good["lead_id"], _frame("LeadRequested", refused)),
        (catalog.LEAD_REQUESTS, good["lead_id"], _frame("LeadRequested", good))])
    letters = Letters(topics)
    wiring = build_routing(topics)
    with _loop(topics, "routing", wiring) as loop:
        processor = wiring.processor
        assert list(processor.registry) == ["alpha"]  # type: ignore[attr-defined]

        def turn() -> None:
            loop.run_once(timeout_ms=POLL_MS)
            letters.poll()

        def holder() -> str | None:
            state = processor.state  # type: ignore[attr-defined]
            lead = None if state is None else state.leads.get(good["lead_id"])
            return None if lead is None else str(lead.status)

        _until(turn, lambda: holder() == "assigned" and len(letters.causes("routing")) >= 6,
               "the lead")
        maybe = _frame("LeadAnswered", answer(good["lead_id"], "alpha", "maybe"))
        accepted = _frame("LeadAnswered", answer(good["lead_id"], "alpha", "accepted"))
        _produce(topics, [*_poison(catalog.LEAD_RESPONSES, good["lead_id"], maybe),
                          (catalog.LEAD_RESPONSES, good["lead_id"], accepted)])
        _until(turn, lambda: holder() == "accepted" and len(letters.causes("routing")) >= 9,
               "the answer")
    assert letters.causes("routing") == _expected({
        **_validate("InvalidProfileError", catalog.RESELLERS),
        **_validate("InvalidLeadError", catalog.LEAD_REQUESTS),
        **_validate("InvalidAnswerError", catalog.LEAD_RESPONSES)})
    assert any("capacity -5" in d[deadletter.ERROR_MESSAGE] for d in letters.seen)
    letters.close()


def test_the_delivery_inputs(topics: Settings) -> None:
    settings = topics.model_copy(update={"webhook_allow_hosts": "127.0.0.1"})
    now = int(time.time() * 1000)
    stray = _frame("BusinessEnrolled", _event(
        SIREN, 0, name="Not a lead", departement="78", naf=None, contact_email=None,
        consent_share_with_resellers=False))
    _produce(settings, [
        *_poison(catalog.LEADS, "L1", stray),
        (catalog.LEADS, "L1", _frame("LeadAssigned", lead_change("L1", at=now))),
        *_poison(catalog.WEBHOOK_COMMANDS, "r1",
                 _frame("WebhookCommand", command("r1", "explode", at=now)))])
    letters = Letters(settings)
    model = ReadModel(settings, settings.data_dir / "rm.sqlite", poll_timeout_ms=100)
    model.start()
    try:
        with _loop(settings, "crm_webhook", build_delivery(settings)) as loop:
            def turn() -> None:
                loop.run_once(timeout_ms=POLL_MS)
                letters.poll()
            # The lead after the poison: its message kept and, no endpoint, logged skipped.
            _until(turn, lambda: bool(model.deliveries("r1"))
                   and len(letters.causes("crm_webhook")) >= 6
                   and len(letters.causes("readmodel")) >= 3, "the lead's delivery record")
    finally:
        model.stop()
    assert model.deliveries("r1")[0]["outcome"] == "skipped"
    assert letters.causes("crm_webhook") == _expected(
        _validate("CommandError", catalog.LEADS, catalog.WEBHOOK_COMMANDS))
    # The read model reads the lead log too: the same poison, its own letters.
    assert letters.causes("readmodel") == _expected(
        _validate("UnexpectedRecordError", catalog.LEADS))
    letters.close()


def _readmodel_poison() -> tuple[list[Poison], list[Poison]]:
    """Poison on each of the read model's five topics, and a good record after it."""
    lead = lead_datum("L1", "alpha")
    reseller = profile("alpha", ["78"])
    poison = (
        _poison(catalog.PASSPORTS, SIREN, _frame(
            "PassportSnapshot", {**passport_datum(), "region": "99"}))
        + _poison(catalog.LEADS, "L1", _frame("LeadAssigned", {
            **lead, "event_id": str(uuid.uuid4()), "schema_version": 2, "version": 0}))
        + _poison(catalog.RESELLERS, "alpha", _frame(
            "ResellerProfile", {**reseller, "capacity": -5}))
        + _poison(catalog.WEBHOOK_ENDPOINTS, "alpha", _frame(
            "WebhookDelivery", attempt("msg_1", 1, "delivered", reseller="alpha", status=200)))
        + _poison(catalog.DELIVERIES, "alpha", _frame(
            "WebhookEndpoint", endpoint(1, reseller="alpha"))))
    good = [(catalog.PASSPORTS, SIREN, _frame("PassportSnapshot", passport_datum())),
            (catalog.LEADS, "L1", _frame("LeadAssigned", lead)),
            (catalog.RESELLERS, "alpha", _frame("ResellerProfile", reseller)),
            (catalog.WEBHOOK_ENDPOINTS, "alpha",
             _frame("WebhookEndpoint", endpoint(1, reseller="alpha"))),
            (catalog.DELIVERIES, "alpha", _frame(
                "WebhookDelivery", attempt("msg_1", 1, "delivered", reseller="alpha",
                                           status=200)))]
    return poison, good


def _serves_the_good_records(model: ReadModel) -> bool:
    return bool(model.passport(SIREN) and model.lead("L1")
                and model.webhook_endpoint("alpha") and model.deliveries("alpha")
                and [r["reseller_id"] for r in model.kpi()["resellers"]["by_reseller"]]
                == ["alpha"])


def test_the_read_model_inputs_and_a_rebuild_letters_nothing_twice(
        topics: Settings, tmp_path: Path) -> None:
    poison, good = _readmodel_poison()
    _produce(topics, poison[:9] + good[:3])  # some before the model starts, some after
    letters = Letters(topics)
    registry = CollectorRegistry()
    model = ReadModel(topics, tmp_path / "rm.sqlite", poll_timeout_ms=100, registry=registry)
    model.start()
    try:
        assert model.wait_caught_up(30)
        _produce(topics, poison[9:] + good[3:])
        _until(lambda: time.sleep(0.1), lambda: _serves_the_good_records(model)
               and len(letters.poll()) >= 15, "the good records")
        assert model.caught_up
        assert model.dead_letters == 15
        exposed = generate_latest(registry).decode()
        assert ('passport_hub_dead_letters_total{component="readmodel",'
                'reason="ImpossibleValueError",stage="apply",topic="pn.resellers.v1"} 1.0'
                ) in exposed
    finally:
        model.stop()
    impossible = ("apply", "ImpossibleValueError")
    assert letters.causes("readmodel") == _expected({
        catalog.PASSPORTS: impossible, catalog.LEADS: impossible, catalog.RESELLERS: impossible,
        **_validate("UnexpectedRecordError", catalog.WEBHOOK_ENDPOINTS, catalog.DELIVERIES)})
    # A restart rebuilds the file from the topics: the same poison, no letter again.
    again = ReadModel(topics, tmp_path / "rm.sqlite", poll_timeout_ms=100)
    again.start()
    try:
        assert again.wait_caught_up(30)
        assert _serves_the_good_records(again)
        assert again.dead_letters == 0
    finally:
        again.stop()
    time.sleep(0.5)
    assert len(letters.poll()) == 15
    letters.close()
