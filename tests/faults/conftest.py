"""Fixtures for broker-fault tests: a three-broker Apache Kafka cluster and hub processes.

The cluster comes from ``deploy/kafka/kafka.sh`` (Apache Kafka's own jars from
Maven Central, on the machine's JDK); it fails, never skips, when it cannot start.
Also what the tests share: a partner posting over HTTP that keeps what the API
acknowledged, the final passports, and the check that each acknowledged event is
in them exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import TopicPartition
from kafka.admin import OffsetSpec

from hub import kafka
from hub.broker import free_port
from hub.config import Settings
from hub.reader import TopicReader
from schemas import catalog
from schemas.identifiers import luhn_valid

KAFKA_SH = Path(__file__).parents[2] / "deploy" / "kafka" / "kafka.sh"
#: The API key the components' API accepts (its dev key: these are test processes).
DEV_API_KEY = "faults-dev-key"


class _AuthenticatedClient(httpx.Client):
    """An ``httpx.Client`` that sends the test API key unless told otherwise."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["headers"] = {"Authorization": f"Bearer {DEV_API_KEY}", **kwargs.get("headers", {})}
        super().__init__(*args, **kwargs)


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """The fault tests' clients (``httpx.Client``) send the API key.

    The tests were written before the API asked for keys; this keeps them about
    broker faults rather than credentials. Probes (``httpx.get``) need none.
    """
    monkeypatch.setattr(httpx, "Client", _AuthenticatedClient)
    return DEV_API_KEY


