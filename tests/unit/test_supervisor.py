"""The supervisor restarts a child that dies and stops every child on request; what the
stack hands its children (a demo's fast clock) and the commands the CLI hands on."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from hub.cli import delegated
from hub.config import Settings
from hub.stack import DEMO_CLOCK_SPEED, Stack, clock_overrides
from hub.supervisor import Supervisor


def test_a_dead_child_is_restarted_and_stop_ends_all(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    dies = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    supervisor = Supervisor({}, log_dir=tmp_path)
    supervisor.add_command("flaky", [sys.executable, "-c", dies])
    steady = supervisor.add_command("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    deadline = time.monotonic() + 20
    while supervisor.restarts < 2 and time.monotonic() < deadline:
        supervisor.watch()
        time.sleep(0.05)
    assert supervisor.children["flaky"].restarts >= 2
    assert len(marker.read_text()) >= 2
    assert supervisor.children["steady"].restarts == 0
    supervisor.stop(grace_s=5)
    assert steady.process is not None
    assert steady.process.poll() is not None


def test_a_demo_stack_runs_its_routers_on_a_fast_clock_the_user_may_override(
        monkeypatch: pytest.MonkeyPatch) -> None:
    plain = Settings(kafka_bootstrap_servers="127.0.0.1:9092")
    overrides = clock_overrides(plain, DEMO_CLOCK_SPEED, 1_800_000_000_000)
    assert overrides == {"routing_clock_speed": DEMO_CLOCK_SPEED,
                         "routing_clock_origin_ms": 1_800_000_000_000}
    # 2 business days (48 h) in about a minute of wall time.
    assert 60 <= 48 * 3600 / DEMO_CLOCK_SPEED <= 120
    demo = Stack(plain.model_copy(update=overrides), quiet_children=True)
    env = demo.child_env()
    assert env["PASSPORT_HUB_ROUTING_CLOCK_SPEED"] == "2880.0"
    assert env["PASSPORT_HUB_ROUTING_CLOCK_ORIGIN_MS"] == "1800000000000"
    for name, value in env.items():  # what a child reads back
        monkeypatch.setenv(name, value)
    child = Settings()
    assert (child.routing_clock_speed, child.routing_clock_origin_ms) == (
        DEMO_CLOCK_SPEED, 1_800_000_000_000)
    monkeypatch.delenv("PASSPORT_HUB_ROUTING_CLOCK_SPEED")
    monkeypatch.delenv("PASSPORT_HUB_ROUTING_CLOCK_ORIGIN_MS")
    chosen = Settings(kafka_bootstrap_servers="127.0.0.1:9092", routing_clock_speed=10.0)
    assert clock_overrides(chosen, DEMO_CLOCK_SPEED, 5) == {"routing_clock_origin_ms": 5}
    real = Stack(plain, quiet_children=False).child_env()
    assert real["PASSPORT_HUB_ROUTING_CLOCK_SPEED"] == "1.0"
    assert "PASSPORT_HUB_ROUTING_CLOCK_ORIGIN_MS" not in real


def test_routing_simulate_is_handed_to_its_module_with_the_rest_of_the_line() -> None:
    assert delegated(["routing", "simulate", "--policy", "p.toml"]) == (
        "services.routing.simulate", ["--policy", "p.toml"])
    assert delegated(["ingest", "a.csv"]) == ("connectors.file_drop", ["ingest", "a.csv"])
    assert delegated(["dlq", "list"]) == ("connectors.dlq", ["list"])
    assert delegated(["routing"]) is None
    assert delegated(["up", "--demo"]) is None
