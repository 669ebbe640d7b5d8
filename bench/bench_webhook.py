"""Webhook delivery benchmark: lead change → signed webhook received, over real local HTTP.

    python -m bench.bench_webhook [--rate 200] [--seconds 20] [--endpoints 650]
                                  [--burst 10000] [--broker embedded|auto|apache]

One broker, one run, the delivery component as ``python -m connectors.crm_webhook``
deploys it (a child process), one real HTTP receiver (uvicorn, in this process)
serving one path per reseller endpoint:

1. latency, all healthy: ``--rate`` lead changes a second for ``--seconds``, each
   to a random one of ``--endpoints`` resellers, written onto ``pn.leads.v1`` as
   the router writes them; a change's latency is from its ``occurred_at`` (set when
   it is produced) to the receiver's arrival time of its webhook. p50 / p99;
2. latency, 10% of the endpoints slow (2 s to answer) and 5% down (nothing
   listens): the same traffic, the healthy endpoints' p50 / p99 again, and their
   p99 against run 1's (the target: within ±20%, and ≤ 150 ms);
3. throughput: ``--burst`` changes for healthy endpoints written at once;
   deliveries per second from its first delivery to its last,
   against the ceiling: this process's own aiohttp session (the component's
   client) posting the same count of signed bodies to the same receiver with the
   same concurrency.

The latency runs have a peer too: the same changes at the same rate produced and
consumed by plain kafka-python clients on the same broker (the broker's share of
the latency: on the embedded broker a fetch may wait before it answers).

The endpoints' registration and the group join are not timed. Every delivery is
verified with the ``standardwebhooks`` package by the receiver; the bench fails if
one is not.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from kafka import TopicPartition
from standardwebhooks.webhooks import Webhook

from bench._common import broker
from connectors.crm_webhook import signing
from connectors.crm_webhook.receiver import Delivery, Receiver
from hub import kafka
from hub.config import Settings
from hub.reader import TopicReader
from schemas import catalog
from schemas.codec import Codec
from schemas.webhooks import iso

_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a bench constant
#: Where a "down" endpoint points: a loopback port nothing listens on (connection refused).
_DOWN = "http://127.0.0.1:9"


@dataclass(frozen=True, slots=True)
class Mix:
    name: str
    slow: float
    down: float


@dataclass(frozen=True, slots=True)
class Where:
    """What every run of one bench shares."""

    bootstrap: str
    scratch: Path
    receiver: Receiver
    rng: random.Random
    endpoints: int


def _settings(bootstrap: str, data_dir: Path, prefix: str) -> Settings:
    return Settings(kafka_bootstrap_servers=bootstrap, topic_prefix=prefix,
                    group_prefix=prefix.rstrip("."), data_dir=data_dir)


def _command(reseller_id: str, url: str, n: int) -> dict[str, Any]:
    return {"event_id": str(uuid.UUID(int=n)), "occurred_at": _now(), "source": "bench",
            "schema_version": 1, "reseller_id": reseller_id, "command": "register", "url": url,
            "enabled": True, "secret": f"plain:{_SECRET}", "overlap_ms": None, "since": None,
            "until": None}


def _change(lead: int, reseller_id: str, at: int) -> dict[str, Any]:
    lead_id = str(uuid.UUID(int=10**9 + lead))
    return {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, lead_id)), "occurred_at": at,
        "source": "routing", "schema_version": 2, "lead_id": lead_id,
        "siren": f"{lead % 10**9:09d}", "category": "website-hosting", "departement": "78",
        "region": "11", "status": "assigned", "reseller_id": reseller_id,
        "rule": "departement", "candidates": [reseller_id],
        "business_name": f"Entreprise {lead}", "contact_email": None, "change": "assigned",
        "version": 1, "previous_reseller_id": None, "reason": None, "hops": 1,
        "excluded_resellers": [], "requested_at": at, "assigned_at": at, "deadline_at": at,
        "sla_breached": False, "duplicate_of": None, "decision": None, "input_offsets": {},
    }


def _now() -> int:
    return time.time_ns() // 1_000_000


def _ids(count: int) -> list[str]:
    return [f"bench-{n:04d}" for n in range(count)]


class _Run:
    """One component over fresh topics, its endpoints registered on one receiver."""

    def __init__(self, where: Where, mix: Mix) -> None:
        prefix = f"bwh{uuid.uuid4().hex[:6]}."
        self.settings = _settings(where.bootstrap, where.scratch / prefix, prefix)
        receiver, rng = where.receiver, where.rng
        self.receiver, self.rng, self.codec = receiver, rng, Codec.default()
        ids = _ids(where.endpoints)
        rng.shuffle(ids)
        slow, down = int(len(ids) * mix.slow), int(len(ids) * mix.down)
        self.slow, self.down = set(ids[:slow]), set(ids[slow:slow + down])
        self.healthy = sorted(set(ids) - self.slow - self.down)
        self.ids = sorted(ids)
        kafka.ensure_topics(self.settings)
        self.producer = kafka.producer(self.settings, linger_ms=0)
        for n, rid in enumerate(self.ids):
            path = f"/{prefix}{rid}"
            receiver.secrets(path, [_SECRET])
            receiver.behave(path, "slow:2" if rid in self.slow else "ok")
            url = f"{_DOWN}{path}" if rid in self.down else receiver.url(path)
            self._send(catalog.WEBHOOK_COMMANDS, rid, "WebhookCommand", _command(rid, url, n))
        self.producer.flush()
        self.prefix = prefix
        self.process: subprocess.Popen[bytes] | None = None

    def _send(self, topic: str, key: str, record: str, datum: dict[str, Any]) -> None:
        self.producer.send(self.settings.topic(topic), key=key.encode(),
                           value=self.codec.encode(record, datum))

    def path(self, reseller_id: str) -> str:
        return f"/{self.prefix}{reseller_id}"

    def start(self) -> None:
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap,
               "PASSPORT_HUB_TOPIC_PREFIX": self.prefix,
               "PASSPORT_HUB_GROUP_PREFIX": self.prefix.rstrip("."),
               "PASSPORT_HUB_DATA_DIR": str(self.settings.data_dir),
               "PASSPORT_HUB_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
               "PASSPORT_HUB_LOG_LEVEL": "warning", "PASSPORT_HUB_LOG_FORMAT": "json"}
        self.process = subprocess.Popen(  # noqa: S603 - our module, fixed arguments
            [sys.executable, *_profiled(), "-m", "connectors.crm_webhook"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def warm_up(self, lead: int) -> None:
        """Every endpoint registered (its state on pn.webhook-endpoints.v1), then one change
        to a healthy endpoint delivered: the component is in its group and has them all."""
        reader = TopicReader(self.settings, (catalog.WEBHOOK_ENDPOINTS,))
        reader.start()
        seen: set[str] = set()
        deadline = time.monotonic() + 120
        try:
            while len(seen) < len(self.ids) and time.monotonic() < deadline:
                seen.update(str(inbound.datum["reseller_id"])
                            for inbound in reader.poll(timeout_ms=500))
        finally:
            reader.close()
        rid = self.healthy[0]
        self._send(catalog.LEADS, str(lead), "LeadAssigned", _change(lead, rid, _now()))
        self.producer.flush()
        self.receiver.wait_for(1, self.path(rid), timeout_s=120)

    def paced(self, first: int, rate: float, seconds: float) -> list[str]:
        """``rate`` changes a second for ``seconds``; the resellers they went to."""
        count, started, sent = int(rate * seconds), time.monotonic(), []
        for n in range(count):
            due = started + n / rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            rid = self.rng.choice(self.ids)
            self._send(catalog.LEADS, str(first + n), "LeadAssigned",
                       _change(first + n, rid, _now()))
            sent.append(rid)
        self.producer.flush()
        return sent

    def burst(self, first: int, count: int) -> None:
        at = _now()
        for n in range(count):
            rid = self.healthy[n % len(self.healthy)]
            self._send(catalog.LEADS, str(first + n), "LeadAssigned", _change(first + n, rid, at))
        self.producer.flush()

    def received(self, paths: set[str], since_ms: int) -> list[Delivery]:
        return [d for d in self.receiver.deliveries()
                if d.path in paths and d.received_ms >= since_ms]

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.producer.close()


def _profiled() -> list[str]:
    """``BENCH_PROFILE=FILE``: run the component under cProfile, its stats written to FILE."""
    target = os.environ.get("BENCH_PROFILE")
    return ["-m", "cProfile", "-o", target] if target else []


def _wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _check(deliveries: Sequence[Delivery]) -> None:
    bad = [d for d in deliveries if d.verified is not True]
    if bad:
        first = bad[0]
        raise SystemExit(f"{len(bad)} deliveries did not verify with standardwebhooks; the "
                         f"first: {first.path} verified={first.verified} "
                         f"id={first.headers.get('webhook-id')} "
                         f"at={first.headers.get('webhook-timestamp')} "
                         f"signature={first.headers.get('webhook-signature')} "
                         f"body={first.body[:300]!r}")


def _latency_run(where: Where, mix: Mix, args: argparse.Namespace) -> tuple[float, float, int]:
    run = _Run(where, mix)
    try:
        run.start()
        run.warm_up(0)
        since = _now()
        sent = run.paced(1, args.rate, args.seconds)
        healthy = {run.path(rid) for rid in run.healthy}
        expected = sum(1 for rid in sent if run.path(rid) in healthy)
        _wait_until(lambda: len(run.received(healthy, since)) >= expected, 60)
        got = run.received(healthy, since)
        _check(got)
        latencies = [d.received_ms - _parse_ms(d.json()["timestamp"]) for d in got]
        return _percentile(latencies, 0.5), _percentile(latencies, 0.99), len(got)
    finally:
        run.stop()


def _broker_floor(where: Where, args: argparse.Namespace) -> tuple[float, float]:
    """The peer of the latency runs: the same changes at the same rate, produced and
    consumed on the same broker by plain kafka-python clients, nothing delivered."""
    run = _Run(where, Mix("floor", 0, 0))
    consumer = kafka.consumer(run.settings, group=None)
    part = TopicPartition(run.settings.topic(catalog.LEADS), 0)
    consumer.assign([part])
    consumer.seek_to_end(part)
    consumer.position(part)
    latencies: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        while not stop.is_set():
            for records in consumer.poll(timeout_ms=50).values():
                now = _now()
                latencies.extend(now - record.timestamp for record in records)

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        run.paced(1, args.rate, args.seconds)
        time.sleep(2)
    finally:
        stop.set()
        follower.join(10)
        consumer.close()
        run.stop()
    return _percentile(latencies, 0.5), _percentile(latencies, 0.99)


def _parse_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _throughput(where: Where, count: int) -> tuple[float, float]:
    run = _Run(where, Mix("healthy", 0, 0))
    try:
        run.start()
        run.warm_up(0)  # every endpoint applied first: a change may not overtake its endpoint
        since = _now()
        run.burst(1, count)
        healthy = {run.path(rid) for rid in run.healthy}
        _wait_until(lambda: len(run.received(healthy, since)) >= count, 600)
        got = run.received(healthy, since)
        _check(got)
        times = sorted(d.received_ms for d in got)
        service = (len(times) - 1) / max(1e-3, (times[-1] - times[0]) / 1000)
        paths = [run.path(run.healthy[n % len(run.healthy)]) for n in range(count)]
    finally:
        run.stop()
    ceiling = asyncio.run(_raw_posts(where.receiver, paths, Settings().webhook_max_in_flight))
    return service, ceiling


async def _raw_posts(receiver: Receiver, paths: list[str], concurrency: int) -> float:
    """The ceiling: signed bodies posted by one aiohttp session (the component's client),
    ``concurrency`` at once, nothing else in the way."""
    gate = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as client:
        async def post(n: int, path: str) -> None:
            body = f'{{"id":"raw-{n}","type":"ping","timestamp":"{iso(_now())}","data":{{}}}}'
            headers = signing.sign_headers(f"raw-{n}", int(time.time()), body.encode(), [_SECRET])
            async with gate, client.post(receiver.url(path), data=body.encode(),
                                         headers=headers) as response:
                await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(post(n, path) for n, path in enumerate(paths)))
        return len(paths) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--endpoints", type=int, default=650)
    parser.add_argument("--burst", type=int, default=10_000)
    parser.add_argument("--broker", choices=("auto", "apache", "embedded"), default="embedded")
    args = parser.parse_args(argv)
    Webhook(_SECRET)  # a bad constant fails here, not after minutes of set-up
    rng = random.Random(11)
    with tempfile.TemporaryDirectory(prefix="bench-webhook-") as scratch, \
            broker(Path(scratch) / "kafka", args.broker) as where, Receiver() as receiver:
        print(f"broker: {where.kind}{' — ' + where.note if where.note else ''}")
        print(f"{args.endpoints} endpoints, {args.rate:g} lead changes/s for {args.seconds:g} s")
        shared = Where(where.bootstrap, Path(scratch), receiver, rng, args.endpoints)
        floor = _broker_floor(shared, args)
        healthy = _latency_run(shared, Mix("all healthy", 0, 0), args)
        mixed = _latency_run(shared, Mix("10% slow, 5% down", 0.10, 0.05), args)
        print(f"  {'broker alone (the floor)':<26} produce → consume:  p50 {floor[0]:6.0f} ms "
              f"· p99 {floor[1]:6.0f} ms")
        for name, (p50, p99, count) in (("all healthy", healthy),
                                        ("10% slow (2 s), 5% down", mixed)):
            print(f"  {name:<26} healthy endpoints: p50 {p50:6.0f} ms · p99 {p99:6.0f} ms "
                  f"· {count} deliveries")
        print(f"  healthy p99, mixed / all healthy: {mixed[1] / max(1.0, healthy[1]):.2f}x "
              f"(target 0.8-1.2x, p99 ≤ 150 ms)")
        service, ceiling = _throughput(shared, args.burst)
        print(f"throughput, {args.burst} deliveries to healthy endpoints:")
        print(f"  component   {service:8.0f} deliveries/s")
        print(f"  raw aiohttp {ceiling:8.0f} posts/s (ceiling: the same client alone, same "
              f"receiver)")
        print(f"  ratio       {service / ceiling:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
