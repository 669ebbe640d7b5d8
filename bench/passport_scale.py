"""Scale-out: N instances of the passport service in one consumer group, against N of
Quix Streams, each in its own process (one interpreter per core, as deployed).

The parent starts the instances, lets them all finish importing, then releases them
together (a file they wait for), so they join the group within milliseconds of one
another; it watches the group's committed offsets reach the end of the input topics,
then stops them. Each instance reports, as wall-clock instants, when its first record
was in hand and when its last was applied, and the CPU its process spent in between
(every thread). The group's rate is the records over the span from the earliest first
to the latest last: a rebalance, a restore or a record applied twice counts against it.

    python -m bench.passport_scale --child service|quix --bootstrap B --prefix P
                                   --group G --work DIR --index I
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, TopicPartition
from kafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from bench.passport_runs import INPUTS, Measure, Span, Timed, quix_app
from hub import kafka, logs
from hub.config import Settings
from hub.service import processor_loop, tuned_gc
from hub.store import Store
from schemas import catalog
from services.passport.__main__ import build
from services.passport.processor import PassportProcessor

_DEADLINE_S = 600.0
_GO = "go"


def _wait_for_go(work: Path) -> None:
    print("ready", flush=True)
    while not (work / _GO).exists():
        time.sleep(0.005)


def _progress(work: Path, index: int, positions: dict[str, int]) -> None:
    """Where an instance's store stands (the group's commits are only a mirror, and
    one that failed during the first rebalance is not made again until more records
    come)."""
    temporary = work / f"progress-{index}.tmp"
    temporary.write_text(json.dumps(positions))
    temporary.replace(work / f"progress-{index}.json")


def _stopped(work: Path) -> bool:
    return (work / "stop").exists()


def _service_child(settings: Settings, work: Path, index: int) -> dict[str, Any]:
    """One passport service instance as deployed, timed; with no restore, as in
    ``run_service``: the passport topic holds the earlier runs' snapshots, and the
    instances, in the group's first generation, hand over nothing (were one to, the
    new owner would read the partition from its beginning, which the figures show)."""
    built = build(settings)
    assert isinstance(built.processor, PassportProcessor)
    span = Span()
    timed = Timed(built.processor, span)
    with Store(work / f"passport-{index}.sqlite") as store:
        loop = processor_loop(replace(built, processor=timed, restorer=None), settings=settings,
                              store=store, registry=CollectorRegistry())
        _wait_for_go(work)
        loop.start()
        try:
            with tuned_gc():
                while not _stopped(work):
                    if loop.run_once():
                        _progress(work, index, {f"{topic}/{partition}": offset for (
                            topic, partition), offset in store.positions().items()})
        finally:
            loop.close()
    return {"first": span.first, "last": span.last, "records": span.records}


def _quix_child(settings: Settings, work: Path, index: int) -> dict[str, Any]:
    """One Quix Streams instance (bench.passport_runs.quix_app), timed."""
    span = Span()
    counted = [0]

    def seen(_fresh: bool) -> None:
        # The clocks are read once every 256 records: two reads per record would cost
        # Quix ~2% of its time, which the service, reading them per batch, does not pay.
        if counted[0] % 256 == 0:
            span.start()
            span.done(256)
        counted[0] += 1

    app = quix_app(settings, work / f"quix-{index}", settings.group("quix"),
                   f"{settings.topic_prefix}bench.quix-snapshots-{settings.group_prefix}",
                   seen)

    def watch() -> None:
        while not _stopped(work):
            time.sleep(0.05)
        app.stop()

    _wait_for_go(work)
    threading.Thread(target=watch, daemon=True).start()
    app.run()
    return {"first": span.first, "last": span.last, "records": span.records}


# -- the parent ----------------------------------------------------------------------------


def _ends(settings: Settings, topics: Sequence[str]) -> dict[TopicPartition, int]:
    consumer = kafka.consumer(settings, group=None)
    try:
        parts = [TopicPartition(settings.topic(t), p) for t in topics
                 for p in range(catalog.SIREN_PARTITIONS)]
        return dict(consumer.end_offsets(parts))
    finally:
        consumer.close()


def _caught_up(admin: KafkaAdminClient, group: str, ends: dict[TopicPartition, int],
               work: Path) -> bool:
    """Every input partition read to its end: by the instances' stores (the service),
    or by the group's commits (Quix commits its checkpoint every few seconds)."""
    stored: dict[str, int] = {}
    for progress in work.glob("progress-*.json"):
        for where, offset in json.loads(progress.read_text()).items():
            stored[where] = max(offset, stored.get(where, 0))
    if stored:
        return all(stored.get(f"{tp.topic}/{tp.partition}", 0) >= end
                   for tp, end in ends.items())
    try:
        committed = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:  # no coordinator yet: the group is still forming
        return False
    return all(getattr(committed.get(tp), "offset", -1) >= end for tp, end in ends.items())


