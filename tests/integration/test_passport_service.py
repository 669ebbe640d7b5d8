"""The passport service against a real broker: snapshots, leads, dead letters, the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hub import deadletter, kafka
from hub.config import Settings
from hub.processor import Inbound, ProcessorLoop, store_path
from hub.reader import TopicReader
from hub.service import processor_loop
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.passport.__main__ import build

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ISSUED, TRAINING = "732829320", "542051180"
T0 = datetime(2009, 3, 2, 9, 0, tzinfo=UTC)
# Not a divisor of the 3 s group-join delay (Tansu's, and Apache Kafka's initial
# rebalance delay): kafka-python 3.0.12 drops a join that completes between two
# polls and joins again, and with 500 ms the answer lands on a poll boundary.
POLL_MS = 400
TOPIC_OF = {"BusinessEnrolled": catalog.ENROLMENTS, "ModuleCompleted": catalog.TRAINING,
            "OfferRequested": catalog.OFFER_REQUESTS}


def _event(record: str, siren: str, minutes: int, **fields: Any) -> tuple[str, dict[str, Any]]:
    return record, {"event_id": str(uuid.uuid4()), "occurred_at": T0 + timedelta(minutes=minutes),
                    "source": "test", "schema_version": 1, "siren": siren, **fields}


def enrolled(siren: str, *, consent: bool = True) -> tuple[str, dict[str, Any]]:
    return _event("BusinessEnrolled", siren, 0, name=f"Entreprise {siren}", departement="78",
                  naf="47.11D", contact_email=f"{siren}@example.fr",
                  consent_share_with_resellers=consent)


def completed(siren: str, module_id: str, minutes: int) -> tuple[str, dict[str, Any]]:
    return _event("ModuleCompleted", siren, minutes, module_id=module_id)


def offer(siren: str, minutes: int) -> tuple[str, dict[str, Any]]:
    return _event("OfferRequested", siren, minutes, category="e-commerce")


def produce(settings: Settings, *items: tuple[str, dict[str, Any]] | tuple[str, str, bytes]
            ) -> None:
    """Send Avro events (record, datum) or raw values (topic, key, bytes), acknowledged."""
    codec = Codec.default()
    producer = kafka.producer(settings)
    try:
        for item in items:
            if len(item) == 3:
                topic, key, value = item
            else:
                record, datum = item
                topic, key, value = TOPIC_OF[record], datum["siren"], codec.encode(record, datum)
            producer.send(settings.topic(topic), key=str(key).encode(), value=value)
        producer.flush()
    finally:
        producer.close()


class Outputs:
    """Everything the service wrote to the topics it writes, read back as it arrives."""

    def __init__(self, settings: Settings, topics: list[str]) -> None:
        self.reader = TopicReader(settings, topics)
        self.reader.start()
        self.seen: list[Inbound] = []

    def poll(self) -> None:
        self.seen.extend(self.reader.poll(timeout_ms=0))

    def on(self, topic: str) -> list[Inbound]:
        return [r for r in self.seen if r.topic == topic]

    def latest(self, topic: str) -> dict[str, dict[str, Any]]:
        """The last value per key, as a compacted topic's reader restores it."""
        return {r.datum["siren"]: r.datum for r in self.on(topic)}


@contextmanager
def running(settings: Settings) -> Iterator[ProcessorLoop]:
    with Store(store_path(settings, "passport")) as store:
        loop = processor_loop(build(settings), settings=settings, store=store,
                              registry=CollectorRegistry())
        loop.start()
        try:
            yield loop
        finally:
            loop.close()


