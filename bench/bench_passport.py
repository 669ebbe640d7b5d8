"""Passport benchmark: the passport service against raw kafka-python and Quix Streams, one broker.

    python -m bench.bench_passport [--businesses 20000] [--passports 1000000]
                                   [--rounds 5] [--scale 2]
                                   [--broker auto|apache|embedded] [--memory-only]

On one broker, in one run, in interleaved rounds, it prints (1) the raw
kafka-python consume ceiling for the pre-produced event mix (no decoding, no
work), (1b) the stateful ceiling (consume, decode, one SQLite upsert per changed
key, commit: bench.passport_runs.stateful_ceiling), (2) the passport service
(``ProcessorLoop`` + ``PassportProcessor`` + a SQLite ``Store``) on that mix,
(3) Quix Streams doing the same stateful work on the training topic, (5) two
service instances in one group and (6) two Quix instances in one group, each in
its own process (bench.passport_scale); then (4) the medians of the ratios, (8)
the routing service's rate against the raw consume of its input, and the
service's resident memory with 1,000,000 passports in its store. The broker
is ``KAFKA_BOOTSTRAP_SERVERS`` if set, else an Apache Kafka single node started
here (deploy/kafka), else the embedded one.
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

from bench import bench_routing_service as routing
from bench._common import Broker, broker
from bench.passport_memory import measure_memory, memory_lines, rss_child
from bench.passport_mix import event_mix, produce
from bench.passport_runs import Measure, raw_ceiling, run_quix, run_service, stateful_ceiling
from bench.passport_scale import run_group
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
    parser.add_argument("--scale", type=int, default=2,
                        help="instances in the scale-out runs (5) and (6); below 2: none")
    parser.add_argument("--routing-leads", type=int, default=20_000,
                        help="lead requests for the routing figure (8); 0: none")
    parser.add_argument("--rounds", type=int, default=5,
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
            throughput(found, tmp, args.businesses, args.seed, rounds=args.rounds,
                       scale=args.scale)
            if args.routing_leads:
                raw, decided, _, _ = routing.measure(found.bootstrap, tmp / "routing", 650,
                                                     args.routing_leads)
                print(f"(8) routing, 650 resellers, {args.routing_leads:,} lead requests: "
                      f"{decided:,.0f} decisions/s against a raw consume of "
                      f"pn.lead-requests.v1 at {raw:,.0f}/s: {decided / raw:.2f} "
                      "(bench/bench_routing_service.py; the read model's rebuild against "
                      "the raw read of its topic: make bench-restore)")
        if args.passports:
            memory = measure_memory(found, tmp, args.passports, args.memory_events, args.seed)
            print("\n".join(memory_lines(memory, args.passports, args.memory_events)))
    return 0



def throughput(found: Broker, tmp: Path, businesses: int, seed: int, *, rounds: int,
               scale: int) -> None:
    """Sections (1) to (6): the same pre-produced records, every reader, one broker, in
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
    ratios: dict[str, list[float]] = {name: [] for name in (
        "raw", "ceiling", "quix", "quix_cpu", "scaled", "scaled_quix", "scaled_quix_cpu")}
    for number in range(1, rounds + 1):
        print(f"\n  {f'round {number} of {rounds}':<48} {'records':>9} {'seconds':>8}"
              f" {'records/s':>11} {'CPU µs':>9}")
        raw = raw_ceiling(settings, len(records))
        print(_row("(1) raw kafka-python consume, no decoding", raw))
        ceiling = stateful_ceiling(settings, tmp / f"ceiling-{number}.sqlite", len(records))
        print(_row("(1b) consume, decode, upsert per key, commit", ceiling))
        # A fresh store and consumer group each round.
        mine = settings.model_copy(update={"group_prefix": f"{settings.topic_prefix}r{number}"})
        service, out = run_service(mine, tmp / f"service-{number}" / "passport-0.sqlite",
                                   len(records))
        print(_row("(2) passport service, all 3 input topics", service))
        print(f"      {out['snapshots']:,} snapshots and {out['leads']:,} lead requests relayed "
              f"(the source expects {expected.leads:,} leads in time order), {out['dead']:,} "
              "dead letters")
        ratios["raw"].append(service.rate / raw.rate)
        ratios["ceiling"].append(service.rate / ceiling.rate)
        quix = _quix(found, settings, tmp / f"quix-state-{number}", training, f"r{number}")
        if quix is not None:
            ratios["quix"].append(service.rate / quix.rate)
            ratios["quix_cpu"].append(quix.cpu_us / service.cpu_us)
        if scale < 2:
            continue
        grouped = settings.model_copy(update={"group_prefix": f"{settings.topic_prefix}s{number}"})
        scaled = run_group(grouped, tmp / f"scale-{number}", "service", scale, len(records))
        print(_row(f"(5) {scale} passport service instances, one group", scaled))
        ratios["scaled"].append(scaled.rate / service.rate)
        if quix is not None:
            scaled_quix = run_group(grouped, tmp / f"scale-quix-{number}", "quix", scale,
                                    training)
            print(_row(f"(6) {scale} Quix Streams instances, one group", scaled_quix))
            ratios["scaled_quix"].append(scaled.rate / scaled_quix.rate)
            ratios["scaled_quix_cpu"].append(scaled_quix.cpu_us / scaled.cpu_us)
    print(f"\n(4) medians of {rounds} round(s) (each round's in brackets):\n"
          f"    service / raw ceiling (1) = {_median(ratios['raw'])}\n"
          f"    service / stateful ceiling (1b) = {_median(ratios['ceiling'])} (aim >= 0.5)\n"
          f"    service / Quix Streams = {_median(ratios['quix'])} (target >= 1.2); "
          f"by CPU per record {_median(ratios['quix_cpu'])} (target >= 1.2)")
    if scale >= 2:
        print(f"    {scale} instances / 1 instance = {_median(ratios['scaled'])} (target >= 1.6)\n"
              f"    {scale} instances / {scale} Quix = {_median(ratios['scaled_quix'])} "
              f"(target >= 1.2); by CPU per record {_median(ratios['scaled_quix_cpu'])}")
    print(f"    load average {os.getloadavg()[0]:.1f} · CPU µs per record: the process(es), "
          "all threads (the clients' own included); (5) and (6) from the first record in "
          "hand in any instance to the last applied in any\n")


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
