"""What the alert rules and the Grafana dashboard query, for the tests that hold them to the hub.

The unit tests (tests/unit/test_alert_rules.py, tests/unit/test_dashboard.py) check that
every expression parses (promtool) and names only metrics the hub exposes
(``EXPOSED``, docs/operations.md, Metrics); the end-to-end test with a real Prometheus
asks for each of those series on a running stack. promtool comes from Debian's
``prometheus`` package, installed by deploy/tools/ensure-prometheus.sh where missing.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENSURE = ROOT / "deploy" / "tools" / "ensure-prometheus.sh"
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
RULE_TESTS_DIR = ROOT / "deploy" / "prometheus" / "tests"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "passport-hub.json"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
DATASOURCES = PROVISIONING / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = PROVISIONING / "dashboards" / "passport-hub.yml"

# -- what the hub exposes -------------------------------------------------------------------

COUNTERS = (
    "passport_hub_records_consumed_total",
    "passport_hub_records_produced_total",
    "passport_hub_dead_letters_total",
    "passport_hub_http_requests_total",
    "passport_hub_events_ingested_total",
    "passport_hub_lead_changes_total",
    "passport_hub_lead_sla_breaches_total",
    "passport_hub_lead_reassignments_total",
    "passport_hub_webhook_deliveries_total",
    "passport_hub_webhook_endpoints_disabled_total",
    "passport_hub_file_drop_files_total",
    "passport_hub_file_drop_rows_total",
)
GAUGES = (
    "passport_hub_outbox_pending_records",
    "passport_hub_consumer_lag_records",
    "passport_hub_consumer_group_lag_records",
    "passport_hub_state_store_bytes",
    "passport_hub_restores_in_progress",
    "passport_hub_broker_up",
    "passport_hub_ready",
    "passport_hub_build_info",
    "passport_hub_webhook_pending_deliveries",
    "passport_hub_webhook_in_flight_deliveries",
    "passport_hub_webhook_endpoints",
    "passport_hub_programme_passports_issued",
    "passport_hub_programme_passports_target",
    "passport_hub_programme_businesses",
    "passport_hub_programme_leads",
)
#: Histograms by their base name; a query names one of the three series of each.
HISTOGRAMS = (
    "passport_hub_batch_duration_seconds",
    "passport_hub_processing_latency_seconds",
    "passport_hub_event_latency_seconds",
    "passport_hub_restore_duration_seconds",
    "passport_hub_http_request_duration_seconds",
    "passport_hub_webhook_attempt_duration_seconds",
    "passport_hub_lead_delivery_latency_seconds",
)
#: Every series name the hub's processes expose, exactly as a query writes it.
EXPOSED: frozenset[str] = frozenset(
    (*COUNTERS, *GAUGES,
     *(f"{name}_{suffix}" for name in HISTOGRAMS for suffix in ("bucket", "sum", "count")))
)
#: Series Prometheus itself writes for every target of the `passport-hub` job.
SCRAPE: frozenset[str] = frozenset({"up"})

# -- promtool -------------------------------------------------------------------------------


@functools.cache
def promtool() -> str:
    """promtool's path, Debian's `prometheus` package installed first if it is missing."""
    done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, check=False,
                          timeout=600)
    assert done.returncode == 0, f"{ENSURE.name} failed:\n{done.stdout}{done.stderr}"
    return done.stdout.strip().splitlines()[-1]


def run_promtool(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """promtool with these arguments; the caller asserts on the return code and prints."""
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True,
                          check=False, timeout=120, cwd=cwd)


def run_rule_tests(files: Iterable[Path | str], cwd: Path) -> tuple[bool, str]:
    """`promtool test rules`, a process per file side by side (a file's tests take up to a
    second of evaluations); whether all passed, and their output."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = list(pool.map(lambda path: run_promtool("test", "rules", path, cwd=cwd), files))
    return (all(run.returncode == 0 for run in done),
            "".join(run.stdout + run.stderr for run in done))


# -- the alert rules ------------------------------------------------------------------------


def rule_files() -> list[Path]:
    """The rule files Prometheus loads (deploy/prometheus/rules)."""
    return sorted(RULES_DIR.glob("*.yml"))


