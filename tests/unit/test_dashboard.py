"""The Grafana dashboard (deploy/grafana) queries what the hub exposes, in PromQL that parses.

Every panel target is checked by promtool (Debian's `prometheus` package, installed by
deploy/tools/ensure-prometheus.sh where missing) as Prometheus receives it, Grafana's
variables substituted; its metric names are held to tests/promql.EXPOSED; and the
dashboard refers to the datasource its provisioning creates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from schemas.reference import REGIONS
from tests import promql

#: The issue's sections, each a row of the dashboard (in this order).
SECTIONS = ("Ingest", "Processing", "Consumer lag", "Dead letters", "Leads and SLAs",
            "Webhooks", "Programme")


def targets() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(panel, target) for panel in promql.query_panels()
            for target in panel.get("targets", [])]


def datasource() -> dict[str, Any]:
    (provisioned,) = promql.load_yaml(promql.DATASOURCES)["datasources"]
    found: dict[str, Any] = provisioned
    return found


def test_the_provisioning_serves_prometheus_and_the_dashboard() -> None:
    source = datasource()
    assert (source["name"], source["type"], source["url"]) == \
        ("Prometheus", "prometheus", "http://prometheus:9090")
    (provider,) = promql.load_yaml(promql.DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_the_dashboard_is_fixed_and_recent() -> None:
    board = promql.dashboard()
    assert board["uid"] == "passport-hub"
    assert board["schemaVersion"] >= 39
    ids = [panel["id"] for panel in promql.panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_has_a_title_and_targets_on_the_provisioned_datasource() -> None:
    source = {"type": "prometheus", "uid": datasource()["uid"]}
    for panel in promql.query_panels():
        assert panel.get("title"), panel["id"]
        assert panel.get("targets"), panel["title"]
        assert panel["datasource"] == source, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
    for panel, target in targets():
        assert target["datasource"] == source, panel["title"]
        assert target.get("expr", "").strip(), panel["title"]


def test_the_rows_are_the_issue_s_sections() -> None:
    rows = [panel["title"] for panel in promql.dashboard()["panels"] if panel["type"] == "row"]
    found = [next((row for row in rows if row.startswith(section)), None)
             for section in SECTIONS]
    assert None not in found, (SECTIONS, rows)
    assert found == sorted(found, key=rows.index), "rows out of the issue's order"


def test_panels_do_not_overlap_and_fit_the_grid() -> None:
    taken: dict[tuple[int, int], str] = {}
    for panel in promql.panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for cell in ((x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                     for y in range(grid["y"], grid["y"] + grid["h"])):
            assert cell not in taken, f"{panel['title']} overlaps {taken[cell]}"
            taken[cell] = panel["title"]


def test_every_query_parses(tmp_path: Path) -> None:
    """promtool parses (and type-checks) each query, given as a recording rule."""
    rules = [{"record": f"dashboard:panel_{panel['id']}:{target['refId']}",
              "expr": promql.substitute(target["expr"])} for panel, target in targets()]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}),
                    encoding="utf-8")
    done = promql.run_promtool("check", "rules", path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout, done.stdout + done.stderr


def test_queries_name_only_exposed_metrics() -> None:
    for panel, target in targets():
        used = promql.metric_names(target["expr"])
        assert used, (panel["title"], target["expr"])
        assert used <= promql.EXPOSED | promql.SCRAPE, (panel["title"], used - promql.EXPOSED)


def test_variables_are_known_and_only_in_regex_matchers() -> None:
    """A template variable stands for several values (or All, `.+`): only `=~` takes them."""
    board = promql.dashboard()
    declared = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert all(variable["allValue"] == ".+" for variable in declared.values())
    for panel, target in targets():
        expr = target["expr"]
        for name in promql.variables(expr):
            assert name in declared or name in promql.BUILTINS, (panel["title"], name)
        for match in re.finditer(r"\$\{?(\w+)", expr):
            if match.group(1) in declared:
                assert expr[:match.start()].endswith('=~"'), (panel["title"], expr)


def test_quantiles_keep_the_bucket_label() -> None:
    for panel, target in targets():
        if "histogram_quantile" in target["expr"]:
            assert re.search(r"by \((?:[\w, ]*, )?le[,)]", target["expr"]), panel["title"]


def test_the_regions_are_named_in_french() -> None:
    """The région panels show names, not INSEE codes: all 18 of schemas/reference."""
    for panel in promql.query_panels():
        if "région" in panel["title"]:
            named = {override["matcher"]["options"]: override["properties"][0]["value"]
                     for override in panel["fieldConfig"]["overrides"]}
            assert named == dict(REGIONS), panel["title"]


@pytest.mark.parametrize(("expr", "names"), [
    ('sum by (component, topic) (rate(passport_hub_records_consumed_total'
     '{component=~"$component"}[$__rate_interval]))', {"passport_hub_records_consumed_total"}),
    ("histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))", {"x_bucket"}),
    ("a / on (instance) group_left (version) b offset 1h30m", {"a", "b"}),
    ('label_replace(up, "dst", "sum $1", "src", "(.*)")', {"up"}),
    ('count_values("version", info) > bool 0', {"info"}),
    ('{__name__="up", job="x"}', {"up"}),
    ("sum(rate(x[5m:1m])) without (instance)", {"x"}),
    ("topk(5, max by (a) (x)) or vector(0) and on () y @ end()", {"x", "y"}),
    ("SUM BY (a) (x) # sum_of_things", {"x"}),
    ("1e3 * Inf + NaN - 0x1F", set()),
    ("time() - ${var} - [[old]]", set()),
    ("job:up:ratio5m > 0.5", {"job:up:ratio5m"}),
])
def test_metric_names(expr: str, names: set[str]) -> None:
    assert promql.metric_names(expr) == names


def test_metric_names_refuse_a_name_regex() -> None:
    with pytest.raises(ValueError, match="__name__"):
        promql.metric_names('{__name__=~"passport_hub_.*"}')
