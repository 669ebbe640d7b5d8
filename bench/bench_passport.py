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
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from bench._common import Broker, broker
from bench.passport_memory import measure_memory, memory_lines, rss_child
from bench.passport_mix import event_mix, produce
from bench.passport_runs import Measure, raw_ceiling, run_quix, run_service
from hub import kafka, logs
from hub.config import Settings
from schemas import catalog

# -- the report ------------------------------------------------------------------------------

def _row(name: str, measure: Measure) -> str:
    return (f"  {name:<48} {measure.records:>9,} {measure.seconds:>8.2f} {measure.rate:>11,.0f}"
            f" {measure.cpu_us:>9.1f}")


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
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of (1)-(3); the ratios printed are medians")
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
            throughput(found, tmp, args.businesses, args.seed, args.rounds)
        if args.passports:
            memory = measure_memory(found, tmp, args.passports, args.memory_events, args.seed)
            print("\n".join(memory_lines(memory, args.passports, args.memory_events)))
    return 0



def throughput(found: Broker, tmp: Path, businesses: int, seed: int, rounds: int) -> None:
    """Sections (1) to (4): the same pre-produced records, three readers, one broker, in
    ``rounds`` interleaved rounds (the machine's speed drifts between runs)."""
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
    by_rate: dict[str, list[float]] = {"raw": [], "quix": [], "quix_cpu": []}
    for number in range(1, rounds + 1):
        print(f"\n  {f'round {number} of {rounds}':<48} {'records':>9} {'seconds':>8}"
              f" {'records/s':>11} {'CPU µs':>9}")
        raw = raw_ceiling(settings, len(records))
        print(_row("(1) raw kafka-python consume, no decoding", raw))
        # A fresh store and consumer group each round.
        mine = settings.model_copy(update={"group_prefix": f"{settings.topic_prefix}r{number}"})
        service, out = run_service(mine, tmp / f"service-{number}" / "passport-0.sqlite",
                                   len(records))
        print(_row("(2) passport service, all 3 input topics", service))
        print(f"      {out['snapshots']:,} snapshots and {out['leads']:,} lead requests relayed "
              f"(the source expects {expected.leads:,} leads in time order), {out['dead']:,} "
              "dead letters")
        by_rate["raw"].append(service.rate / raw.rate)
        quix = _quix(found, settings, tmp / f"quix-state-{number}", training, f"r{number}")
        if quix is None:
            break
        by_rate["quix"].append(service.rate / quix.rate)
        by_rate["quix_cpu"].append(quix.cpu_us / service.cpu_us)
    print(f"\n(4) medians of {len(by_rate['raw'])} round(s) (each round's in brackets): "
          f"service / raw ceiling = {_median(by_rate['raw'])} (target >= 0.5)")
    if by_rate["quix"]:
        print(f"    service / Quix Streams = {_median(by_rate['quix'])} (target >= 1.0); "
              f"by CPU per record {_median(by_rate['quix_cpu'])}")
    print(f"    load average {os.getloadavg()[0]:.1f} · CPU µs per record: this process, "
          "all threads (the clients' own included)\n")


def _quix(found: Broker, settings: Settings, state_dir: Path, training: int,
          suffix: str) -> Measure | None:
    """Section (3), or why Quix Streams could not run here."""
    try:
        quix, closed, snapshots = run_quix(settings, state_dir, training, suffix)
    except Exception as exc:  # say why, and keep the other figures
        print(f"  (3) Quix Streams could not run on this broker: {type(exc).__name__}: {exc}")
        if found.embedded:
            print("      It reads retention.ms from DescribeConfigs to create its changelog "
                  "topics, and the embedded broker returns no topic configuration: run where "
                  "java is available (Apache Kafka is then started) or set "
                  "KAFKA_BOOTSTRAP_SERVERS.")
        return None
    print(_row("(3) Quix Streams, training topic only, stateful", quix))
    print(f"      {snapshots:,} snapshots (one per record, redeliveries dropped); "
          f"{closed.rate:,.0f} records/s counting its final checkpoint and close")
    return quix


def _median(ratios: list[float]) -> str:
    return (f"{statistics.median(ratios):.2f} ({', '.join(f'{r:.2f}' for r in ratios)})"
            if ratios else "n/a")


if __name__ == "__main__":
    sys.exit(main())