def run_group(settings: Settings, work: Path, kind: str, instances: int,
              total: int) -> Measure:
    """``instances`` of ``kind`` ("service" or "quix") in one group over the pre-produced
    input; the group's measure (records = ``total``, the input's count)."""
    work.mkdir(parents=True, exist_ok=True)
    topics = INPUTS if kind == "service" else (catalog.TRAINING,)
    group = settings.group("quix" if kind == "quix" else "passport")
    ends = _ends(settings, topics)
    children = [subprocess.Popen(  # noqa: S603 - our module, fixed arguments
        [sys.executable, "-m", "bench.passport_scale", "--child", kind,
         "--bootstrap", settings.bootstrap, "--prefix", settings.topic_prefix,
         "--group-prefix", settings.group_prefix, "--work", str(work), "--index", str(n)],
        stdout=subprocess.PIPE, text=True) for n in range(instances)]
    try:
        for child in children:  # all imported and built (log lines may come first)
            assert child.stdout is not None
            while (line := child.stdout.readline()).strip() != "ready":
                if not line:
                    raise RuntimeError(f"{kind} instance exited before it was ready")
        (work / _GO).touch()
        admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap)
        try:
            started = time.monotonic()
            while not _caught_up(admin, group, ends, work):
                if time.monotonic() - started > _DEADLINE_S:
                    raise TimeoutError(f"{kind} group not caught up after {_DEADLINE_S:.0f}s")
                time.sleep(0.2)
        finally:
            admin.close()
        (work / "stop").touch()
        reports = []
        for child in children:
            out, _ = child.communicate(timeout=120)
            reports.append(json.loads(next(line for line in reversed(out.splitlines())
                                           if line.startswith("{"))))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    working = [r for r in reports if r["first"] is not None]
    if os.environ.get("BENCH_SCALE_DEBUG"):
        print(f"      {kind} instances (first, last, CPU s): " + "; ".join(
            f"{r['first'][0] % 100:.2f}, {r['last'][0] % 100:.2f}, "
            f"{r['last'][1] - r['first'][1]:.2f}, {r['records']}" for r in working))
    first = min(r["first"][0] for r in working)
    last = max(r["last"][0] for r in working)
    cpu = sum(r["last"][1] - r["first"][1] for r in working)
    return Measure(total, last - first, cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=("service", "quix"), required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--group-prefix", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--index", type=int, required=True)
    args = parser.parse_args(argv)
    logs.configure(fmt="console", level="warning")
    settings = Settings(kafka_bootstrap_servers=args.bootstrap, data_dir=args.work,
                        topic_prefix=args.prefix, group_prefix=args.group_prefix)
    child = _service_child if args.child == "service" else _quix_child
    print(json.dumps(child(settings, args.work, args.index)), flush=True)
    os._exit(0)  # Quix's and kafka-python's threads are done with: no lingering at exit


if __name__ == "__main__":
    sys.exit(main())
