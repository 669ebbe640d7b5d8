"""Restore benchmark: rebuilding passport state, and the read model, from ``pn.passports.v1``.

    python -m bench.bench_restore [--passports 1000000] [--broker auto|apache|embedded]

Writes ``--passports`` whole-state snapshots (PassportSnapshot v2, as the service
writes them: an enrolled business with 3 modules, one offer and a lead, its
applied ids) to the compacted passport topic, then in one run on that broker:

1. the raw ceiling: a kafka-python consumer reads every record of the topic,
   decodes nothing, does nothing;
2. the restore: ``services.passport.restore.PassportRestorer`` rebuilds all six
   partitions into a fresh SQLite store, exactly as an instance taking them over
   does (decode, latest per SIREN, state rows, positions; large partitions
   converted in a helper process: hub/checkpoint.py);
3. the read model's rebuild (``services.readmodel.materialiser.ReadModel``, as
   the API starts it: every topic it follows, from the beginning, into a fresh
   file), until caught up;

each of 2 and 3 in a fresh process, and prints the rates, their ratio to the raw
read, the time, and the resident memory after it and at its peak (the helper's
apart). The snapshots are produced beforehand and not timed.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kafka import TopicPartition

from bench._common import broker, memory_mb
from connectors.synthetic.identities import siren
from hub import kafka, logs
from hub.checkpoint import stop_helper
from hub.config import Settings
from hub.service import tuned_gc
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from services.passport import outputs
from services.passport.restore import PassportRestorer
from services.passport.rules import Offer, Passport, Profile
from services.readmodel.materialiser import ReadModel

_DAY_MS = 86_400_000
_T0 = 1_700_000_000_000


def _passport(code: str, n: int) -> Passport:
    """A typical issued passport: enrolled, three modules, one offer that became a lead."""
    at = _T0 + (n % 1000) * _DAY_MS
    ids = [str(uuid.UUID(int=n * 8 + i)) for i in range(6)]
    return Passport(
        siren=code,
        profile=Profile(f"Entreprise {n}", "78", "11", "47.11D", f"contact{n}@example.fr",
                        True, at, ids[0]),
        modules={"website-create": at + 1, "website-traffic": at + 2, "email-pro": at + 3},
        offers=(Offer(ids[4], at + 4, "e-commerce", "lead_requested", ids[5]),),
        applied=frozenset(ids[:5]),
        last_event_at=at + 4,
    )


def _produce(settings: Settings, count: int) -> int:
    """Write ``count`` snapshots; return the bytes written."""
    rng = random.Random(2009)
    codec = Codec.default()
    producer = kafka.producer(settings, linger_ms=50)
    topic = settings.topic(catalog.PASSPORTS)
    size = 0
    seen: set[str] = set()
    for n in range(count):
        while (code := siren(rng)) in seen:
            pass
        seen.add(code)
        datum = outputs.snapshot(_passport(code, n),
                                 event_id=outputs.snapshot_id(code, f"bench/0/{n}"),
                                 input_offsets={"pn.training.v1/0": n + 1},
                                 replay_from={"pn.training.v1/0": n})
        value = codec.encode("PassportSnapshot", datum)
        size += len(value)
        producer.send(topic, key=code.encode(), value=value)
    producer.flush()
    producer.close()
    return size


def _raw_read(settings: Settings, count: int) -> float:
    """Seconds to read every record of the passport topic, doing nothing with them."""
    topic = settings.topic(catalog.PASSPORTS)
    consumer = kafka.consumer(settings, group=None)
    partitions = [TopicPartition(topic, p) for p in range(catalog.SIREN_PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    started = time.perf_counter()
    seen = 0
    while seen < count:
        seen += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def _child(kind: str, settings: Settings, data: Path) -> dict[str, float]:
    """One rebuild in this (fresh) process: the passport restore or the read model's."""
    started = time.perf_counter()
    if kind == "restore":
        restorer = PassportRestorer(settings, timeout_s=3600)
        with Store(data / "passport-0.sqlite") as store, tuned_gc():
            # tuned_gc: as the service runs its loop, and so its restores.
            restorer.restore(store, list(range(catalog.SIREN_PARTITIONS)))
        count = sum(restorer.last_restore.values())
    else:
        model = ReadModel(settings, data / "readmodel.sqlite")
        model.start(timeout_s=60)
        if not model.wait_caught_up(3600):
            raise TimeoutError("the read model never caught up")
        count = model.counts()["businesses"]
        model.stop()
    seconds = time.perf_counter() - started
    stop_helper()  # its peak is then counted among this process's children
    rss, peak = memory_mb()
    helper = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"seconds": seconds, "count": count, "rss": rss, "peak": peak, "helper": helper}


def _rebuild(kind: str, settings: Settings, data: Path) -> dict[str, float]:
    done = subprocess.run(  # noqa: S603 - our module, fixed arguments
        [sys.executable, "-m", "bench.bench_restore", "--child", kind,
         "--bootstrap", settings.bootstrap, "--prefix", settings.topic_prefix,
         "--data", str(data)], capture_output=True, text=True, check=True, timeout=3600)
    report: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passports", type=int, default=1_000_000)
    parser.add_argument("--broker", choices=("auto", "apache", "embedded"), default="auto")
    parser.add_argument("--child", choices=("restore", "readmodel"), help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        settings = Settings(kafka_bootstrap_servers=args.bootstrap, topic_prefix=args.prefix,
                            group_prefix="bench", data_dir=args.data, log_format="console",
                            log_level="warning")
        logs.configure(fmt="console", level="warning")
        print(json.dumps(_child(args.child, settings, args.data)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-restore-") as scratch, \
            broker(Path(scratch) / "kafka", args.broker) as where:
        settings = Settings(kafka_bootstrap_servers=where.bootstrap,
                            topic_prefix=f"r{uuid.uuid4().hex[:8]}.", group_prefix="bench",
                            data_dir=Path(scratch) / "data", log_format="console",
                            log_level="warning")
        kafka.ensure_topics(settings)
        print(f"broker: {where.kind} {where.note}", flush=True)
        print(f"writing {args.passports:,} snapshots ...", flush=True)
        written = _produce(settings, args.passports)
        raw_s = _raw_read(settings, args.passports)
        runs = {kind: _rebuild(kind, settings, Path(scratch) / kind)
                for kind in ("restore", "readmodel")}
    n = args.passports
    print(f"\n| what | passports | seconds | passports/s | vs raw read | RSS after, peak MiB |"
          f"\n|---|---|---|---|---|---|\n"
          f"| raw read of pn.passports.v1 (ceiling) | {n:,} | {raw_s:.1f} | {n / raw_s:,.0f} "
          f"| 1.00 | |")
    for kind, what in (("restore", "passport restore into a fresh store"),
                       ("readmodel", "read model rebuilt from the topics")):
        run = runs[kind]
        assert run["count"] == n, f"{kind}: {run['count']} of {n}"
        print(f"| {what} | {run['count']:,.0f} | {run['seconds']:.1f} "
              f"| {n / run['seconds']:,.0f} | {raw_s / run['seconds']:.2f} "
              f"| {run['rss']:.0f}, {run['peak']:.0f} (helper process peak "
              f"{run['helper']:.0f}) |")
    print(f"\ntopic {written / 2**20:,.0f} MiB ({written / n:.0f} B per snapshot); targets: "
          f"each rebuild <= 30 s, RSS <= 250 MiB; each runs in a fresh process")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
