"""Poison in the read model: set aside with its cause, the rest of the batch applied, and its
dead letter sent once, only once acknowledged (services/readmodel/letters.py)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from hub import deadletter
from hub.config import Settings
from hub.contract import Inbound, Rejected
from schemas import catalog
from schemas.codec import Codec
from schemas.errors import MalformedRecordError
from schemas.events import ResellerProfile
from services.readmodel import checks, letters
from services.readmodel.checks import ImpossibleValueError
from services.readmodel.queries import Queries
from services.readmodel.store import Writer
from tests.unit.test_readmodel import T0, inbounds, snapshot
from tests.unit.test_readmodel_leads import NOW, datums, request, router

SETTINGS = Settings(topic_prefix="t.", kafka_bootstrap_servers="127.0.0.1:1")


def _profile(reseller_id: str, **fields: Any) -> dict[str, Any]:
    """A ResellerProfile datum as the API writes it, then ``fields`` over it."""
    profile = ResellerProfile(occurred_at=T0, source="api", reseller_id=reseller_id,
                              name=reseller_id.title(), departements=("78",),
                              categories=("e-commerce",))
    return {**profile.to_avro(), **fields}


def _poisoned() -> list[Inbound]:
    lead = datums(router().request(request("L1"), NOW))[0]
    return inbounds([
        ("PassportSnapshot", snapshot("732829320")),
        ("PassportSnapshot", {**snapshot("552100554"), "region": "99"}),
        ("ResellerProfile", _profile("minus", capacity=-5)),
        ("LeadAssigned", {**lead, "version": 0}),
        ("PassportSnapshot", {k: v for k, v in snapshot("443061841").items() if k != "name"}),
        ("ResellerProfile", _profile("fine")),
        ("LeadAssigned", lead),
    ])


def test_an_impossible_record_is_set_aside_and_the_rest_of_the_batch_applied(
        tmp_path: Path) -> None:
    batch = _poisoned()
    writer = Writer(tmp_path / "poisoned.sqlite")
    assert writer.apply(batch) == 3
    rejected = writer.take_rejected()
    assert [(r.inbound.offset, r.stage, type(r.error)) for r in rejected] == [
        (batch[1].offset, "apply", ImpossibleValueError),
        (batch[2].offset, "apply", ImpossibleValueError),
        (batch[3].offset, "apply", ImpossibleValueError),
        (batch[4].offset, "apply", KeyError)]
    assert "capacity -5" in str(rejected[1].error)
    assert writer.take_rejected() == []
    writer.close()
    # The same figures, leads and resellers as a file that never saw the poison.
    clean = Writer(tmp_path / "clean.sqlite")
    assert clean.apply([batch[0], batch[5], batch[6]]) == 3
    assert clean.take_rejected() == []
    clean.close()
    poisoned, expected = Queries(tmp_path / "poisoned.sqlite"), Queries(tmp_path / "clean.sqlite")
    assert poisoned.stats() == expected.stats()
    assert poisoned.kpi() == expected.kpi()
    assert poisoned.lead("L1") == expected.lead("L1")
    assert poisoned.passport("552100554") is None


@pytest.mark.parametrize(("record", "datum", "says"), [
    ("PassportSnapshot", {"state": "issued"}, "unknown state"),
    ("PassportSnapshot", {"departement": "999"}, "'999' is unknown"),
    ("PassportSnapshot", {"departement": "75", "region": "11 "}, "not in région"),
    ("ResellerProfile", {"capacity": 10_001}, "capacity 10001"),
    ("ResellerProfile", {"weight": 0}, "weight 0"),
    ("LeadAssigned", {"version": -1}, "version -1"),
])
def test_impossible_values(record: str, datum: dict[str, Any], says: str) -> None:
    base = {"PassportSnapshot": snapshot("732829320"), "ResellerProfile": _profile("rr"),
            "LeadAssigned": {"version": 1}}[record]
    checks.check(record, base)  # the values the hub writes pass
    with pytest.raises(ImpossibleValueError, match=says):
        checks.check(record, {**base, **datum})


def test_an_awaiting_passport_has_no_place_to_check() -> None:
    checks.check("PassportSnapshot", {"state": "awaiting_enrolment", "departement": "",
                                      "region": ""})


class _Future:
    def __init__(self, error: Exception | None) -> None:
        self._error = error

    def get(self, timeout: float) -> None:
        del timeout
        if self._error is not None:
            raise self._error


class FakeProducer:
    """Acknowledges what it is sent, after ``failures`` rounds that time out."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def send(self, topic: str, *, key: bytes | None, value: bytes,
             headers: list[tuple[str, bytes]]) -> _Future:
        if self.broker.failures:
            return _Future(KafkaTimeoutError("no answer"))
        self.broker.log.append((topic, key, value, dict(headers)))
        return _Future(None)

    def flush(self, timeout: float) -> None:
        del timeout
        if self.broker.failures:
            self.broker.failures -= 1
            if self.broker.stop_when_failing is not None:
                self.broker.stop_when_failing.set()
            raise KafkaTimeoutError("flush timed out")

    def close(self, timeout: float) -> None:
        del timeout
        self.broker.closed += 1


