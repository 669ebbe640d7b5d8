"""Passport benchmark: the passport service against raw kafka-python and Quix Streams, one broker.

    python -m bench.bench_passport [--businesses 20000] [--passports 1000000]
                                   [--broker auto|apache|embedded] [--memory-only]

On one broker, in one run, it prints (1) the raw kafka-python consume ceiling
for the pre-produced event mix (no decoding, no work), (2) the passport service
(``ProcessorLoop`` + ``PassportProcessor`` + a SQLite ``Store``) on that mix,
(3) Quix Streams doing the same stateful work on the training topic, (4) the
ratios, and (5) the service's resident memory with 1,000,000 passports in its
store. The broker is ``KAFKA_BOOTSTRAP_SERVERS`` if set, else an Apache Kafka
single node started here (deploy/kafka), else the embedded one.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from kafka import TopicPartition
from kafka.partitioner.default import murmur2
from prometheus_client import CollectorRegistry

from bench._common import Broker, broker, memory_mb
from connectors.publish import Publisher, Record
from connectors.synthetic.generator import Expected, Synthetic
from connectors.synthetic.identities import identity, siren
from hub import kafka, logs
from hub.config import Settings
from hub.processor import Emit, Inbound
from hub.service import processor_loop, tuned_gc
from hub.store import Store, Txn
from schemas import catalog
from schemas.codec import Codec, Decoded
from schemas.models import EventModel, ModuleCompleted, TrainingFeedback, TrainingSessionAttended
from schemas.reference import DEPARTEMENTS, MODULES, region_of
from services.passport import persist
from services.passport.__main__ import build
from services.passport.processor import PASSPORTS_NS, PassportProcessor
from services.passport.rules import Passport, Profile

#: Businesses whose stories interleave on the topics at any moment (they train for weeks).
_ACTIVE = 2000
_FEEDBACK_RATE = 0.5
_REDELIVERY_RATE = 0.03
"""Share of records a partner sends twice (same event, same bytes)."""
_INPUTS = (catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS)
_DEADLINE_S = 600.0

T = TypeVar("T")


# -- the event mix ---------------------------------------------------------------------------

def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def story(synthetic: Synthetic, rng: random.Random) -> list[EventModel]:
    """One business's events: the synthetic source's (enrolment, completions, maybe an
    offer request), each completion preceded by the session attended, often followed by
    feedback, and a few records sent twice."""
    events: list[EventModel] = []
    for event in synthetic.business():
        if not isinstance(event, ModuleCompleted):
            events.append(event)
            continue
        at, common = event.occurred_at, {"source": event.source, "siren": event.siren,
                                         "module_id": event.module_id,
                                         "trainer_org": event.trainer_org}
        events.append(TrainingSessionAttended(event_id=_uuid(rng),
                                              occurred_at=at - timedelta(hours=2),
                                              session_id=f"{event.module_id}-{at:%Y%m%d}",
                                              **common))
        events.append(event)
        if rng.random() < _FEEDBACK_RATE:
            events.append(TrainingFeedback(event_id=_uuid(rng),
                                           occurred_at=at + timedelta(minutes=20),
                                           score=rng.randint(1, 5), **common))
    told = list(events)
    for index, event in enumerate(events):
        if rng.random() < _REDELIVERY_RATE:
            told.insert(rng.randint(index + 1, len(told)), event)
    return told


def interleave(stories: Iterable[list[T]], active: int, rng: random.Random) -> Iterator[T]:
    """The stories told side by side, ``active`` at a time, each one in its own order."""
    pending = iter(stories)
    pool: list[list[T]] = []
    while True:
        while len(pool) < active and (told := next(pending, None)) is not None:
            if told:
                pool.append(told[::-1])  # reversed: pop() gives the next event
        if not pool:
            return
        index = rng.randrange(len(pool))
        yield pool[index].pop()
        if not pool[index]:
            pool[index] = pool[-1]
            pool.pop()


def event_mix(settings: Settings, businesses: int,
              seed: int) -> tuple[list[Record], Counter[str], Expected]:
    """The records of ``businesses`` interleaved stories, Avro-encoded; counts by record, and
    the passports and leads the synthetic source says a correct hub makes of them."""
    rng = random.Random(seed)
    # A day ago: the synthetic stories end "now", and feedback comes 20 minutes later.
    now = datetime.now(UTC) - timedelta(days=1)
    synthetic = Synthetic(seed=seed, clock=lambda: now, resellers=0)
    publisher = Publisher(settings)
    records: list[Record] = []
    kinds: Counter[str] = Counter()
    seen: set[uuid.UUID] = set()
    for event in interleave((story(synthetic, rng) for _ in range(businesses)), _ACTIVE, rng):
        kinds["(sent twice)" if event.event_id in seen else event.RECORD] += 1
        seen.add(event.event_id)
        records.append(publisher.record(event))
    return records, kinds, synthetic.expected


def produce(settings: Settings, records: Sequence[Record]) -> None:
    """Write the records with the hub's producer and wait for every acknowledgement."""
    producer = kafka.producer(settings, metrics_enabled=False)
    try:
        futures = [producer.send(r.topic, key=r.key, value=r.value) for r in records]
        producer.flush()
        for future in futures:
            future.get(timeout=60)
    finally:
        producer.close(timeout=10)


