"""``passport-hub status``'s core: real Prometheus text in, figures and a rendered view out."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from rich.console import Console

from hub import status, statusview
from hub.metrics import ProcessorMetrics
from hub.promtext import Exposition, merge
from hub.status import HubFile, Reply, Status, snapshot
from hub.statusview import THIN, render

AT = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
GROUP_LAG = ("passport_hub_consumer_group_lag_records", "Group lag as the broker sees it.",
             ["group", "topic", "partition"])


def processor_registry(component: str, *, consumed: Mapping[str, int],
                       group_lag: Mapping[tuple[str, str, int], int],
                       dead: Mapping[tuple[str, str], int] = {},
                       outbox: int = 0, restoring: int = 0) -> CollectorRegistry:
    """A processor's registry, with the kernel's own metric definitions (hub/metrics.py)."""
    registry = CollectorRegistry()
    metrics = ProcessorMetrics.create(registry)
    for topic, count in consumed.items():
        metrics.records_in.labels(component, topic).inc(count)
        metrics.lag.labels(component, topic).set(sum(
            n for (_, t, _), n in group_lag.items() if t == topic))
    for (stage, reason), count in dead.items():
        metrics.dead_letters.labels(component, "pn.enrolments.v1", stage, reason).inc(count)
    metrics.outbox_pending.labels(component).set(outbox)
    metrics.restoring.labels(component).set(restoring)
    lag = Gauge(*GROUP_LAG, registry=registry)
    for (group, topic, partition), count in group_lag.items():
        lag.labels(group, topic, str(partition)).set(count)
    return registry


def api_registry(issued: Mapping[str, int], *, target: int = 150_000,
                 leads: Mapping[str, int] = {}) -> CollectorRegistry:
    """The API's programme figures, by the names the metrics brief gives them."""
    registry = CollectorRegistry()
    by_region = Gauge("passport_hub_programme_passports_issued", "Passports issued.",
                      ["region"], registry=registry)
    for region, count in issued.items():
        by_region.labels(region).set(count)
    Gauge("passport_hub_programme_passports_target", "The programme's target.",
          registry=registry).set(target)
    by_status = Gauge("passport_hub_programme_leads", "Leads by status.", ["status"],
                      registry=registry)
    for name, count in leads.items():
        by_status.labels(name).set(count)
    return registry