class FakeBroker:
    def __init__(self, failures: int = 0, stop: threading.Event | None = None) -> None:
        self.failures = failures
        self.stop_when_failing = stop
        self.log: list[tuple[str, bytes | None, bytes, dict[str, bytes]]] = []
        self.closed = 0

    def producer(self) -> FakeProducer:
        return FakeProducer(self)


def _rejected() -> list[Rejected]:
    garbage = Inbound(catalog.PASSPORTS, 2, 40, b"732829320", "", {"__raw__": b"\x00junk"}, 0)
    impossible = inbounds([("ResellerProfile", _profile("minus", capacity=-5))])[0]
    return [Rejected(garbage, MalformedRecordError("bad marker"), "decode"),
            Rejected(impossible, ImpossibleValueError("capacity -5"), "apply")]


@pytest.fixture(autouse=True)
def _quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(letters, "RETRY_S", 0.01)  # the fake broker answers at once


def test_dead_letters_carry_the_cause_and_go_once_per_ledger(tmp_path: Path) -> None:
    broker = FakeBroker(failures=2)
    ledger = tmp_path / "letters.sqlite"
    dead = letters.DeadLetters(SETTINGS, ledger, stop=threading.Event(),
                               producer=broker.producer)
    rejected = _rejected()
    assert dead.send(rejected) == 2
    assert broker.closed == 2  # a producer that timed out is replaced
    [(topic, key, value, headers), (_, _, again, more)] = broker.log
    assert (topic, key, value) == ("t.pn.dlq.v1", b"732829320", b"\x00junk")
    assert headers == {deadletter.SOURCE_TOPIC: b"t.pn.passports.v1",
                       deadletter.SOURCE_PARTITION: b"2", deadletter.SOURCE_OFFSET: b"40",
                       deadletter.STAGE: b"decode",
                       deadletter.ERROR_CLASS: b"MalformedRecordError",
                       deadletter.ERROR_MESSAGE: b"bad marker",
                       deadletter.COMPONENT: b"readmodel"}
    assert (more[deadletter.STAGE], more[deadletter.ERROR_CLASS]) == (
        b"apply", b"ImpossibleValueError")
    assert Codec.default().decode(again).datum["capacity"] == -5  # the record, as it was read
    # A rebuild meets them again: nothing more is sent, by this ledger or one opened anew.
    assert dead.send(rejected) == 0
    dead.close()
    reopened = letters.DeadLetters(SETTINGS, ledger, stop=threading.Event(),
                                   producer=broker.producer)
    assert reopened.send(rejected) == 0
    # Other bytes at the same place (the topic deleted and made anew) are another record.
    other = Inbound(catalog.PASSPORTS, 2, 40, b"732829320", "", {"__raw__": b"\x01other"}, 0)
    assert reopened.send([Rejected(other, MalformedRecordError("bad marker"), "decode")]) == 1
    reopened.close()
    assert len(broker.log) == 3


def test_letters_not_acknowledged_stay_out_of_the_ledger(tmp_path: Path) -> None:
    stop = threading.Event()
    broker = FakeBroker(failures=1, stop=stop)
    ledger = tmp_path / "letters.sqlite"
    dead = letters.DeadLetters(SETTINGS, ledger, stop=stop, producer=broker.producer)
    rejected = _rejected()
    with pytest.raises(letters.StopRequestedError):
        dead.send(rejected)
    dead.close()
    assert broker.log == []
    # The next start sends them.
    again = letters.DeadLetters(SETTINGS, ledger, stop=threading.Event(),
                                producer=broker.producer)
    assert again.send(rejected) == 2
    again.close()
