"""The passport processor over an in-memory store: coalesced snapshots, leads, rejects."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from hub.processor import Emit, Inbound, Outbound, Rejected
from schemas import catalog
from schemas.codec import Codec
from services.passport import outputs, persist
from services.passport.processor import OFFSETS_NS, PASSPORTS_NS, PassportProcessor
from tests.unit.test_passport_rules import SIREN, THREE, Item, at, enrolled, module, ms, offer

OTHER = "542051180"
TOPIC_OF = {"BusinessEnrolled": catalog.ENROLMENTS, "ModuleCompleted": catalog.TRAINING,
            "OfferRequested": catalog.OFFER_REQUESTS}


class FakeTxn:
    """The store's get/put/delete over a dict, JSON round-tripped like SQLite's."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], str] = {}
        self.partitions: dict[tuple[str, str], int] = {}

    def get(self, ns: str, key: str) -> Any | None:
        raw = self.data.get((ns, key))
        return None if raw is None else json.loads(raw)

    def put(self, ns: str, key: str, value: Any, *, partition: int) -> None:
        self.data[(ns, key)] = json.dumps(value)
        self.partitions[(ns, key)] = partition

    def get_many(self, ns: str, keys: Iterable[str]) -> dict[str, Any]:
        return {key: value for key in keys if (value := self.get(ns, key)) is not None}

    def put_many(self, ns: str, items: Iterable[tuple[str, Any, int]]) -> None:
        for key, value, partition in items:
            self.put(ns, key, value, partition=partition)

    def delete(self, ns: str, key: str) -> None:
        self.data.pop((ns, key), None)

    def items(self, ns: str) -> Iterator[tuple[str, Any]]:
        for (space, key), raw in sorted(self.data.items()):
            if space == ns:
                yield key, json.loads(raw)


