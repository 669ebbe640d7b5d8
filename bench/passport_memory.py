"""The passport benchmark's memory figure: a fresh service process on a store holding
a million passports, applying events to random ones among them."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kafka.partitioner.default import murmur2

from bench._common import Broker, memory_mb
from bench.passport_mix import new_uuid, produce
from bench.passport_runs import run_service
from connectors.publish import Publisher, Record
from connectors.synthetic.identities import identity, siren
from hub import kafka
from hub.config import Settings
from hub.store import Store
from schemas import catalog
from schemas.models import ModuleCompleted
from schemas.reference import DEPARTEMENTS, MODULES, region_of
from services.passport import persist
from services.passport.processor import PASSPORTS_NS
from services.passport.rules import Passport, Profile


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
                        applied=frozenset(str(new_uuid(rng)) for _ in range(2 * len(done) + 1)),
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
        event_id=new_uuid(rng), occurred_at=at, source="bench", siren=rng.choice(sirens),
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



def memory_lines(memory: dict[str, float], passports: int, events: int) -> list[str]:
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