@dataclass
class Cluster:
    """A running three-broker cluster that tests may crash and restart."""

    run_dir: Path
    bootstrap: str

    def _sh(self, *args: str, timeout: float = 120) -> str:
        env = {**os.environ, "KAFKA_RUN_DIR": str(self.run_dir)}
        done = subprocess.run([str(KAFKA_SH), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        assert done.returncode == 0, f"kafka.sh {' '.join(args)} failed:\n{done.stderr}"
        return done.stdout.strip()

    def kill(self, node: int) -> None:
        self._sh("kill", str(node))

    def restart(self, *nodes: int) -> None:
        """Restart nodes together (a quorum needs at least two of them back at once)."""
        self._sh("restart", *map(str, nodes), timeout=180)

    def wait_isr(self) -> None:
        """Wait until every partition of every topic has all its replicas in sync."""
        self._sh("wait-isr", "60")


@dataclass(frozen=True)
class Busiest:
    """The partition holding the most records among some topics, and who leads it."""

    topic: str
    """Its catalog (base) name."""
    partition: int
    records: int
    leader: int
    """The leader's node id: kafka.sh's node number."""


def busiest_partition(settings: Settings, topics: Sequence[str]) -> Busiest:
    """The partition of ``topics`` (catalog names) with the most records, and its leader,
    as the admin client's offsets and metadata give them."""
    physical = {settings.topic(name): name for name in topics}
    partitions = [TopicPartition(name, p) for name, base in physical.items()
                  for p in range(catalog.topic(base).partitions)]
    client = kafka.admin(settings)

    def offsets(spec: OffsetSpec) -> dict[TopicPartition, int]:
        specs = dict.fromkeys(partitions, spec)
        found = kafka.retrying(lambda: client.list_partition_offsets(specs),
                               what="partition offsets", timeout_s=60)
        return {tp: int(found[tp].offset) for tp in partitions}

    try:
        ends, starts = offsets(OffsetSpec.LATEST), offsets(OffsetSpec.EARLIEST)
        sizes = {tp: ends[tp] - starts[tp] for tp in partitions}
        busiest = max(partitions, key=sizes.__getitem__)
        described = kafka.retrying(lambda: client.describe_topics([busiest.topic]),
                                   what="topic metadata", timeout_s=60)
    finally:
        client.close()
    leader = next(p["leader_id"] for p in described[0]["partitions"]
                  if p["partition_index"] == busiest.partition)
    return Busiest(physical[busiest.topic], busiest.partition, sizes[busiest], int(leader))


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    run_dir = tmp_path_factory.mktemp("kafka-cluster")
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    subprocess.run([str(KAFKA_SH), "fetch"], env=env, check=True, timeout=600)
    started = subprocess.run([str(KAFKA_SH), "start", "cluster"], env=env, capture_output=True,
                             text=True, timeout=180, check=False)
    assert started.returncode == 0, f"cluster did not start:\n{started.stderr}"
    cluster = Cluster(run_dir, started.stdout.strip().splitlines()[-1])
    try:
        yield cluster
    finally:
        subprocess.run([str(KAFKA_SH), "stop"], env=env, timeout=120, check=False)


@pytest.fixture
def cluster_settings(cluster: Cluster, tmp_path: Path) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return Settings(kafka_bootstrap_servers=cluster.bootstrap, topic_prefix=f"f{tag}.",
                    group_prefix=f"f{tag}", data_dir=tmp_path / "data", replication_factor=3,
                    api_port=free_port(), produce_timeout_s=5.0, request_timeout_ms=5000,
                    log_format="json")


@dataclass
class Components:
    """Hub components started as processes, as they are deployed."""

    settings: Settings
    log_dir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        s = self.settings
        assert s.kafka_bootstrap_servers is not None
        return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
                "PASSPORT_HUB_TOPIC_PREFIX": s.topic_prefix,
                "PASSPORT_HUB_GROUP_PREFIX": s.group_prefix,
                "PASSPORT_HUB_DATA_DIR": str(s.data_dir),
                "PASSPORT_HUB_API_PORT": str(s.api_port),
                "PASSPORT_HUB_REPLICATION_FACTOR": str(s.replication_factor),
                "PASSPORT_HUB_PRODUCE_TIMEOUT_S": str(s.produce_timeout_s),
                "PASSPORT_HUB_REQUEST_TIMEOUT_MS": str(s.request_timeout_ms),
                "PASSPORT_HUB_DEV_API_KEY": DEV_API_KEY,
                "PASSPORT_HUB_LOG_FORMAT": "json"}

    def start(self, module: str) -> None:
        log = (self.log_dir / f"{module}.log").open("ab")
        self.processes[module] = subprocess.Popen(
            # -X faulthandler: a SIGABRT writes every thread's stack to the log (``stop``)
            [sys.executable, "-X", "faulthandler", "-m", module], env=self.env(), stdout=log,
            stderr=log)
        log.close()

    def running(self, module: str) -> bool:
        """Whether the process started for ``module`` is still running (never restarted:
        ``start`` is the only way one is started)."""
        return self.processes[module].poll() is None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    def wait_api_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"API not ready after {timeout_s}s; see {self.log_dir}")

    def stop(self) -> list[str]:
        """Stop every process (SIGTERM; after 20 s SIGABRT, which has it write where each
        of its threads is stuck to its log, then SIGKILL); return those that had to be
        killed."""
        for proc in self.processes.values():
            proc.terminate()
        killed = []
        for module, proc in self.processes.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGABRT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                killed.append(module)
        return killed

    def log_tails(self, lines: int = 120) -> str:
        """The last lines of each component's log (its events, and a traceback if it
        died), with how it ended."""
        parts = []
        for module, proc in self.processes.items():
            tail = (self.log_dir / f"{module}.log").read_text(errors="replace").splitlines()
            parts.append(f"--- {module}: exit code {proc.returncode}, last {lines} lines ---")
            parts.extend(tail[-lines:])
        return "\n".join(parts)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, for ``components`` to see a failure."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def components(cluster_settings: Settings, tmp_path: Path,
               request: pytest.FixtureRequest) -> Iterator[Components]:
    running = Components(cluster_settings, tmp_path)
    try:
        yield running
    finally:
        killed = running.stop()
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            # CI keeps only the terminal's output: the components' side of the story
            # goes there, past pytest's capture (a teardown's capture is not shown).
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled():
                print(f"\n{running.log_tails()}")
        assert not killed, f"did not stop within 20 s of SIGTERM: {killed}"


# ----------------------------------------------------------------- partner traffic

MODULES = ("website-create", "website-traffic", "website-performance", "email-pro")