class Offsets:
    """Hands out increasing offsets per topic, like a partition would."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def inbound(self, item: Item, *, partition: int = 2, key: str | None = SIREN,
                topic: str | None = None) -> Inbound:
        record, datum = item
        topic = topic or TOPIC_OF[record]
        offset = self.next.get(topic, 0)
        self.next[topic] = offset + 1
        return Inbound(topic, partition, offset, None if key is None else key.encode(), record,
                       datum, 0)


def _apply(txn: FakeTxn, batch: Sequence[Inbound]) -> list[Emit]:
    out = PassportProcessor().apply(txn, batch)  # type: ignore[arg-type]  # a fake of Txn
    codec = Codec.default()
    for emit in out:
        if isinstance(emit, Outbound):
            codec.encode(emit.record, emit.datum)  # every output fits its schema
    return out


def _of(out: list[Emit], topic: str) -> list[Outbound]:
    return [e for e in out if isinstance(e, Outbound) and e.topic == topic]


def test_two_events_of_one_business_in_a_batch_make_one_snapshot() -> None:
    txn, offsets = FakeTxn(), Offsets()
    batch = [offsets.inbound(enrolled()), offsets.inbound(THREE[0])]
    out = _apply(txn, batch)
    [snapshot] = _of(out, catalog.PASSPORTS)
    assert snapshot.key == SIREN
    assert snapshot.datum["state"] == "in_training"
    assert snapshot.datum["modules_completed"] == ["website-create"]
    assert snapshot.datum["region"] == "11"
    assert snapshot.datum["occurred_at"] == ms(10)  # epoch millis: on the wire, the same timestamp
    codec = Codec.default()
    wire = codec.decode(codec.encode("PassportSnapshot", snapshot.datum)).datum
    assert (wire["occurred_at"], wire["enrolled_at"]) == (at(10), at(0))
    assert snapshot.datum["source"] == "passport"
    assert snapshot.datum["input_offsets"] == {f"{catalog.ENROLMENTS}/2": 1,
                                               f"{catalog.TRAINING}/2": 1}
    assert snapshot.datum["event_id"] == outputs.snapshot_id(
        SIREN, f"{catalog.TRAINING}/2/0", persist.load(txn.get(PASSPORTS_NS, SIREN)))
    assert txn.partitions[(PASSPORTS_NS, SIREN)] == 2
    assert txn.get(OFFSETS_NS, "2") == snapshot.datum["input_offsets"]


def test_each_business_of_a_batch_gets_its_own_snapshot() -> None:
    txn, offsets = FakeTxn(), Offsets()
    other = ("BusinessEnrolled", {**enrolled()[1], "siren": OTHER})
    out = _apply(txn, [offsets.inbound(enrolled()), offsets.inbound(other, key=OTHER),
                       offsets.inbound(THREE[0])])
    assert sorted(s.key for s in _of(out, catalog.PASSPORTS)) == sorted([SIREN, OTHER])


def test_the_passport_is_issued_and_a_lead_requested_across_batches() -> None:
    txn, offsets = FakeTxn(), Offsets()
    _apply(txn, [offsets.inbound(enrolled()), offsets.inbound(THREE[0])])
    _apply(txn, [offsets.inbound(THREE[1]), offsets.inbound(THREE[2])])
    out = _apply(txn, [offsets.inbound(offer(60))])
    [lead] = _of(out, catalog.LEAD_REQUESTS)
    [snapshot] = _of(out, catalog.PASSPORTS)
    assert lead.record == "LeadRequested"
    assert lead.key == lead.datum["lead_id"]
    assert lead.datum["occurred_at"] == ms(60)
    assert lead.datum["contact_email"] == "contact@boulangerie.example"
    assert snapshot.datum["state"] == "passport_issued"
    assert snapshot.datum["passport_issued_at"] == ms(30)
    assert (snapshot.datum["offer_requests"], snapshot.datum["leads_requested"]) == (1, 1)
    assert snapshot.datum["input_offsets"] == {f"{catalog.ENROLMENTS}/2": 1,
                                               f"{catalog.TRAINING}/2": 3,
                                               f"{catalog.OFFER_REQUESTS}/2": 1}


def test_a_replayed_batch_emits_nothing_new() -> None:
    txn, offsets = FakeTxn(), Offsets()
    batch = [offsets.inbound(enrolled()), *(offsets.inbound(m) for m in THREE),
             offsets.inbound(offer(60))]
    first = _apply(txn, batch)
    assert len(_of(first, catalog.LEAD_REQUESTS)) == 1
    assert _apply(txn, batch) == []


def test_a_replay_that_meets_an_applied_input_last_names_its_new_state_anew() -> None:
    # Found by the long crash campaign with fencing on: after a restore, a replay met a new
    # training record, then an enrolment already applied, in one batch. The snapshot went
    # out under the id of the enrolment's own earlier snapshot, and readers dropped it as
    # a repeat: the read model kept a passport short of what the topic's last one held.
    txn, offsets = FakeTxn(), Offsets()
    enrolment = offsets.inbound(enrolled())
    [before] = _of(_apply(txn, [enrolment]), catalog.PASSPORTS)
    training = offsets.inbound(THREE[0])
    [after] = _of(_apply(txn, [training, enrolment]), catalog.PASSPORTS)
    assert after.datum["modules_completed"] != before.datum["modules_completed"]
    assert after.datum["event_id"] != before.datum["event_id"]


def test_a_bad_siren_is_rejected_and_the_rest_applied() -> None:
    txn, offsets = FakeTxn(), Offsets()
    bad = ("ModuleCompleted", {**module("email-pro", 1)[1], "siren": "123456789"})
    bad_inbound = offsets.inbound(bad, key="123456789")
    out = _apply(txn, [offsets.inbound(enrolled()), bad_inbound])
    [rejected] = [e for e in out if isinstance(e, Rejected)]
    assert rejected.inbound is bad_inbound
    assert rejected.stage == "validate"
    assert "SIREN" in str(rejected.error)
    assert len(_of(out, catalog.PASSPORTS)) == 1
    assert txn.get(PASSPORTS_NS, "123456789") is None
    # The rejected record is consumed all the same: its offset moves on.
    assert txn.get(OFFSETS_NS, "2") == {f"{catalog.ENROLMENTS}/2": 1, f"{catalog.TRAINING}/2": 1}


def test_a_record_foreign_to_its_topic_or_keyed_otherwise_is_rejected() -> None:
    txn, offsets = FakeTxn(), Offsets()
    foreign = offsets.inbound(offer(1), topic=catalog.TRAINING)
    unkeyed = offsets.inbound(module("email-pro", 1), key=None)
    out = _apply(txn, [foreign, unkeyed])
    assert [(e.inbound, e.stage) for e in out if isinstance(e, Rejected)] == [
        (foreign, "validate"), (unkeyed, "validate")]
    assert txn.get(PASSPORTS_NS, SIREN) is None


def test_events_of_a_business_not_enrolled_are_kept_in_an_awaiting_snapshot() -> None:
    txn, offsets = FakeTxn(), Offsets()
    out = _apply(txn, [offsets.inbound(m) for m in THREE])
    [waiting] = _of(out, catalog.PASSPORTS)
    assert waiting.datum["state"] == "awaiting_enrolment"
    assert (waiting.datum["name"], len(waiting.datum["parked"])) == ("", 3)
    stored = txn.get(PASSPORTS_NS, SIREN)
    assert stored is not None
    assert len(stored["parked"]) == 3
    out = _apply(txn, [offsets.inbound(enrolled(90))])
    [snapshot] = _of(out, catalog.PASSPORTS)
    assert snapshot.datum["state"] == "passport_issued"
    assert snapshot.datum["modules_completed"] == ["website-create", "website-traffic",
                                                   "email-pro"]


def test_events_parked_past_the_bound_go_to_the_dead_letters_and_the_rest_stay() -> None:
    txn, offsets = FakeTxn(), Offsets()
    now = [ms(0)]
    processor = PassportProcessor(parked_ttl_ms=60 * 60_000, clock=lambda: now[0])
    processor.apply(txn, [offsets.inbound(module("website-create", 10)),  # type: ignore[arg-type]
                          offsets.inbound(module("website-traffic", 100))])
    now[0] = ms(90)  # the first waited 80 minutes, the second is not due yet
    out = list(processor.apply(txn, [offsets.inbound(offer(95))]))  # type: ignore[arg-type]
    [letter] = [e for e in out if isinstance(e, Rejected)]
    assert letter.stage == "expire"
    assert (letter.inbound.topic, letter.inbound.offset) == (catalog.TRAINING, -1)
    assert letter.inbound.datum["module_id"] == "website-create"
    Codec.default().encode(letter.inbound.record, letter.inbound.datum)  # redrivable as it is
    [snapshot] = _of(out, catalog.PASSPORTS)
    assert [json.loads(p["datum_json"])["module_id"] for p in snapshot.datum["parked"]
            if p["record"] == "ModuleCompleted"] == ["website-traffic"]
    now[0] = ms(175)  # now the second module has waited 75 minutes, and the offer 80
    out = list(processor.apply(txn, [offsets.inbound(module("email-pro", 170))]))  # type: ignore[arg-type]
    assert sorted(e.inbound.record for e in out if isinstance(e, Rejected)) == [
        "ModuleCompleted", "OfferRequested"]


def test_the_sweep_leaves_alone_partitions_not_in_the_batch() -> None:
    # A store may hold partitions this instance lost, or is restoring: not its to expire.
    txn, offsets = FakeTxn(), Offsets()
    now = [ms(0)]
    processor = PassportProcessor(parked_ttl_ms=60 * 60_000, clock=lambda: now[0])
    processor.apply(txn, [offsets.inbound(module("website-create", 10), partition=4)])  # type: ignore[arg-type]
    now[0] = ms(90)
    other = "552100554"  # another business, in partition 2
    record, datum = offer(95)
    out = list(processor.apply(txn, [offsets.inbound(  # type: ignore[arg-type]
        (record, {**datum, "siren": other}), partition=2, key=other)]))
    assert [e for e in out if isinstance(e, Rejected)] == []
    now[0] = ms(200)  # the next sweep, with a batch of partition 4
    out = list(processor.apply(txn, [offsets.inbound(offer(195), partition=4)]))  # type: ignore[arg-type]
    assert [e.inbound.record for e in out if isinstance(e, Rejected)] == ["ModuleCompleted"]
