"""``passport-hub status`` over real HTTP: components that answer as hub/probes.py does,
one that is down, and the command run as an operator runs it (stdout not a terminal)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from hub.broker import free_port
from hub.probes import Probes
from hub.statusview import THIN
from tests.unit.test_status import api_registry, processor_registry, table_rows

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def serving(probes: Probes) -> Iterator[str]:
    """The component's probes on a free port (their real answers), closed afterwards."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, content_type, body = probes.answer(self.path)
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _probes(component: str, registry: CollectorRegistry, *, ready: bool = True) -> Probes:
    return Probes(component, registry, checks={"broker": lambda: True, "restore": lambda: ready})


@pytest.fixture
def hub_file(tmp_path: Path) -> Iterator[Path]:
    """A run dir whose hub.json names three components that answer and one that is down."""
    passport = processor_registry(
        "passport", consumed={"pn.enrolments.v1": 4321},
        group_lag={("passport-hub.passport", "pn.enrolments.v1", 0): 17,
                   ("passport-hub.passport", "pn.enrolments.v1", 1): 25},
        dead={("decode", "MalformedRecordError"): 3, ("expire", "ParkedTooLong"): 2},
        outbox=6)
    routing = processor_registry(
        "routing", consumed={"pn.lead-requests.v1": 90},
        group_lag={("passport-hub.routing", "pn.lead-requests.v1", 0): 0}, restoring=1)
    api = api_registry({"11": 1000, "28": 234}, leads={"assigned": 40, "queued": 2})
    with ExitStack() as stack:
        components = {
            "api": stack.enter_context(serving(_probes("api", api))),
            "passport": stack.enter_context(serving(_probes("passport", passport))),
            "routing": stack.enter_context(serving(_probes("routing", routing, ready=False))),
            "crm_webhook": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        }
        run_dir = tmp_path / "data" / "embedded-1"
        run_dir.mkdir(parents=True)
        path = run_dir / "hub.json"
        path.write_text(json.dumps({"pid": os.getpid(), "broker": "127.0.0.1:9092",
                                    "api": components["api"], "components": components}))
        yield path


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "PASSPORT_HUB_DATA_DIR": str(tmp_path / "data"),
            "PASSPORT_HUB_LOG_FORMAT": "console"}


def _assert_full_view(out: str) -> None:
    for name in ("api", "passport", "routing", "crm_webhook"):
        assert name in out
    assert "not ready (restore)" in out
    assert "down (no answer)" in out
    assert f"4{THIN}321" in out  # records consumed
    lag = table_rows(out)["pn.enrolments.v1"]
    assert lag[:3] == ["pn.enrolments.v1", "passport-hub.passport", "42"]  # 17 + 25
    assert "decode" in out
    assert "expire" in out
    assert f"1{THIN}234 / 150{THIN}000 (0,8{THIN}%)" in out
    assert f"Île-de-France 1{THIN}000 · Normandie 234" in out
    assert "assigned 40 · queued 2" in out


def test_status_once_names_everything_and_exits_one_when_a_component_is_down(
        hub_file: Path, tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "hub.cli", "status", "--hub", str(hub_file)],
                         cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.returncode == 1, run.stderr
    _assert_full_view(run.stdout)
    # Found on its own: the newest hub.json under the data dir whose pid runs (this one's).
    found = subprocess.run([sys.executable, "-m", "hub.cli", "status"], cwd=ROOT,
                           env=_env(tmp_path), capture_output=True, text=True, timeout=30,
                           check=False)
    assert found.returncode == 1, found.stderr
    assert str(hub_file) in found.stdout


def test_no_running_hub_exits_two(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "hub.cli", "status"], cwd=ROOT,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=30,
                         check=False)
    assert run.returncode == 2
    assert "no running hub" in run.stderr


def test_watch_refreshes_until_interrupted(hub_file: Path, tmp_path: Path) -> None:
    """Off a terminal, a watch prints one view after another; Ctrl-C ends it with 0."""
    child = subprocess.Popen([sys.executable, "-m", "hub.cli", "status", "--watch",
                              "--interval", "0.2", "--hub", str(hub_file)],
                             cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        seen: list[str] = []
        # The second view carries a rate (the figures do not move: 0,0 per second).
        for line in child.stdout:
            seen.append(line)
            if line.startswith("passport ") and "per s" in "".join(seen):
                break
        child.send_signal(signal.SIGINT)
        # A bound, not a timing: on a loaded CI machine 20 s was once not enough.
        _, err = child.communicate(timeout=90)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=10)  # reaped and its pipes closed, whatever happened
    assert child.returncode == 0, err
    _assert_full_view("".join(seen))
    assert table_rows(seen[-1])["passport"][3:5] == [f"4{THIN}321", "0,0"]