# -- measurements ----------------------------------------------------------------------------

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


def raw_ceiling(settings: Settings, total: int) -> Measure:
    """One kafka-python consumer (the hub's settings, no group) reading every input
    partition from the beginning: no decoding, no work."""
    consumer = kafka.consumer(settings, group=None)
    try:
        found = kafka.await_partitions(consumer, [settings.topic(name) for name in _INPUTS])
        partitions = [TopicPartition(t, p) for t, ids in found.items() for p in sorted(ids)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
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


class _Timed:
    """The passport processor, noting when the first batch reached it."""

    def __init__(self, inner: PassportProcessor) -> None:
        self.inner = inner
        self.name = inner.name
        self.inputs = inner.inputs
        self.first: tuple[float, float] | None = None

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> Iterable[Emit]:
        if self.first is None:
            self.first = _marks()
        return self.inner.apply(state, batch)

    def flush(self, state: Txn, partitions: frozenset[int], *,
              caught_up: bool = True) -> Iterable[Emit]:
        return self.inner.flush(state, partitions, caught_up=caught_up)


def run_service(settings: Settings, store_path: Path, total: int) -> tuple[Measure, dict[str, int]]:
    """The passport service as deployed (minus its process): consume, apply, commit to
    SQLite, relay snapshots and leads; timed until the last input is applied and relayed."""
    built = build(settings)
    assert isinstance(built.processor, PassportProcessor)
    processor = _Timed(built.processor)
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
                                          {"component": "passport",
                                           "topic": settings.topic(topic)})
        return int(value or 0)

    return measure, {"snapshots": produced(catalog.PASSPORTS),
                     "leads": produced(catalog.LEAD_REQUESTS), "dead": produced(catalog.DLQ)}


def run_quix(settings: Settings, state_dir: Path, total: int) -> tuple[Measure, Measure, int]:
    """Quix Streams on the training topic: decode with the project's codec, keep each
    SIREN's distinct modules (earliest completion) and applied event ids in Quix state,
    drop redeliveries, and send a snapshot per record to an output topic.

    Returns the measure to the last record processed, the measure to ``run()``
    returning (final checkpoint: producer flush, offsets, state), and snapshots sent.
    """
    # The optional `bench` extra: imported here so the rest runs without it. Its schema
    # registry client imports authlib's deprecated httpx module: not ours, and noise here
    # (recorded, not ignored: authlib installs an "always" filter of its own on import).
    with warnings.catch_warnings(record=True):
        from quixstreams import Application, State  # noqa: PLC0415
        from quixstreams.models.topics import TopicConfig  # noqa: PLC0415

    codec = Codec.default()
    app = Application(broker_address=settings.bootstrap,
                      consumer_group=f"{settings.topic_prefix}quix",
                      auto_offset_reset="earliest", state_dir=state_dir, loglevel="WARNING",
                      topic_create_timeout=30, request_timeout=30)
    source = app.topic(settings.topic(catalog.TRAINING), key_deserializer="str",
                       value_deserializer="bytes")
    sink = app.topic(f"{settings.topic_prefix}bench.quix-snapshots", key_serializer="str",
                     value_serializer="json",
                     config=TopicConfig(num_partitions=catalog.SIREN_PARTITIONS,
                                        replication_factor=1))
    marks: dict[str, tuple[float, float]] = {}
    counts = Counter[str]()

    def decode(value: bytes) -> Decoded:
        if "first" not in marks:
            marks["first"] = _marks()
        return codec.decode(value)

    def passport(decoded: Decoded, state: State[str, Any]) -> dict[str, Any] | None:
        counts["in"] += 1
        if counts["in"] == total:
            marks["last"] = _marks()
            app.stop()
        datum = decoded.datum
        held: dict[str, Any] = state.get("passport") or {"modules": {}, "applied": []}
        if datum["event_id"] in held["applied"]:
            return None
        held["applied"].append(datum["event_id"])
        if decoded.record == "ModuleCompleted":
            at = int(datum["occurred_at"].timestamp() * 1000)
            held["modules"][datum["module_id"]] = min(at, held["modules"].get(
                datum["module_id"], at))
        state.set("passport", held)
        times = sorted(held["modules"].values())
        counts["out"] += 1
        return {"siren": datum["siren"], "modules_completed": sorted(held["modules"]),
                "issued_at": times[2] if len(times) >= 3 else None,
                "events_applied": len(held["applied"])}

    sdf = app.dataframe(source).apply(decode).apply(passport, stateful=True)
    sdf.filter(lambda snapshot: snapshot is not None).to_topic(sink)
    app.run()
    returned = _marks()
    if "last" not in marks:
        raise RuntimeError(f"Quix stopped after {counts['in']} of {total} records")
    first, last = marks["first"], marks["last"]
    return (Measure(total, last[0] - first[0], last[1] - first[1]),
            Measure(total, returned[0] - first[0], returned[1] - first[1]), counts["out"])


