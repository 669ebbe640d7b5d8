"""Ingest benchmark: the HTTP API against the raw producer, on one broker, in one run.

    python -m bench.bench_ingest [--events 60000] [--batch 1000] [--clients 4]
                                 [--rounds 3] [--rate 300] [--seconds 15]

Prints (a) the raw kafka-python producer rate for the same Avro payloads
(acks=all, idempotent: the ceiling) and (b) batch ingest through
``POST /v1/events:batch`` (the API as deployed: ``python -m connectors.api`` in
its own process) in interleaved rounds, and the median of their ratios (the raw
producer's rate alone moves by a third from run to run on a shared machine);
then single-event latency at a paced, open-loop rate (each request is timed from
when it was due, so a server that falls behind shows it): (c) the raw
producer's, one record at a time, and (d) the API's ``POST /v1/events``, and
their ratio. The broker is the embedded one unless ``KAFKA_BOOTSTRAP_SERVERS``
names another.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.publish import LINGER_MS, Publisher
from connectors.synthetic.identities import siren
from hub import kafka
from hub.broker import EmbeddedBroker, free_port
from hub.config import Settings
from schemas.models import parse_event

DEV_KEY = "bench-key"
AUTH = {"Authorization": f"Bearer {DEV_KEY}", "Content-Type": "application/json"}


def events(count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Plausible enrolments, each with its own event id (none is a retry)."""
    now = datetime.now(UTC).isoformat()
    return [{"type": "business_enrolled", "event_id": str(uuid.uuid4()), "occurred_at": now,
             "source": "cefac-78", "siren": siren(rng), "name": f"Entreprise {i}",
             "departement": rng.choice(["75", "78", "92", "69", "13", "2A"]),
             "naf": "47.11D", "employees": rng.randint(0, 249),
             "contact_email": f"contact{i}@exemple.fr", "consent_share_with_resellers": True}
            for i in range(count)]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_rate(settings: Settings, payloads: list[dict[str, Any]]) -> tuple[float, float]:
    """Events/s of one kafka-python producer sending the same records, pre-encoded, and
    its CPU µs per event (this process: the caller's thread and the client's own)."""
    publisher = Publisher(settings)
    records = [publisher.record(parse_event(p)) for p in payloads]
    # The Publisher's producer: acks=all, idempotent, the same linger, no client metrics.
    producer = kafka.producer(settings, metrics_enabled=False, linger_ms=LINGER_MS)
    try:
        warm = [producer.send(r.topic, key=r.key, value=r.value) for r in records[:1000]]
        producer.flush()
        for future in warm:
            future.get(timeout=30)
        started, cpu = time.perf_counter(), process_cpu_s(os.getpid())
        futures = [producer.send(r.topic, key=r.key, value=r.value) for r in records]
        producer.flush()
        for future in futures:
            future.get(timeout=30)
        elapsed = time.perf_counter() - started
        used = process_cpu_s(os.getpid()) - cpu
        return len(records) / elapsed, used / len(records) * 1e6
    finally:
        producer.close(timeout=10)


@contextmanager
def api_process(settings: Settings, data_dir: Path) -> Iterator[tuple[str, int]]:
    """``python -m connectors.api`` on a free port, as deployed; yields its URL and pid."""
    port = free_port()
    assert settings.kafka_bootstrap_servers is not None
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "PASSPORT_HUB_TOPIC_PREFIX": settings.topic_prefix,
           "PASSPORT_HUB_DATA_DIR": str(data_dir), "PASSPORT_HUB_API_PORT": str(port),
           "PASSPORT_HUB_DEV_API_KEY": DEV_KEY, "PASSPORT_HUB_LOG_LEVEL": "warning",
           "PASSPORT_HUB_LOG_FORMAT": "json"}
    log = (data_dir / "api.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "connectors.api"], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start; see {data_dir / 'api.log'}")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def batch_rate(base: str, payloads: list[dict[str, Any]], size: int, clients: int) -> float:
    """Events/s through ``POST /v1/events:batch``, ``clients`` at a time, bodies pre-encoded."""
    bodies = [json.dumps({"events": payloads[i:i + size]}).encode()
              for i in range(0, len(payloads), size)]
    queue = iter(bodies)
    lock = threading.Lock()
    statuses: Counter[int] = Counter()

    def client() -> None:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as http:
            while True:
                with lock:
                    body = next(queue, None)
                if body is None:
                    return
                answer = http.post("/v1/events:batch", content=body)
                with lock:
                    statuses[answer.status_code] += 1

    started = time.perf_counter()
    _run_threads(client, clients)
    elapsed = time.perf_counter() - started
    assert statuses == Counter({202: len(bodies)}), statuses
    return len(payloads) / elapsed


def paced_latencies(base: str, payloads: list[dict[str, Any]], rate: float,
                    threads: int) -> tuple[list[float], Counter[int], float]:
    """Single-event latencies (s) at ``rate`` requests/s, open loop: each timed from when due.

    The clients are ``http.client`` connections (keep-alive), not httpx: the load
    generator shares the CPUs with the API and the broker, and the lighter it is
    (~3x less CPU a request), the less of its own delay it adds to what it measures.
    """
    bodies = [json.dumps(p).encode() for p in payloads]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    cursor = iter(range(len(bodies)))
    address = urlsplit(base)
    start = time.perf_counter() + 0.5

    def client() -> None:
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port,
                                                timeout=30)
        try:
            while True:
                with lock:
                    index = next(cursor, None)
                if index is None:
                    return
                due = start + index / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                connection.request("POST", "/v1/events", body=bodies[index], headers=AUTH)
                answer = connection.getresponse()
                answer.read()
                done = time.perf_counter()
                with lock:
                    latencies.append(done - due)
                    statuses[answer.status] += 1
        finally:
            connection.close()

    _run_threads(client, threads)
    achieved = len(bodies) / (time.perf_counter() - start)
    return latencies, statuses, achieved