def run_until(loop: ProcessorLoop, outputs: Outputs, done: Callable[[], bool],
              timeout_s: float = 30) -> None:
    """Run batches until ``done``; the deadline bounds the wait, it asserts nothing else."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"not done; outputs so far: {len(outputs.seen)}"
        loop.run_once(timeout_ms=POLL_MS)
        outputs.poll()


def test_passports_are_issued_and_a_consented_offer_becomes_one_lead(topics: Settings) -> None:
    # Training reported before the enrolment, on another topic: parked, then applied.
    produce(topics, completed(ISSUED, "website-create", 10), completed(ISSUED, "email-pro", 20),
            completed(ISSUED, "website-create", 25), completed(ISSUED, "office-tools", 30),
            enrolled(ISSUED), enrolled(TRAINING), completed(TRAINING, "email-pro", 5))
    outputs = Outputs(topics, [catalog.PASSPORTS, catalog.LEAD_REQUESTS])
    with running(topics) as loop:
        def issued() -> bool:
            latest = outputs.latest(catalog.PASSPORTS)
            return (latest.get(ISSUED, {}).get("state") == "passport_issued"
                    and latest.get(TRAINING, {}).get("state") == "in_training")
        run_until(loop, outputs, issued)
        # The offer is asked once the passport exists, as an advisor would.
        request = offer(ISSUED, 60)
        produce(topics, request, offer(TRAINING, 60))
        run_until(loop, outputs, lambda: all(
            s["offer_requests"] == 1 for s in outputs.latest(catalog.PASSPORTS).values()))
    latest = outputs.latest(catalog.PASSPORTS)
    passport = latest[ISSUED]
    assert passport["passport_issued_at"] == T0 + timedelta(minutes=30)
    assert passport["modules_completed"] == ["website-create", "email-pro", "office-tools"]
    assert (passport["offer_requests"], passport["leads_requested"]) == (1, 1)
    assert passport["region"] == "11"
    assert latest[TRAINING]["leads_requested"] == 0
    assert set(passport["input_offsets"]) <= {f"{t}/{p}" for t in TOPIC_OF.values()
                                              for p in range(catalog.SIREN_PARTITIONS)}
    [lead] = outputs.on(catalog.LEAD_REQUESTS)
    assert lead.datum["siren"] == ISSUED
    assert lead.datum["occurred_at"] == T0 + timedelta(minutes=60)
    assert lead.key == lead.datum["lead_id"].encode()
    # One snapshot per business per batch: never more snapshots than input records.
    assert len(outputs.on(catalog.PASSPORTS)) <= 10
    outputs.reader.close()


def test_garbage_and_bad_sirens_go_to_the_dead_letters_and_processing_continues(
        topics: Settings) -> None:
    bad_siren = completed("732829321", "email-pro", 1)
    produce(topics, (catalog.ENROLMENTS, ISSUED, b"not avro"), bad_siren, enrolled(ISSUED))
    outputs = Outputs(topics, [catalog.PASSPORTS])
    dlq = kafka.consumer(topics, group=None)
    dlq.subscribe([topics.topic(catalog.DLQ)])
    letters: list[Any] = []
    with running(topics) as loop:
        def done() -> bool:
            letters.extend(r for records in dlq.poll(timeout_ms=0).values() for r in records)
            return ISSUED in outputs.latest(catalog.PASSPORTS) and len(letters) >= 2
        run_until(loop, outputs, done)
    dlq.close()
    outputs.reader.close()
    by_stage = {dict(r.headers)[deadletter.STAGE]: r for r in letters}
    assert set(by_stage) == {b"decode", b"validate"}
    garbage = by_stage[b"decode"]
    headers = dict(garbage.headers)
    assert garbage.value == b"not avro"
    assert garbage.key == ISSUED.encode()
    assert headers[deadletter.SOURCE_TOPIC] == topics.topic(catalog.ENROLMENTS).encode()
    assert headers[deadletter.SOURCE_OFFSET] == b"0"
    assert headers[deadletter.COMPONENT] == b"passport"
    invalid = dict(by_stage[b"validate"].headers)
    assert invalid[deadletter.ERROR_CLASS] == b"InvalidEventError"
    assert b"SIREN" in invalid[deadletter.ERROR_MESSAGE]
    assert invalid[deadletter.SOURCE_TOPIC] == topics.topic(catalog.TRAINING).encode()
    decoded = Codec.default().decode(by_stage[b"validate"].value)
    assert decoded.datum["event_id"] == bad_siren[1]["event_id"]


def test_python_m_services_passport_runs_and_stops_on_sigterm(topics: Settings,
                                                              tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": topics.bootstrap,
           "PASSPORT_HUB_TOPIC_PREFIX": topics.topic_prefix,
           "PASSPORT_HUB_GROUP_PREFIX": topics.group_prefix,
           "PASSPORT_HUB_DATA_DIR": str(tmp_path / "process"),
           "PASSPORT_HUB_LOG_FORMAT": "json"}
    produce(topics, enrolled(ISSUED))
    outputs = Outputs(topics, [catalog.PASSPORTS])
    # cwd: a directory without a passport-hub.env, so only this environment counts.
    process = subprocess.Popen([sys.executable, "-m", "services.passport"], env=env,
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 25
        while ISSUED not in outputs.latest(catalog.PASSPORTS):
            assert process.poll() is None, process.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "no snapshot from the service process"
            outputs.poll()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        outputs.reader.close()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b"processor.stopped" in stderr
    assert (tmp_path / "process" / "passport-0.sqlite").exists()
