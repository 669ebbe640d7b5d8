"""The probes: liveness from a heartbeat, readiness from named checks, both over real HTTP;
the group lag as the broker sees it; the stack's per-component ports and hub files."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from kafka import TopicPartition
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from hub import probes
from hub.config import Settings
from hub.grouplag import group_lag
from hub.stack import HUB_FILE, TARGETS_FILE, Stack
from hub.supervisor import Supervisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_alive_while_the_heartbeat_is_recent_and_stalled_after() -> None:
    clock = Clock()
    beats = probes.Probes("passport", CollectorRegistry(), stall_s=30, clock=clock)
    beats.beat()
    clock.now += 29
    assert beats.answer("/livez")[0] == 200
    clock.now += 2
    status, _, body = beats.answer("/livez")
    assert status == 503
    assert json.loads(body)["status"] == "stalled"


def test_a_heartbeat_read_from_the_loop_is_used_instead_of_beats() -> None:
    clock = Clock()
    last = [clock.now]
    checked = probes.Probes("routing", CollectorRegistry(), stall_s=10, clock=clock,
                            heartbeat=lambda: last[0])
    clock.now += 11
    assert not checked.alive()
    last[0] = clock.now
    assert checked.alive()


def test_ready_only_when_every_check_passes_and_a_raising_check_fails() -> None:
    registry = CollectorRegistry()
    state = {"broker": True}

    def broken() -> bool:
        raise RuntimeError("the check itself failed")

    checked = probes.Probes("passport", registry,
                            checks={"broker": lambda: state["broker"], "restored": lambda: True})
    status, kind, body = checked.answer("/readyz")
    assert (status, kind) == (200, "application/json")
    assert json.loads(body) == {"status": "ready", "checks": {"broker": True, "restored": True}}
    assert registry.get_sample_value("passport_hub_ready", {"component": "passport"}) == 1
    state["broker"] = False
    status, _, body = checked.answer("/readyz")
    assert status == 503
    assert json.loads(body)["checks"] == {"broker": False, "restored": True}
    assert registry.get_sample_value("passport_hub_ready", {"component": "passport"}) == 0
    checked.checks["odd"] = broken
    assert checked.ready() == (False, {"broker": False, "restored": True, "odd": False})


def test_the_three_paths_are_served_over_http_and_others_are_404() -> None:
    registry = CollectorRegistry()
    served = probes.Probes("crm_webhook", registry, checks={"broker": lambda: True})
    port = probes.serve(served, host="127.0.0.1", port=0)
    base = f"http://127.0.0.1:{port}"
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(metrics.text)}
    assert {"passport_hub_build_info", "passport_hub_ready"} <= names
    assert httpx.get(f"{base}/livez").json()["status"] == "ok"
    assert httpx.get(f"{base}/readyz?verbose=1").json()["status"] == "ready"
    missing = httpx.get(f"{base}/nothing")
    assert missing.status_code == 404
    assert missing.json()["paths"] == ["/metrics", "/livez", "/readyz"]


def test_group_lag_counts_from_the_commit_or_from_the_log_start() -> None:
    a, b, c = (TopicPartition("pn.leads.v1", p) for p in range(3))
    ends = {a: 10, b: 7, c: 5}
    lag = group_lag(ends, starts={a: 0, b: 3, c: 0}, committed={a: 4, c: 9})
    # committed 4 of 10; never committed: from the start (3); a commit past the end: 0
    assert lag == {a: 6, b: 4, c: 0}


def test_the_stack_gives_each_component_a_port_and_writes_where_they_answer(
        tmp_path: Path) -> None:
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:9", data_dir=tmp_path,
                        api_port=18123, metrics_port_base=19500)
    stack = Stack(settings, quiet_children=True)
    env = stack._component_env  # what the supervisor asks for each child it starts
    assert env("api") == {}
    assert env("passport") == {"PASSPORT_HUB_METRICS_HOST": "127.0.0.1",
                               "PASSPORT_HUB_METRICS_PORT": "19500"}
    assert env("routing")["PASSPORT_HUB_METRICS_PORT"] == "19501"
    assert env("passport")["PASSPORT_HUB_METRICS_PORT"] == "19500"  # a restart: the same
    assert env("synthetic") == {}
    hub = json.loads((tmp_path / HUB_FILE).read_text())
    assert hub["components"] == {"api": "http://127.0.0.1:18123",
                                 "passport": "http://127.0.0.1:19500",
                                 "routing": "http://127.0.0.1:19501"}
    targets = json.loads((tmp_path / TARGETS_FILE).read_text())
    assert {"targets": ["127.0.0.1:19501"], "labels": {"component": "routing"}} in targets


def test_a_child_keeps_its_own_environment_across_restarts(tmp_path: Path) -> None:
    out = tmp_path / "env"
    write = f"import os; open({str(out)!r}, 'a').write(os.environ['OWN'] + ',')"
    supervisor = Supervisor({"SHARED": "1"}, child_env=lambda name: {"OWN": name})
    child = supervisor.add_command("named", [sys.executable, "-c", write], restart=False)
    assert child.process is not None
    child.process.wait(timeout=20)
    child.spawn(supervisor.env)  # what watch() does to a dead child
    assert child.process.wait(timeout=20) == 0
    assert out.read_text() == "named,named,"
