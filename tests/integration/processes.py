"""A hub service run as a child process, as it is deployed, for crash and takeover tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from hub.config import Settings


class Service:
    """One ``python -m <module>`` child; knows when it has its partitions and restored.

    ``restored_marker`` is the log event a restore ends with (the passport's
    ``partition.restored``, the router's ``routing.restored``).
    """

    def __init__(self, settings: Settings, data_dir: Path, group_prefix: str, *,
                 module: str = "services.passport", restored_marker: str = "partition.restored",
                 env: Mapping[str, str] | None = None) -> None:
        full = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
                "PASSPORT_HUB_TOPIC_PREFIX": settings.topic_prefix,
                "PASSPORT_HUB_GROUP_PREFIX": group_prefix,
                "PASSPORT_HUB_DATA_DIR": str(data_dir),
                "PASSPORT_HUB_LOG_FORMAT": "json", "PASSPORT_HUB_LOG_LEVEL": "info",
                **(env or {})}
        self._marker = f'"{restored_marker}"'
        self.process = subprocess.Popen(
            [sys.executable, "-m", module], env=full, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        self.assigned = threading.Event()
        self.restored = 0
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if '"partitions.assigned"' in line and '"partitions": []' not in line:
                self.assigned.set()
            if self._marker in line:
                self.restored += 1

    def kill(self) -> None:
        self.process.kill()
        self._reap()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._reap()

    def _reap(self) -> None:
        self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@contextmanager
def services() -> Iterator[list[Service]]:
    """Services started in the block are stopped at its end, whatever happens."""
    started: list[Service] = []
    try:
        yield started
    finally:
        for service in started:
            service.stop()
