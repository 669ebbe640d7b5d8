"""A hub started as a user starts it, for the end-to-end tests: ``passport-hub up`` in a
subprocess, on the embedded broker unless ``KAFKA_BOOTSTRAP_SERVERS`` names one."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from hub.broker import free_port

#: The key `passport-hub up` gives its API on the embedded broker (README's curl uses it).
DEV_KEY = "dev-local-key"
AUTH = {"Authorization": f"Bearer {DEV_KEY}"}


@contextlib.contextmanager
def up(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`passport-hub up ARGS` in a subprocess (embedded broker unless one is configured)."""
    port = free_port()
    env = {**os.environ, "PASSPORT_HUB_API_PORT": str(port),
           "PASSPORT_HUB_DATA_DIR": str(tmp_path / "data"), "PASSPORT_HUB_LOG_FORMAT": "json",
           **(env or {})}
    for name in ("PASSPORT_HUB_DEV_API_KEY", "PASSPORT_HUB_API_KEYS_FILE"):
        env.pop(name, None)  # on the embedded broker, `up` gives the API its dev key itself
    if "KAFKA_BOOTSTRAP_SERVERS" in os.environ:
        tag = os.urandom(4).hex()  # a shared broker: keep this run's topics and groups apart
        env |= {"PASSPORT_HUB_TOPIC_PREFIX": f"e2e{tag}.", "PASSPORT_HUB_GROUP_PREFIX": f"e2e{tag}",
                # a configured broker gets no dev key from `up`: say which one to accept
                "PASSPORT_HUB_DEV_API_KEY": DEV_KEY}
    log = (tmp_path / "up.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "hub.cli", "up", *args], env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: ready(base), 60, "the API to be ready")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
        finally:
            log.close()
        assert code == 0, (tmp_path / "up.log").read_text()


def ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")




def hub_file(tmp_path: Path) -> dict[str, Any]:
    """The running stack's hub.json (where each component answers), once it is written
    for every core component."""
    def found() -> dict[str, Any] | None:
        data = tmp_path / "data"  # an embedded stack's run directory, or the data directory
        for path in sorted([*data.glob("*/hub.json"), *data.glob("hub.json")]):
            document: dict[str, Any] = json.loads(path.read_text())
            if {"api", "passport", "routing", "crm_webhook"} <= set(document["components"]):
                document["run_dir"] = str(path.parent)
                return document
        return None
    result: dict[str, Any] = wait_for(found, 30, "hub.json")
    return result
