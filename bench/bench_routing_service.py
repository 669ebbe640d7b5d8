"""Routing service benchmark: decisions per second through the real loop, against a raw consume.

    python -m bench.bench_routing_service [--leads 20000] [--broker embedded|auto|apache]

For 650 resellers and then 50,000 (each on its own topics, in one run on one
broker), it writes the reseller profiles and ``--leads`` lead requests, then:

1. the ceiling: a kafka-python consumer reads every lead request, decodes nothing;
2. the service: the router as ``python -m services.routing`` wires it (table read
   at start, the processor loop, the store, the outbox relayed to pn.leads.v1),
   until every lead is decided;
3. the restore: a fresh store rebuilt from pn.leads.v1 (the fold a standby does).

and prints each rate, the service's against the raw consume, and the restore's.
What is produced beforehand is not timed.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from bench._common import broker
from hub import kafka
from hub.config import Settings
from hub.processor import store_path
from hub.restoring import restore_all
from hub.service import processor_loop
from hub.store import Store
from schemas import catalog
from schemas.codec import Codec
from schemas.reference import CATEGORIES, DEPARTEMENTS, region_of
from services.routing.__main__ import build
from services.routing.processor import RoutingProcessor
from services.routing.restore import RoutingRestorer

_T0 = 1_790_000_000_000


def _produce(settings: Settings, topic: str, record: str,
             items: list[tuple[str, dict[str, object]]]) -> None:
    codec = Codec.default()
    producer = kafka.producer(settings, linger_ms=50)
    for key, datum in items:
        producer.send(settings.topic(topic), key=key.encode(), value=codec.encode(record, datum))
    producer.flush()
    producer.close()


def _profiles(count: int, rng: random.Random) -> list[tuple[str, dict[str, object]]]:
    codes, categories = sorted(DEPARTEMENTS), sorted(CATEGORIES)
    out = []
    for n in range(count):
        rid = f"reseller-{n:05d}"
        out.append((rid, {"event_id": str(uuid.UUID(int=n)), "occurred_at": _T0,
                          "source": "bench", "reseller_id": rid, "name": rid,
                          "departements": rng.sample(codes, rng.randint(1, 3)),
                          "categories": rng.sample(categories, rng.randint(2, 4)),
                          "capacity": 10_000, "weight": rng.randint(1, 5)}))
    return out


def _requests(count: int, rng: random.Random) -> list[tuple[str, dict[str, object]]]:
    codes, categories = sorted(DEPARTEMENTS), sorted(CATEGORIES)
    out = []
    for n in range(count):
        departement = rng.choice(codes)
        lead_id = str(uuid.UUID(int=10**9 + n))
        out.append((lead_id, {"event_id": str(uuid.UUID(int=2 * 10**9 + n)), "occurred_at": _T0,
                              "source": "bench", "lead_id": lead_id, "siren": f"{n:09d}",
                              "name": f"Entreprise {n}", "departement": departement,
                              "region": region_of(departement),
                              "category": rng.choice(categories), "naf": None,
                              "contact_email": None}))
    return out


def _raw(settings: Settings, count: int) -> float:
    tp = TopicPartition(settings.topic(catalog.LEAD_REQUESTS), 0)
    consumer = kafka.consumer(settings, group=None)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    started, seen = time.perf_counter(), 0
    while seen < count:
        seen += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
    elapsed = time.perf_counter() - started
    consumer.close()
    return elapsed


def _service(settings: Settings, count: int) -> tuple[float, float]:
    """(seconds to read the table at start, seconds to decide every lead)."""
    started = time.perf_counter()
    wiring = build(settings)
    table_s = time.perf_counter() - started
    processor = wiring.processor
    assert isinstance(processor, RoutingProcessor)
    processor.clock = lambda: _T0
    with Store(store_path(settings, "routing")) as store:
        loop = processor_loop(wiring, settings=settings, store=store, registry=CollectorRegistry())
        loop.start()
        try:
            while not loop.assignment:  # the group join is not the work measured
                loop.run_once(timeout_ms=100)
            began = time.perf_counter()
            while sum(processor.changes.values()) < count:
                loop.run_once(timeout_ms=200)
            loop.relay()
        finally:
            loop.close()
            if wiring.close is not None:
                wiring.close()
    return table_s, time.perf_counter() - began


def _restore(settings: Settings) -> tuple[int, float]:
    restorer = RoutingRestorer(settings, timeout_s=600)
    with Store(settings.data_dir / "restored.sqlite") as store:
        started = time.perf_counter()
        restore_all(restorer, store, [0])
        elapsed = time.perf_counter() - started
    assert restorer.last_restore is not None
    return restorer.last_restore, elapsed


def measure(bootstrap: str, data_dir: Path, resellers: int,
            leads: int) -> tuple[float, float, float, float]:
    """On fresh topics: the raw read of ``leads`` lead requests, the router deciding them
    (per second each), the reseller table's load (s), and the restore (changes/s)."""
    rng = random.Random(2009)
    settings = Settings(kafka_bootstrap_servers=bootstrap,
                        topic_prefix=f"b{uuid.uuid4().hex[:8]}.", group_prefix="bench",
                        data_dir=data_dir, log_format="console", log_level="warning")
    kafka.ensure_topics(settings)
    _produce(settings, catalog.RESELLERS, "ResellerProfile", _profiles(resellers, rng))
    _produce(settings, catalog.LEAD_REQUESTS, "LeadRequested", _requests(leads, rng))
    raw_s = _raw(settings, leads)
    table_s, service_s = _service(settings, leads)
    changes, restore_s = _restore(settings)
    return leads / raw_s, leads / service_s, table_s, changes / restore_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=20_000)
    parser.add_argument("--resellers", type=int, nargs="+", default=[650, 50_000])
    parser.add_argument("--broker", choices=("auto", "apache", "embedded"), default="embedded")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-routing-") as scratch, \
            broker(Path(scratch) / "kafka", args.broker) as where:
        print(f"broker: {where.kind} {where.note}", flush=True)
        for resellers in args.resellers:
            print(f"{resellers:,} resellers, {args.leads:,} lead requests ...", flush=True)
            rows.append((resellers, *measure(where.bootstrap, Path(scratch) / f"data-{resellers}",
                                             resellers, args.leads)))
    print("\n| resellers | raw consume /s | service decisions /s | service / raw | "
          "table load s | restore changes /s |\n|---|---|---|---|---|---|")
    for resellers, raw, service, table_s, restore in rows:
        print(f"| {resellers:,} | {raw:,.0f} | {service:,.0f} | {service / raw:.2f} | "
              f"{table_s:.1f} | {restore:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