def raw_latencies(settings: Settings, payloads: list[dict[str, Any]],
                  rate: float) -> list[float]:
    """The raw producer's single-record latencies (s) at ``rate`` records/s, open loop.

    The same pacing as ``paced_latencies``: each record is handed to the client when
    due and timed from then to its acknowledgement (acks=all), one at a time as the
    API sends a single event (no linger, no batching but what overlaps in flight).
    """
    publisher = Publisher(settings)
    records = [publisher.record(parse_event(p)) for p in payloads]
    producer = kafka.producer(settings, metrics_enabled=False, linger_ms=LINGER_MS)
    latencies: list[float] = []
    try:
        producer.send(records[0].topic, key=records[0].key, value=records[0].value).get(30)
        start = time.perf_counter() + 0.5
        futures = []
        for index, record in enumerate(records):
            due = start + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            future = producer.send(record.topic, key=record.key, value=record.value)
            future.add_callback(lambda _m, due=due: latencies.append(time.perf_counter() - due))
            futures.append(future)
        for future in futures:
            future.get(timeout=30)
    finally:
        producer.close(timeout=10)
    assert len(latencies) == len(records)
    return latencies


def _run_threads(target: Callable[[], None], count: int) -> None:
    workers = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def _percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000, help="events per rate measurement")
    parser.add_argument("--batch", type=int, default=1000, help="events per batch request")
    parser.add_argument("--clients", type=int, default=4, help="concurrent batch clients")
    parser.add_argument("--rate", type=float, default=300.0, help="paced single requests/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="paced run duration")
    parser.add_argument("--threads", type=int, default=16, help="paced client threads")
    parser.add_argument("--rounds", type=int, default=3, help="raw/batch rate rounds")
    args = parser.parse_args(argv)
    rng = random.Random(2009)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-ingest-")))
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            broker = stack.enter_context(EmbeddedBroker(log_path=tmp / "broker.log"))
            bootstrap = broker.bootstrap
        settings = Settings(kafka_bootstrap_servers=bootstrap,
                            topic_prefix=f"bench{uuid.uuid4().hex[:8]}.", data_dir=tmp)
        kafka.ensure_topics(settings)
        print(f"broker {bootstrap} · {args.events} events per rate · CPUs {os.cpu_count()}")

        base, pid = stack.enter_context(api_process(settings, tmp))
        batch_rate(base, events(4 * args.batch, rng), args.batch, args.clients)  # warm-up
        by_rate, by_cpu = [], []
        for round_ in range(1, args.rounds + 1):
            # Interleaved, so both sides of a ratio see the same moment of a shared machine.
            raw, raw_cpu = raw_rate(settings, events(args.events, rng))
            cpu = process_cpu_s(pid)
            batch = batch_rate(base, events(args.events, rng), args.batch, args.clients)
            batch_cpu = (process_cpu_s(pid) - cpu) / args.events * 1e6
            by_rate.append(batch / raw)
            by_cpu.append(raw_cpu / batch_cpu)
            print(f"round {round_}: (a) raw producer (acks=all, idempotent, pre-encoded) "
                  f"{raw:8,.0f} events/s, {raw_cpu:5.1f} CPU µs/event · (b) POST "
                  f"/v1/events:batch ({args.batch}/request, {args.clients} clients) "
                  f"{batch:8,.0f} events/s, {batch_cpu:5.1f} CPU µs/event (API process) · "
                  f"b/a {by_rate[-1]:.0%}")
        print(f"    batch / raw, median of {args.rounds} rounds = {statistics.median(by_rate):.0%} "
              f"by rate (rounds {min(by_rate):.0%}-{max(by_rate):.0%}), "
              f"{statistics.median(by_cpu):.0%} by CPU per event (target >= 50%); "
              f"load average {os.getloadavg()[0]:.1f}")

        count = int(args.rate * args.seconds)
        raw_ms = [v * 1000 for v in raw_latencies(settings, events(count, rng), args.rate)]
        print(f"(c) raw producer, one record at a time at {args.rate:.0f}/s for "
              f"{args.seconds:.0f} s: p50 {_percentile(raw_ms, 0.5):.1f} ms · p99 "
              f"{_percentile(raw_ms, 0.99):.1f} ms · max {max(raw_ms):.1f} ms")
        latencies, statuses, achieved = paced_latencies(base, events(count, rng), args.rate,
                                                         args.threads)
        ms = [value * 1000 for value in latencies]
        print(f"(d) POST /v1/events at {args.rate:.0f} req/s for {args.seconds:.0f} s "
              f"(achieved {achieved:.0f} req/s, {args.threads} threads, statuses "
              f"{dict(statuses)}): p50 {_percentile(ms, 0.5):.1f} ms · p99 "
              f"{_percentile(ms, 0.99):.1f} ms · max {max(ms):.1f} ms (target p99 <= 25 ms)")
        print(f"    API / raw: p50 {_percentile(ms, 0.5) / _percentile(raw_ms, 0.5):.1f}x · "
              f"p99 {_percentile(ms, 0.99) / _percentile(raw_ms, 0.99):.1f}x; load average "
              f"{os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