def siren(rng: random.Random) -> str:
    """A valid SIREN (nine digits, Luhn), drawn from ``rng``."""
    while True:
        digits = f"{rng.randrange(10**8):08d}"
        for check in "0123456789":
            if luhn_valid(digits + check):
                return digits + check


def event(kind: str, **fields: Any) -> dict[str, Any]:
    """A partner event of type ``kind``, with a fresh id."""
    return {"type": kind, "event_id": str(uuid.uuid4()), "source": "fault-test",
            "occurred_at": datetime.now(UTC).isoformat(), **fields}


@dataclass
class Partner:
    """A well-behaved partner: on 503 (or no answer) it waits and retries the SAME event
    (same id), and it keeps every event the API acknowledged, by business."""

    client: httpx.Client
    rng: random.Random
    answers: Counter[int] = field(default_factory=Counter)
    """Every answer's status (0: no answer: a timeout, a refused connection)."""
    acknowledged: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """The events answered 202, by SIREN, in the order posted."""

    def post(self, body: dict[str, Any], timeout_s: float = 120) -> None:
        """Post ``body`` until the API answers 202 (or fail after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                status = self.client.post("/v1/events", json=body, timeout=15).status_code
            except httpx.HTTPError:
                status = 0
            self.answers[status] += 1
            if status == 202:
                self.acknowledged.setdefault(body["siren"], []).append(body)
                return
            assert status in (0, 503), f"unexpected {status} for {body['type']}"
            assert time.monotonic() < deadline, "the API never accepted the event again"
            time.sleep(0.5)

    def enrol_and_train(self, business: str, *, name: str, departement: str,
                        **enrolment: Any) -> None:
        """Enrol a business and report three of its modules completed (a passport)."""
        self.post(event("business_enrolled", siren=business, name=name,
                        departement=departement, **enrolment))
        self.train(business)

    def train(self, business: str) -> None:
        """Report three of the business's modules completed (enough for a passport)."""
        for module in self.rng.sample(MODULES, 3):
            self.post(event("module_completed", siren=business, module_id=module))

    def request_offer(self, business: str) -> None:
        self.post(event("offer_requested", siren=business, category="website-hosting"))



def _applied(passport: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> bool:
    return {e["event_id"] for e in events} <= set(passport["applied_event_ids"])


def final_passports(components: Components, acknowledged: Mapping[str, Sequence[Mapping[str, Any]]],
                    timeout_s: float = 120) -> dict[str, Any]:
    """The latest passport of each business on ``pn.passports.v1``, read until every
    acknowledged event is applied in one (or ``timeout_s``), and a little longer: a
    double application would show up as a later snapshot."""
    reader = TopicReader(components.settings, [catalog.PASSPORTS])
    reader.start()
    latest: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=500):
                latest[record.datum["siren"]] = record.datum
            if all(business in latest and _applied(latest[business], events)
                   for business, events in acknowledged.items()):
                for record in reader.poll(timeout_ms=2000):
                    latest[record.datum["siren"]] = record.datum
                return latest
    finally:
        reader.close()
    return latest


def assert_applied_once(passports: Mapping[str, Any],
                        acknowledged: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
    """Every event the API acknowledged is in the final passports exactly once, and
    nothing else is: the businesses, the ids applied, each offer request (a double
    application counts twice), the modules."""
    missing = {b: [e["event_id"] for e in events if e["event_id"] not in
                   passports.get(b, {}).get("applied_event_ids", ())]
               for b, events in acknowledged.items()}
    assert not {b: ids for b, ids in missing.items() if ids}, "acknowledged events lost"
    assert set(passports) == set(acknowledged)
    for business, events in acknowledged.items():
        passport = passports[business]
        assert passport["state"] == "passport_issued", business
        assert set(passport["applied_event_ids"]) == {e["event_id"] for e in events}, business
        offers = sorted(e["event_id"] for e in events if e["type"] == "offer_requested")
        assert sorted(o["event_id"] for o in passport["offers"]) == offers, business
        assert passport["offer_requests"] == len(offers), business
        modules = {e["module_id"] for e in events if e["type"] == "module_completed"}
        assert sorted(passport["modules_completed"]) == sorted(modules), business