# -- memory with a million passports ---------------------------------------------------------

def fill_store(path: Path, count: int, seed: int) -> list[str]:
    """Write ``count`` passports (issued, 3-4 modules, ~9 applied events) into a store the
    way the service keeps them (``persist.dump``, its namespace); return their SIRENs."""
    rng = random.Random(seed)
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(siren(rng))
    modules, departements = sorted(MODULES), sorted(DEPARTEMENTS)
    start = int((datetime.now(UTC) - timedelta(days=30)).timestamp() * 1000)
    ordered = sorted(codes)  # in key order: SQLite appends instead of splitting pages
    with Store(path) as store:
        for offset in range(0, count, 20_000):
            with store.transaction() as txn:
                for code in ordered[offset:offset + 20_000]:
                    who, departement = identity(rng), rng.choice(departements)
                    done = rng.sample(modules, rng.randint(3, 4))
                    times = sorted(start + rng.randrange(30 * 86_400_000) for _ in done)
                    passport = Passport(
                        code, Profile(who.name, departement, region_of(departement), who.naf,
                                      who.email, rng.random() < 0.8, times[0]),
                        modules=dict(zip(done, times, strict=True)),
                        applied=frozenset(str(_uuid(rng)) for _ in range(2 * len(done) + 1)),
                        last_event_at=times[-1])
                    partition = (murmur2(code.encode()) & 0x7FFFFFFF) % catalog.SIREN_PARTITIONS
                    txn.put(PASSPORTS_NS, code, persist.dump(passport), partition=partition)
    return ordered


def memory_events(settings: Settings, sirens: Sequence[str], count: int,
                  seed: int) -> list[Record]:
    """Completions of businesses already in the store, at random among them."""
    rng = random.Random(seed)
    publisher = Publisher(settings)
    at = datetime.now(UTC) - timedelta(hours=1)
    return [publisher.record(ModuleCompleted(
        event_id=_uuid(rng), occurred_at=at, source="bench", siren=rng.choice(sirens),
        module_id=rng.choice(sorted(MODULES)))) for _ in range(count)]


def rss_child(store_path: Path, bootstrap: str, prefix: str, expect: int) -> dict[str, float]:
    """In a fresh process: the service on the filled store, applying ``expect`` records."""
    at_start, _ = memory_mb()
    settings = Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
                        data_dir=store_path.parent)
    measure, _counts = run_service(settings, store_path, expect)
    rss, peak = memory_mb()
    return {"start_mb": at_start, "rss_mb": rss, "peak_mb": peak, "rate": measure.rate}


