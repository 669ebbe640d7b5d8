"""Fixtures for broker-fault tests: a three-broker Apache Kafka cluster and hub processes.

The cluster comes from ``deploy/kafka/kafka.sh`` (Apache Kafka's own jars from
Maven Central, on the machine's JDK); it fails, never skips, when it cannot start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.broker import free_port
from hub.config import Settings

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
        self._sh("wait-isr", "60")


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
            [sys.executable, "-m", module], env=self.env(), stdout=log, stderr=log)
        log.close()

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
        """Stop every process (SIGTERM, then SIGKILL after 20 s); return those that had
        to be killed."""
        for proc in self.processes.values():
            proc.terminate()
        killed = []
        for module, proc in self.processes.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                killed.append(module)
        return killed

    def log_tails(self, lines: int = 60) -> str:
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
