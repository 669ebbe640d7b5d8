"""The campaign's kills: a seeded schedule that spares no component, and the routers' roles
read from their logs (reliability/chaos.py, reliability/processes.py)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from reliability import chaos
from reliability.chaos import TARGETS, Killer
from reliability.processes import Cluster, Component, Spec


def test_every_target_is_killed_once_per_round_in_a_seeded_order() -> None:
    plan = chaos.schedule(7, 24)
    assert len(plan) == 24
    for start in range(0, 24, len(TARGETS)):
        assert sorted(k.target for k in plan[start:start + len(TARGETS)]) == sorted(TARGETS)
    assert plan == chaos.schedule(7, 24)
    assert [k.target for k in plan] != [k.target for k in chaos.schedule(8, 24)]
    assert all(2.5 <= k.wait_s <= 5.5 and 0 <= k.down_s <= 1.5 for k in plan)
    long = Counter(k.target for k in chaos.schedule(1, 200))
    assert set(long) == set(TARGETS)
    assert set(long.values()) <= {33, 34}  # 200 kills: every target 33 or 34 times
    assert chaos.duration(plan) == sum(k.wait_s + k.down_s + chaos.KILL_OVERHEAD_S for k in plan)


def _line(event: str, **fields: object) -> str:
    return json.dumps({"event": event, "level": "info", **fields}) + "\n"


def _router(tmp_path: Path, name: str) -> Component:
    return Component(Spec(name, "services.routing", {}, "http://127.0.0.1:1"),
                     tmp_path / f"{name}.log")


def test_a_consumer_holds_partitions_as_its_last_assignment_says(tmp_path: Path) -> None:
    router = _router(tmp_path, "routing-a")
    assert router.holds_partitions() is None  # not joined since it started
    router._note(_line("partitions.revoked", partitions=[]))  # before any join: says nothing
    assert router.holds_partitions() is None
    router._note(_line("partitions.assigned", partitions=[], fresh=[]))
    assert router.holds_partitions() is False  # joined, standing by
    router._note(_line("partitions.assigned", partitions=["pn.lead-requests.v1/0"], fresh=[]))
    assert router.holds_partitions() is True
    router._note(_line("partitions.revoked", partitions=["pn.lead-requests.v1/0"]))
    assert router.holds_partitions() is False
    router._note(_line("record.dead_lettered", topic="pn.lead-responses.v1"))
    router._note(json.dumps({"event": "boom", "level": "error"}) + "\n")
    router._note("not json, but \"error\" in it\n")
    assert router.dead_letters == 1
    assert len(router.lines) == 1


class _Alive:
    """Stands for a running process (``poll`` answers None)."""

    pid = 1

    def poll(self) -> None:
        return None


def test_the_active_and_the_standby_router_are_told_apart(tmp_path: Path) -> None:
    a, b = _router(tmp_path, "routing-a"), _router(tmp_path, "routing-b")
    cluster = Cluster([a.spec, b.spec], {}, tmp_path / "logs")
    cluster.components = {"routing-a": a, "routing-b": b}
    for router in (a, b):
        router.process = _Alive()  # type: ignore[assignment]
    a._note(_line("partitions.assigned", partitions=[], fresh=[]))
    b._note(_line("partitions.assigned", partitions=["pn.leads.v1/0"], fresh=[]))
    killer = Killer(cluster, [])
    assert killer._resolve("routing-active") is b
    assert killer._resolve("routing-standby") is a
    b._note(_line("partitions.revoked", partitions=["pn.leads.v1/0"]))  # a rebalance
    assert killer._resolve("routing-active") is None  # nobody to call active: wait
    assert killer._fallback("routing-active") is a