def rule_test_files() -> list[Path]:
    """The `promtool test rules` files (deploy/prometheus/tests)."""
    return sorted(RULE_TESTS_DIR.glob("*.yml"))


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    """Every rule (alerting or recording) of every rule file, in file order."""
    return [rule for path in rule_files() for group in load_yaml(path)["groups"]
            for rule in group["rules"]]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def rule_exprs() -> list[str]:
    """The PromQL of every rule, as written."""
    return [str(rule["expr"]) for rule in rules()]


# -- the dashboard --------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def panels(board: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Every panel, those of collapsed rows included (rows themselves too)."""
    for panel in (board or dashboard())["panels"]:
        yield panel
        yield from panel.get("panels", [])


def query_panels(board: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """The panels that draw something (rows only lay the others out)."""
    return (panel for panel in panels(board) if panel["type"] != "row")


#: What Grafana puts for its own interval variables when a query is sent. $__rate_interval
#: is at least four scrape intervals; 1m stands for it with the 15 s scrape of the compose
#: Prometheus.
BUILTINS: Mapping[str, str] = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def variables(expr: str) -> set[str]:
    """The Grafana variables an expression uses ($name, ${name}, ${name:fmt}, [[name]])."""
    return {next(group for group in match.groups() if group)
            for match in _VARIABLE.finditer(expr)}


def substitute(expr: str) -> str:
    """The expression Prometheus receives: Grafana's intervals as durations, and every
    template variable as its "All" (the dashboard's variables use `allValue: .+`, in
    regex matchers only: tests/unit/test_dashboard.py checks it)."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return BUILTINS.get(name, ".+")

    return _VARIABLE.sub(value, expr)


def dashboard_exprs(*, substituted: bool = False) -> list[str]:
    """The PromQL of every panel target, as written (Grafana variables in), or as
    Prometheus receives it (``substituted``: see ``substitute``)."""
    exprs = [str(target["expr"]) for panel in query_panels()
             for target in panel.get("targets", [])]
    return [substitute(expr) for expr in exprs] if substituted else exprs


# -- metric names in PromQL -----------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
  | (?P<comment>\#[^\n]*)
  | (?P<variable>\$\{[^}]*\}|\$\w+|\[\[\w+\]\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?[a-zA-Z0-9_]*)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<space>\s+)
  | (?P<punct>=~|!~|!=|==|>=|<=|.)
""", re.VERBOSE)
#: Keywords followed by a parenthesised list of label names.
_LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
#: Keywords and literals that stand alone (functions and aggregations are known by the
#: parenthesis or the `by`/`without` that follows them).
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
_AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                           "count_values", "bottomk", "topk", "quantile"})


def _tokens(expr: str) -> list[tuple[str, str]]:
    found = []
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup
        assert kind is not None
        if kind not in {"space", "comment"}:
            found.append((kind, match.group()))
    return found


def _closing(tokens: list[tuple[str, str]], start: int) -> int:
    """Index of the parenthesis closing the one at ``start``."""
    depth = 0
    for index in range(start, len(tokens)):
        depth += {"(": 1, ")": -1}.get(tokens[index][1], 0) if tokens[index][0] == "punct" else 0
        if depth == 0:
            return index
    raise ValueError("unbalanced parentheses")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects, exactly as written (``x_bucket`` stays
    ``x_bucket``): not functions, aggregations, keywords, label names, durations, string
    contents or Grafana variables. ``{__name__="x"}`` counts as ``x``; a regex on
    ``__name__`` cannot be enumerated and raises ValueError."""
    tokens = _tokens(expr)
    names: set[str] = set()
    braces = brackets = 0
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        after = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "punct":
            braces += {"{": 1, "}": -1}.get(text, 0)
            brackets += {"[": 1, "]": -1}.get(text, 0)
        elif kind != "ident" or brackets:
            pass  # strings, numbers, variables; durations and subquery steps
        elif braces:
            if text == "__name__" and after in {"=~", "!~"}:
                raise ValueError(f"a regex on __name__ names no metric: {expr!r}")
            if text == "__name__" and after == "=" and index + 2 < len(tokens):
                names.add(tokens[index + 2][1][1:-1])
        elif text.lower() in _LABEL_LISTS and after == "(":
            index = _closing(tokens, index + 1)
        elif text.lower() in _KEYWORDS or after == "(" or (
                text.lower() in _AGGREGATIONS and after.lower() in {"by", "without"}):
            pass
        else:
            names.add(text)
        index += 1
    return names
