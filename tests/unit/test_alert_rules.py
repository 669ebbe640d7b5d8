"""The alert rules (deploy/prometheus/rules) load, are unit-tested both ways, and bite.

promtool (Debian's `prometheus` package, installed by deploy/tools/ensure-prometheus.sh
where missing) checks the rules and runs the `promtool test rules` files of
deploy/prometheus/tests: for every alert, series that fire it and series that do not.
Each alert carries what an on-call operator needs (docs/operations.md, its runbook).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import promql

SEVERITIES = {"critical", "warning", "info"}
#: A rule that cannot fire: what every alert's expression becomes in test_tests_bite.
NEVER = "vector(1) < 0"


def names() -> list[str]:
    return [str(rule["alert"]) for rule in promql.alerts()]


def evaluations() -> list[dict[str, Any]]:
    """Every `alert_rule_test` evaluation of every promtool test file."""
    return [case for path in promql.rule_test_files()
            for test in promql.load_yaml(path)["tests"]
            for case in test.get("alert_rule_test", [])]


def test_promtool_checks_the_rule_files() -> None:
    done = promql.run_promtool("check", "rules", *promql.rule_files())
    assert done.returncode == 0, done.stdout + done.stderr
    assert "warning" not in (done.stdout + done.stderr).lower(), done.stdout + done.stderr


def test_promtool_unit_tests_pass() -> None:
    passed, output = promql.run_rule_tests(promql.rule_test_files(), cwd=promql.RULE_TESTS_DIR)
    assert passed, output


def test_the_issue_s_alerts_are_there() -> None:
    """Issue 12's list: a component down, lag growing, dead letters growing, ingest errors,
    SLA breaches, endpoints disabled, restores too long, the broker unreachable."""
    assert {"PassportHubComponentDown", "PassportHubConsumerLagGrowing",
            "PassportHubDeadLettersGrowing", "PassportHubIngestRejectedRatioHigh",
            "PassportHubApiServerErrorsHigh", "PassportHubLeadSlaBreachRatioHigh",
            "PassportHubWebhookEndpointsDisabled", "PassportHubRestoreTooLong",
            "PassportHubBrokerUnreachable"} <= set(names())
    assert len(names()) == len(set(names())), "alert names must be unique"


@pytest.mark.parametrize("rule", promql.alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_carries_what_on_call_needs(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert re.fullmatch(r"PassportHub(?:[A-Z][a-z0-9]+)+", name), name
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    # docs/operations.md has a heading "Alert: <name>" for each, anchored so.
    assert annotations["runbook_url"] == f"docs/operations.md#alert-{name.lower()}"


@pytest.mark.parametrize("rule", promql.rules(), ids=lambda rule: str(rule.get("alert")))
def test_rules_name_only_exposed_metrics(rule: dict[str, Any]) -> None:
    used = promql.metric_names(rule["expr"])
    assert used, rule["expr"]
    assert used <= promql.EXPOSED | promql.SCRAPE, sorted(used - promql.EXPOSED)


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = evaluations()
    for name in names():
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no test where it is quiet"


def test_tests_bite(tmp_path: Path) -> None:
    """With every alert's expression made unable to fire, each alert's tests fail."""
    rules_dir, tests_dir = tmp_path / "rules", tmp_path / "tests"
    shutil.copytree(promql.RULE_TESTS_DIR, tests_dir)
    rules_dir.mkdir()
    for path in promql.rule_files():
        content = promql.load_yaml(path)
        for group in content["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    rule["expr"] = NEVER
        (rules_dir / path.name).write_text(yaml.safe_dump(content), encoding="utf-8")
    passed, output = promql.run_rule_tests([path.name for path in promql.rule_test_files()],
                                       cwd=tests_dir)
    assert not passed, output
    assert set(re.findall(r"alertname: (\w+)", output)) == set(names()), output
