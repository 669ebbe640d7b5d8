"""The passport benchmark's three readers of one event mix: raw kafka-python, the
passport service as built, and Quix Streams; each returns what it measured."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from prometheus_client import CollectorRegistry

from hub import kafka
from hub.config import Settings
from hub.processor import Emit, Inbound
from hub.service import processor_loop, tuned_gc
from hub.store import Store, Txn
from schemas import catalog
from schemas.codec import Codec, Decoded
from services.passport.__main__ import build
from services.passport.processor import PassportProcessor

INPUTS = (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS)
_DEADLINE_S = 600.0


@dataclass(frozen=True, slots=True)
class Measure:
    """Records handled between the first one in hand and the last one done."""

    records: int
    seconds: float
    cpu_s: float
    """CPU of this whole process (every thread, the client libraries' included)."""

    @property
    def rate(self) -> float:
        return self.records / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.records * 1e6


def _marks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float], records: int) -> Measure:
    wall, cpu = _marks()
    return Measure(records, wall - start[0], cpu - start[1])


def _check_deadline(started: float, what: str, done: int, total: int) -> None:
    if time.monotonic() - started > _DEADLINE_S:
        raise TimeoutError(f"{what}: {done} of {total} records after {_DEADLINE_S:.0f}s")


def _reading_inputs(settings: Settings) -> KafkaConsumer:
    """A consumer (the hub's settings, no group) at the beginning of every input partition."""
    consumer = kafka.consumer(settings, group=None)
    found = kafka.await_partitions(consumer, [settings.topic(name) for name in INPUTS])
    partitions = [TopicPartition(t, p) for t, ids in found.items() for p in sorted(ids)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    return consumer


def raw_ceiling(settings: Settings, total: int) -> Measure:
    """One kafka-python consumer (the hub's settings, no group) reading every input
    partition from the beginning: no decoding, no work."""
    consumer = _reading_inputs(settings)
    try:
        count, first, started = 0, None, time.monotonic()
        while count < total:
            polled = consumer.poll(timeout_ms=500, max_records=settings.poll_max_records)
            got = sum(len(batch) for batch in polled.values())
            if got and first is None:
                first = _marks()
            count += got
            _check_deadline(started, "raw consumer", count, total)
        assert first is not None
        return _since(first, count)
    finally:
        consumer.close()


def stateful_ceiling(settings: Settings, store_path: Path, total: int) -> Measure:
    """The least work any stateful consumer of the input does, from the project's own
    pieces: one kafka-python consumer (the hub's settings, every input partition
    assigned), the codec's decode of each value, then per polled batch one SQLite upsert
    per changed key (its latest datum, ``Txn.put_many``), the positions, one commit."""
    codec = Codec.default()
    consumer = _reading_inputs(settings)
    try:
        count, first, started = 0, None, time.monotonic()
        with Store(store_path) as store:
            while count < total:
                polled = consumer.poll(timeout_ms=500, max_records=settings.poll_max_records)
                if not polled:
                    continue
                if first is None:
                    first = _marks()
                latest: dict[str, tuple[str, Any, int]] = {}
                with store.transaction() as txn:
                    for tp, records in polled.items():
                        for record in records:
                            datum = codec.decode(record.value, millis=True).datum
                            key = record.key.decode()
                            latest[key] = (key, datum, tp.partition)
                        txn.set_position(tp.topic, tp.partition, records[-1].offset + 1)
                        count += len(records)
                    txn.put_many("ceiling", latest.values())
                _check_deadline(started, "stateful ceiling", count, total)
        assert first is not None
        return _since(first, count)
    finally:
        consumer.close()


class Span:
    """When an instance had its first record in hand and when it was done with its last,
    in wall-clock time (comparable across processes), with its process's CPU at each."""

    def __init__(self) -> None:
        self.first: tuple[float, float] | None = None
        self.last: tuple[float, float] | None = None
        self.records = 0

    def start(self) -> None:
        if self.first is None:
            self.first = time.time(), time.process_time()

    def done(self, records: int = 1) -> None:
        self.last = time.time(), time.process_time()
        self.records += records


class Timed:
    """The passport processor, noting when the first batch reached it (and, in ``span``,
    the first and the last batch)."""

    def __init__(self, inner: PassportProcessor, span: Span | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.inputs = inner.inputs
        self.first: tuple[float, float] | None = None
        self._span = span

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> Iterable[Emit]:
        if self.first is None:
            self.first = _marks()
        if self._span is None:
            return self.inner.apply(state, batch)
        self._span.start()
        out = self.inner.apply(state, batch)
        self._span.done(len(batch))
        return out

    def flush(self, state: Txn, partitions: frozenset[int], *,
              caught_up: bool = True) -> Iterable[Emit]:
        return self.inner.flush(state, partitions, caught_up=caught_up)


def run_service(settings: Settings, store_path: Path, total: int) -> tuple[Measure, dict[str, int]]:
    """The passport service as deployed (minus its process): consume, apply, commit to
    SQLite, relay snapshots and leads; timed until the last input is applied and relayed."""
    built = build(settings)
    assert isinstance(built.processor, PassportProcessor)
    processor = Timed(built.processor)
    registry = CollectorRegistry()
    # As built, but timed, and with no restore: the passport topic is new and empty.
    wiring = replace(built, processor=processor, restorer=None)
    with Store(store_path) as store:
        loop = processor_loop(wiring, settings=settings, store=store, registry=registry)
        loop.start()
        try:
            count, started = 0, time.monotonic()
            with tuned_gc():  # as run_processor runs the loop
                while count < total:
                    count += loop.run_once()
                    _check_deadline(started, "passport service", count, total)
            assert processor.first is not None
            measure = _since(processor.first, count)
        finally:
            loop.close()

    def produced(topic: str) -> int:
        value = registry.get_sample_value("passport_hub_records_produced_total",
                                          {"component": "passport", "topic": topic})
        return int(value or 0)

    return measure, {"snapshots": produced(catalog.PASSPORTS),
                     "leads": produced(catalog.LEAD_REQUESTS), "dead": produced(catalog.DLQ)}


def quix_app(settings: Settings, state_dir: Path, group: str, sink_name: str,
             on_record: Callable[[bool], None]) -> Any:
    """A Quix Streams application on the training topic: decode with the project's codec,
    keep each SIREN's distinct modules (earliest completion) and applied event ids in Quix
    state, drop redeliveries, and send a snapshot per record to ``sink_name``.
    ``on_record`` is told of each record at the stateful step: True if it was new (a
    snapshot follows), False for a redelivery."""
    # The optional `bench` extra: imported here so the rest runs without it. Its schema
    # registry client imports authlib's deprecated httpx module: not ours, and noise here
    # (recorded, not ignored: authlib installs an "always" filter of its own on import).
    with warnings.catch_warnings(record=True):
        from quixstreams import Application, State  # noqa: PLC0415
        from quixstreams.models.topics import TopicConfig  # noqa: PLC0415

    codec = Codec.default()
    app = Application(broker_address=settings.bootstrap, consumer_group=group,
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                      topic_create_timeout=30, request_timeout=30)
    source = app.topic(settings.topic(catalog.TRAINING), key_deserializer="str",
                       value_deserializer="bytes")
    sink = app.topic(sink_name, key_serializer="str", value_serializer="json",
                     config=TopicConfig(num_partitions=catalog.SIREN_PARTITIONS,
                                        replication_factor=1))

    def decode(value: bytes) -> Decoded:
        return codec.decode(value, millis=True)  # as the service reads them

    def passport(decoded: Decoded, state: State[str, Any]) -> dict[str, Any] | None:
        datum = decoded.datum
        held: dict[str, Any] = state.get("passport") or {"modules": {}, "applied": []}
        fresh = datum["event_id"] not in held["applied"]
        on_record(fresh)
        if not fresh:
            return None
        held["applied"].append(datum["event_id"])
        if decoded.record == "ModuleCompleted":
            at = int(datum["occurred_at"])  # epoch ms
            held["modules"][datum["module_id"]] = min(at, held["modules"].get(
                datum["module_id"], at))
        state.set("passport", held)
        times = sorted(held["modules"].values())
        return {"siren": datum["siren"], "modules_completed": sorted(held["modules"]),
                "issued_at": times[2] if len(times) >= 3 else None,
                "events_applied": len(held["applied"])}

    sdf = app.dataframe(source).apply(decode).apply(passport, stateful=True)
    sdf.filter(lambda snapshot: snapshot is not None).to_topic(sink)
    return app


def run_quix(settings: Settings, state_dir: Path, total: int,
             suffix: str = "") -> tuple[Measure, Measure, int]:
    """Quix Streams (``quix_app``) over the training topic's ``total`` records.

    Returns the measure from the first record to the last one processed, the measure
    to ``run()`` returning (final checkpoint: producer flush, offsets, state), and
    snapshots sent.
    """
    marks: dict[str, tuple[float, float]] = {}
    counts = Counter[str]()

    def on_record(fresh: bool) -> None:
        counts["in"] += 1
        counts["out"] += fresh
        if counts["in"] == 1:
            marks["first"] = _marks()
        if counts["in"] == total:
            marks["last"] = _marks()
            app.stop()

    app = quix_app(settings, state_dir, f"{settings.topic_prefix}quix{suffix}",
                   f"{settings.topic_prefix}bench.quix-snapshots{suffix}", on_record)
    app.run()
    returned = _marks()
    if "last" not in marks:
        raise RuntimeError(f"Quix stopped after {counts['in']} of {total} records")
    first, last = marks["first"], marks["last"]
    return (Measure(total, last[0] - first[0], last[1] - first[1]),
            Measure(total, returned[0] - first[0], returned[1] - first[1]), counts["out"])