def page(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


READY = Reply(200, json.dumps({"status": "ready", "checks": {"broker": True}}))
RESTORING = Reply(503, json.dumps({"status": "not_ready",
                                   "checks": {"broker": True, "restore": False}}))
HUB = HubFile(Path("run/hub.json"), 4242, "127.0.0.1:9092", {
    "api": "http://127.0.0.1:8080", "passport": "http://127.0.0.1:41001",
    "routing": "http://127.0.0.1:41002", "crm_webhook": "http://127.0.0.1:41003"})


def replies(*, passport_consumed: int = 1000) -> dict[str, Reply]:
    """A hub whose passport service is restoring and whose webhook sender is down."""
    passport = processor_registry(
        "passport", consumed={"pn.enrolments.v1": passport_consumed, "pn.trainings.v1": 200},
        group_lag={("passport-hub.passport", "pn.enrolments.v1", 0): 7,
                   ("passport-hub.passport", "pn.enrolments.v1", 1): 5},
        dead={("decode", "MalformedRecordError"): 2, ("apply", "PassportRuleError"): 3},
        outbox=4, restoring=1)
    # The router reports its own group, and, like a second member would, one partition of
    # the passport group: the broker's figure, not to be counted twice.
    routing = processor_registry(
        "routing", consumed={"pn.lead-requests.v1": 30},
        group_lag={("passport-hub.routing", "pn.lead-requests.v1", 0): 1,
                   ("passport-hub.passport", "pn.enrolments.v1", 1): 5},
        dead={("apply", "UnknownReseller"): 1})
    api = api_registry({"11": 700, "84": 400, "93": 134}, leads={"assigned": 12, "won": 3})
    return {
        "http://127.0.0.1:8080/readyz": READY,
        "http://127.0.0.1:8080/metrics": Reply(200, page(api)),
        "http://127.0.0.1:41001/readyz": RESTORING,
        "http://127.0.0.1:41001/metrics": Reply(200, page(passport)),
        "http://127.0.0.1:41002/readyz": READY,
        "http://127.0.0.1:41002/metrics": Reply(200, page(routing)),
    }


def take(answers: Mapping[str, Reply], at: float = 100.0) -> Status:
    return snapshot(HUB, answers.get, at=at, taken_at=AT)


def text(view: object, width: int = 200) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(view)
    return console.export_text()


def table_rows(view: str) -> dict[str, list[str]]:
    """The cells of each table row (cells are 2+ spaces apart), by the row's first cell."""
    rows = (re.split(r" {2,}", line.strip()) for line in view.splitlines() if line.strip())
    return {cells[0]: cells for cells in rows}


def test_each_component_s_state_and_figures() -> None:
    rows = {row.name: row for row in take(replies()).components}
    assert (rows["api"].state, rows["api"].consumed, rows["api"].outbox) == ("ready", None, None)
    assert (rows["passport"].state, rows["passport"].detail) == ("not ready", "restore")
    assert (rows["passport"].consumed, rows["passport"].outbox, rows["passport"].restoring) \
        == (1200, 4, 1)
    assert (rows["routing"].state, rows["routing"].consumed) == ("ready", 30)
    assert (rows["crm_webhook"].state, rows["crm_webhook"].consumed) == ("down", None)


def test_lag_dead_letters_and_programme_are_summed_as_promql_would() -> None:
    snap = take(replies())
    assert snap.group_lag == {("passport-hub.passport", "pn.enrolments.v1"): 12,
                              ("passport-hub.routing", "pn.lead-requests.v1"): 1}
    assert snap.loop_lag == {("passport", "pn.enrolments.v1"): 12,
                             ("passport", "pn.trainings.v1"): 0,
                             ("routing", "pn.lead-requests.v1"): 1}
    assert snap.dead_letters == {("decode", "passport"): 2, ("apply", "passport"): 3,
                                 ("apply", "routing"): 1}
    assert (snap.programme.issued, snap.programme.target) == (1234, 150_000)
    assert snap.programme.leads == {"assigned": 12, "won": 3}
    assert snap.exit_code == status.EXIT_DEGRADED


def test_the_view_shows_every_figure() -> None:
    out = text(render(take(replies())))
    for name in ("api", "passport", "routing", "crm_webhook"):
        assert name in out
    assert "not ready (restore)" in out
    assert "down" in out
    assert f"1{THIN}200" in out  # the passport service's records consumed
    assert "passport-hub.passport" in out
    assert "pn.lead-requests.v1" in out
    assert "decode" in out
    assert "apply" in out
    assert f"1{THIN}234 / 150{THIN}000 (0,8{THIN}%)" in out
    assert "Île-de-France 700 · Auvergne-Rhône-Alpes 400 · Provence-Alpes-Côte d'Azur 134" in out
    assert "assigned 12 · won 3" in out


def test_a_watch_shows_the_rate_between_two_snapshots() -> None:
    before = take(replies(passport_consumed=1000), at=100.0)
    after = take(replies(passport_consumed=1100), at=102.0)
    rows = table_rows(text(render(after, before)))
    assert rows["component"][3:] == ["consumed", "per s", "outbox", "restoring"]
    assert rows["passport"][3:5] == [f"1{THIN}300", "50,0"]  # 100 records in 2 s
    assert rows["crm_webhook"][1:] == ["down (no answer)", "http://127.0.0.1:41003", *"————"]
    assert "per s" not in text(render(after))


def test_missing_metrics_are_dashes_never_a_crash() -> None:
    """Components that expose nothing yet, or garbage: every figure is "—"."""
    answers = {
        "http://127.0.0.1:8080/readyz": Reply(200, "ok"),
        "http://127.0.0.1:8080/metrics": Reply(200, "this is { not prometheus"),
        "http://127.0.0.1:41001/readyz": Reply(404, "no such path"),
        "http://127.0.0.1:41001/metrics": Reply(404, "no such path"),
        "http://127.0.0.1:41002/readyz": READY,
        "http://127.0.0.1:41002/metrics": Reply(200, page(CollectorRegistry())),
    }
    snap = take(answers)
    assert [row.state for row in snap.components] == ["ready", "not ready", "ready", "down"]
    assert snap.components[1].detail == "HTTP 404"
    assert (snap.group_lag, snap.loop_lag, snap.dead_letters) == (None, None, None)
    assert snap.programme.issued is None
    out = text(render(snap))
    figures = table_rows(out)
    assert figures["passports issued"] == ["passports issued", "— / —"]
    assert figures["top régions"] == ["top régions", "—"]
    assert figures["leads"] == ["leads", "—"]


def test_declared_but_empty_is_zero_not_missing() -> None:
    """A labelled counter with no child yet is exposed: "none", not "—"."""
    registry = CollectorRegistry()
    ProcessorMetrics.create(registry)
    exposition = Exposition.parse(page(registry))
    assert exposition.by("passport_hub_dead_letters_total", ["stage"]) == {}
    assert exposition.total("passport_hub_records_consumed_total") == 0.0
    assert exposition.total("passport_hub_programme_passports_target") is None
    assert merge([exposition, None], "passport_hub_dead_letters_total", ["stage"]) == {}


def test_all_ready_exits_zero() -> None:
    ready = {url: READY if url.endswith("/readyz") else Reply(200, "")
             for base in HUB.components.values() for url in (base + "/readyz", base + "/metrics")}
    assert take(ready).exit_code == status.EXIT_READY


@pytest.mark.parametrize(("value", "decimals", "written"), [
    (0, 0, "0"), (999, 0, "999"), (1234, 0, f"1{THIN}234"),
    (150_000, 0, f"150{THIN}000"), (1_234_567.25, 1, f"1{THIN}234{THIN}567,2"),
])
def test_french_numbers(value: float, decimals: int, written: str) -> None:
    assert statusview.fr_number(value, decimals) == written


def test_french_share() -> None:
    assert statusview.fr_share(1234, 150_000) == f"1{THIN}234 / 150{THIN}000 (0,8{THIN}%)"
    assert statusview.fr_share(5, 0) == "5 / 0"


def _hub_json(directory: Path, pid: int) -> Path:
    directory.mkdir(parents=True)
    path = directory / "hub.json"
    path.write_text(json.dumps({"pid": pid, "broker": "127.0.0.1:9092",
                                "api": "http://127.0.0.1:8080",
                                "components": {"api": "http://127.0.0.1:8080"}}))
    return path


def _dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def test_the_newest_hub_that_runs_is_found(tmp_path: Path) -> None:
    older = _hub_json(tmp_path / "embedded-1", os.getpid())
    newer_but_dead = _hub_json(tmp_path / "embedded-2", _dead_pid())
    os.utime(older, (1_000, 1_000))
    os.utime(newer_but_dead, (2_000, 2_000))
    found = status.find_hub(tmp_path)
    assert found is not None
    assert (found.path, found.pid, dict(found.components)) == (
        older, os.getpid(), {"api": "http://127.0.0.1:8080"})
    assert status.find_hub(tmp_path / "embedded-2") is None
    assert status.find_hub(tmp_path / "nowhere") is None


def test_no_hub_or_an_unreadable_one_exits_two(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert statusview.command(tmp_path, hub_file=None, watch=False, interval_s=1) == 2
    assert "no running hub" in capsys.readouterr().err
    broken = tmp_path / "hub.json"
    broken.write_text("{\"pid\": ")
    assert statusview.command(tmp_path, hub_file=broken, watch=False, interval_s=1) == 2
    assert "not a readable hub.json" in capsys.readouterr().err
