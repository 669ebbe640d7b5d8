"""The hub as separate processes, one per component, each killed and restarted on its own.

``passport-hub up`` supervises its children itself and restarts them with a backoff; the
campaign must choose *which* process dies and *when*, so it runs each component the way
it is deployed (``python -m <module>``, docs/operations.md) and owns the pids. Each
process gets its own data directory (two routers must not share a store), its own probes
port, and the environment of ``hub.stack.Stack.child_env``. Its stdout (JSON logs) is
read by a thread that keeps the lines in a log file and notes what the campaign needs:
whether a consumer holds partitions now (the active router is the one that does) and how
many records it dead-lettered.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx

from hub.broker import free_port

#: A SIGKILLed process is reaped within this; a SIGTERMed one stops within the grace.
_REAP_S = 30.0
_GRACE_S = 15.0


@dataclass(frozen=True, slots=True)
class Spec:
    """One component process of the campaign: its name, module and own environment."""

    name: str
    """``api``, ``passport``, ``routing-a``, ``routing-b``, ``crm_webhook``, ``file_drop``."""
    module: str
    env: Mapping[str, str]
    probes: str
    """The base URL of its /livez, /readyz and /metrics."""


@dataclass
class Component:
    """A running (or dead) component process, and what its logs told so far."""

    spec: Spec
    log_path: Path
    process: subprocess.Popen[str] | None = None
    starts: int = 0
    kills: int = 0
    partitions: tuple[str, ...] | None = None
    """The partitions its latest assignment gave it (None: not joined since it started)."""
    dead_letters: int = 0
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None
    _log: IO[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, base_env: Mapping[str, str], cwd: Path) -> None:
        """Start the process (again), on the same data directory and port."""
        assert not self.running(), f"{self.name} is running"
        if self._log is None:
            self._log = self.log_path.open("a", encoding="utf-8")
        with self._lock:
            self.partitions = None
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", self.spec.module], env={**base_env, **self.spec.env},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=cwd, text=True, start_new_session=True)  # a Ctrl-C reaches the campaign only
        self.starts += 1
        self._reader = threading.Thread(target=self._read, args=(self.process,),
                                        name=f"log-{self.name}", daemon=True)
        self._reader.start()

    def kill(self) -> None:
        """SIGKILL, and reap."""
        process = self.process
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        self.kills += 1
        self._reap(process)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after the grace period."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=_GRACE_S)
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap(process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def _reap(self, process: subprocess.Popen[str]) -> None:
        process.wait(timeout=_REAP_S)
        if self._reader is not None:
            self._reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._note(line)
            if self._log is not None:
                with contextlib.suppress(ValueError):  # closed at stop
                    self._log.write(line)
                    self._log.flush()

    def _note(self, line: str) -> None:
        if '"partitions.' not in line and '"record.dead_lettered"' not in line \
                and '"error"' not in line:
            return
        try:
            entry = json.loads(line)
        except ValueError:
            return
        event = entry.get("event") if isinstance(entry, dict) else None
        with self._lock:
            if event == "partitions.assigned":
                self.partitions = tuple(entry.get("partitions") or ())
            elif event == "partitions.revoked" and self.partitions is not None:
                self.partitions = ()  # (a revocation before the first join says nothing)
            elif event == "record.dead_lettered":
                self.dead_letters += 1
            if entry.get("level") in ("error", "critical") and len(self.lines) < 200:
                self.lines.append(line.strip())

    def holds_partitions(self) -> bool | None:
        """Whether it holds partitions now (None: it has not joined since it started)."""
        with self._lock:
            return None if self.partitions is None else bool(self.partitions)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.spec.probes}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False


class Cluster:
    """Every component of one run, started together, stopped together."""

    def __init__(self, specs: Sequence[Spec], base_env: Mapping[str, str],
                 log_dir: Path) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        # Run where no stray passport-hub.env is read (Settings reads one from the cwd).
        self.cwd = log_dir
        # The campaign's settings only: none of the caller's PASSPORT_HUB_* (a dev key, say).
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith("PASSPORT_HUB_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
        self.base_env = {**inherited, **base_env}
        self.components = {spec.name: Component(spec, log_dir / f"{spec.name}.log")
                           for spec in specs}

    def __getitem__(self, name: str) -> Component:
        return self.components[name]

    def start(self) -> None:
        for component in self.components.values():
            component.start(self.base_env, self.cwd)

    def restart(self, name: str) -> None:
        component = self.components[name]
        if not component.running():
            component.start(self.base_env, self.cwd)

    def routers(self) -> list[Component]:
        return [c for name, c in self.components.items() if name.startswith("routing")]

    def wait_ready(self, timeout_s: float, names: Sequence[str] | None = None) -> list[str]:
        """Wait until every component (of ``names``) answers ready; return those that do not."""
        wanted = list(names or self.components)
        deadline = time.monotonic() + timeout_s
        while True:
            late = [name for name in wanted if not self.components[name].ready()]
            if not late or time.monotonic() > deadline:
                return late
            time.sleep(0.3)

    def stop(self) -> None:
        for component in self.components.values():  # all at once, then each one's grace
            if component.running() and component.process is not None:
                component.process.terminate()
        for component in self.components.values():
            component.stop()

    def settled(self) -> bool:
        """Whether every consumer has joined and the partitions are held: the passport
        service and the deliverer hold theirs, exactly one router holds the lead partitions
        and the other stands by."""
        routers = [r.holds_partitions() for r in self.routers()]
        singles = [c.holds_partitions() for name, c in self.components.items()
                   if name in ("passport", "crm_webhook")]
        return all(singles) and sorted(routers, key=str) == [False, True]

    def dead_letters(self) -> int:
        return sum(c.dead_letters for c in self.components.values())


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Cluster]:
    """The cluster started for the block and stopped at its end, whatever happens."""
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def specs(run_dir: Path, *, api_port: int) -> list[Spec]:
    """The campaign's processes: the API (and its read model), one passport service, two
    routers (an active one and a standby), the webhook deliverer and the file drop."""
    modules = (("passport", "services.passport"), ("routing-a", "services.routing"),
               ("routing-b", "services.routing"), ("crm_webhook", "connectors.crm_webhook"),
               ("file_drop", "connectors.file_drop"))
    out = [Spec("api", "connectors.api",
                {"PASSPORT_HUB_DATA_DIR": str(run_dir / "api"),
                 "PASSPORT_HUB_API_HOST": "127.0.0.1", "PASSPORT_HUB_API_PORT": str(api_port)},
                f"http://127.0.0.1:{api_port}")]
    for name, module in modules:
        port = free_port()
        out.append(Spec(name, module, {
            "PASSPORT_HUB_DATA_DIR": str(run_dir / name),
            "PASSPORT_HUB_METRICS_HOST": "127.0.0.1", "PASSPORT_HUB_METRICS_PORT": str(port)},
            f"http://127.0.0.1:{port}"))
    for spec in out:
        Path(spec.env["PASSPORT_HUB_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    return out


def watched(run_dir: Path) -> Path:
    """The folder the file drop watches (``<its data dir>/inbox``, connectors/file_drop/cli.py)."""
    return run_dir / "file_drop" / "inbox"


def inbox(run_dir: Path, key_id: str) -> Path:
    """The inbox of API key ``key_id``: its folder in the watched one, whose files the file
    drop reads as that key (a file in the watched folder itself, bound to no key, is
    refused: the campaign sets no dev key)."""
    return watched(run_dir) / key_id