def measure_memory(found: Broker, tmp: Path, passports: int, events: int,
                   seed: int) -> dict[str, float]:
    """Fill a store with ``passports``, then let a fresh service process apply ``events``."""
    path = tmp / "memory" / "passport-0.sqlite"
    started = time.perf_counter()
    sirens = fill_store(path, passports, seed)
    filled = time.perf_counter() - started
    settings = Settings(kafka_bootstrap_servers=found.bootstrap, data_dir=tmp,
                        topic_prefix=f"benchmem{uuid.uuid4().hex[:8]}.")
    kafka.ensure_topics(settings)
    produce(settings, memory_events(settings, sirens, events, seed))
    done = subprocess.run(  # noqa: S603 - this very module
        [sys.executable, "-m", "bench.bench_passport", "--rss-child", str(path),
         "--bootstrap", found.bootstrap, "--prefix", settings.topic_prefix,
         "--memory-events", str(events)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child failed: {done.stderr[-2000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "fill_s": filled, "file_mb": path.stat().st_size / 2**20}


# -- the report ------------------------------------------------------------------------------

def _row(name: str, measure: Measure) -> str:
    return (f"  {name:<48} {measure.records:>9,} {measure.seconds:>8.2f} {measure.rate:>11,.0f}"
            f" {measure.cpu_us:>9.1f}")


def _memory_lines(memory: dict[str, float], passports: int, events: int) -> list[str]:
    return [
        f"(5) memory: a fresh `ProcessorLoop` + `PassportProcessor` process on a store holding "
        f"{passports:,} passports",
        f"    (written beforehand with persist.dump in {memory['fill_s']:.0f} s; SQLite file "
        f"{memory['file_mb']:,.0f} MiB) applying {events:,} completions of random businesses "
        f"among them ({memory['rate']:,.0f} events/s)",
        f"    VmRSS {memory['rss_mb']:.0f} MiB after (peak VmHWM {memory['peak_mb']:.0f} MiB; "
        f"{memory['start_mb']:.0f} MiB after imports) · target <= 250 MB: "
        f"{'met' if memory['peak_mb'] * 2**20 <= 250e6 else 'MISSED'}",
        "    The passports live in SQLite, not in the heap: the process holds the page cache "
        "(bounded) and the batch in hand.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--businesses", type=int, default=20_000,
                        help="businesses in the event mix (~8 events each)")
    parser.add_argument("--passports", type=int, default=1_000_000,
                        help="passports in the store for the memory figure (0: skip it)")
    parser.add_argument("--memory-events", type=int, default=20_000,
                        help="events the memory process applies to the filled store")
    parser.add_argument("--memory-only", action="store_true", help="only the memory figure")
    parser.add_argument("--broker", choices=("auto", "apache", "embedded"), default="auto")
    parser.add_argument("--seed", type=int, default=2009)
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logs.configure(fmt="console", level="warning")
    if args.rss_child is not None:
        print(json.dumps(rss_child(args.rss_child, args.bootstrap, args.prefix,
                                   args.memory_events)))
        return 0
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-passport-")))
        found = stack.enter_context(broker(tmp / "kafka", args.broker))
        print(f"broker: {found.kind} at {found.bootstrap}"
              + (f" — {found.note}" if found.note else "")
              + f" · {os.cpu_count()} CPUs")
        if not args.memory_only:
            throughput(found, tmp, args.businesses, args.seed)
        if args.passports:
            memory = measure_memory(found, tmp, args.passports, args.memory_events, args.seed)
            print("\n".join(_memory_lines(memory, args.passports, args.memory_events)))
    return 0


def throughput(found: Broker, tmp: Path, businesses: int, seed: int) -> None:
    """Sections (1) to (4): the same pre-produced records, three readers, one broker."""
    settings = Settings(kafka_bootstrap_servers=found.bootstrap, data_dir=tmp,
                        topic_prefix=f"bench{uuid.uuid4().hex[:8]}.")
    kafka.ensure_topics(settings)
    records, kinds, expected = event_mix(settings, businesses, seed)
    training = sum(1 for r in records if r.topic == settings.topic(catalog.TRAINING))
    started = time.perf_counter()
    produce(settings, records)
    print(f"input: {businesses:,} businesses, {len(records):,} events produced in "
          f"{time.perf_counter() - started:.1f} s: "
          + ", ".join(f"{name} {n:,}" for name, n in kinds.most_common()))
    print(f"\n  {'(records/s; CPU µs per record: this process, all threads)':<48} {'records':>9}"
          f" {'seconds':>8} {'records/s':>11} {'CPU µs':>9}")
    raw = raw_ceiling(settings, len(records))
    print(_row("(1) raw kafka-python consume, no decoding", raw))
    service, out = run_service(settings, tmp / "service" / "passport-0.sqlite", len(records))
    print(_row("(2) passport service, all 3 input topics", service))
    print(f"      {out['snapshots']:,} snapshots and {out['leads']:,} lead requests relayed "
          f"(the source expects {expected.leads:,} leads in time order), {out['dead']:,} dead "
          "letters; one snapshot per changed business per batch")
    quix: Measure | None = None
    try:
        quix, closed, snapshots = run_quix(settings, tmp / "quix-state", training)
    except Exception as exc:  # say why, and keep the other figures
        print(f"  (3) Quix Streams could not run on this broker: {type(exc).__name__}: {exc}")
        if found.embedded:
            print("      It reads retention.ms from DescribeConfigs to create its changelog "
                  "topics, and the embedded broker returns no topic configuration: run where "
                  "java is available (Apache Kafka is then started) or set "
                  "KAFKA_BOOTSTRAP_SERVERS.")
    else:
        print(_row("(3) Quix Streams, training topic only, stateful", quix))
        print(f"      {snapshots:,} snapshots (one per record, redeliveries dropped); "
              f"{closed.rate:,.0f} records/s counting its final checkpoint and close")
    print(f"\n(4) service / raw ceiling = {service.rate / raw.rate:.2f} (target >= 0.5)"
          + (f" · service / Quix Streams = {service.rate / quix.rate:.2f} (target >= 1.0)"
             f"; by CPU per record {quix.cpu_us / service.cpu_us:.2f}" if quix else "")
          + f" · load average {os.getloadavg()[0]:.1f}\n")


if __name__ == "__main__":
    sys.exit(main())
