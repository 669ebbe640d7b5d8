"""The campaigns run as test suites: the tally plugin's counts, and their report lines.

The plugin is run for real, on a small test file of the test's own, in a pytest child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reliability import suites
from reliability.report import Report, markdown
from reliability.suites import Suite, Tally, campaign_of, tally_of
from reliability.tally import TALLY_ENV, cases

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = '''
from hypothesis import given, settings, strategies as st
import pytest

@settings(max_examples=25, database=None)
@given(st.integers())
def test_examples(n):
    assert isinstance(n, int)

@pytest.mark.parametrize("x", [1, 2, 3])
def test_cases(x):
    assert x

def test_counted(record_property):
    record_property("cases", 40)

def test_broken():
    assert 1 == 2
'''


def _pytest(tests: Path, tally: Path | None) -> subprocess.CompletedProcess[str]:
    """pytest in a child, under the plugin, on the tests' own folder (no project config)."""
    env = {k: v for k, v in os.environ.items() if k != TALLY_ENV}
    if tally is not None:
        env[TALLY_ENV] = str(tally)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "reliability.tally", "-p",
         "no:cacheprovider", "--rootdir", str(tests), "-c", "/dev/null", str(tests)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False, timeout=120)


def _tallied(tmp_path: Path) -> list[dict[str, object]]:
    (tmp_path / "test_sample.py").write_text(SAMPLE, encoding="utf-8")
    out = tmp_path.parent / f"{tmp_path.name}.jsonl"
    done = _pytest(tmp_path, out)
    assert done.returncode == 1, done.stdout + done.stderr  # test_broken
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def test_the_plugin_writes_a_line_per_test_with_the_inputs_it_tried(tmp_path: Path) -> None:
    lines = {str(line["nodeid"]).split("::")[-1]: line for line in _tallied(tmp_path)}
    assert set(lines) == {"test_examples", "test_cases[1]", "test_cases[2]", "test_cases[3]",
                          "test_counted", "test_broken"}
    assert 20 <= int(str(lines["test_examples"]["cases"])) <= 25  # hypothesis's valid ones
    assert lines["test_cases[2]"]["cases"] == 1
    assert lines["test_counted"]["cases"] == 40
    assert lines["test_broken"]["outcome"] == "failed"
    assert {line["outcome"] for name, line in lines.items() if name != "test_broken"} == {
        "passed"}
    tally = tally_of(list(lines.values()))
    assert (tally.passed, tally.failed, tally.failed_cases) == (5, 1, 1)


def test_without_the_file_named_the_plugin_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n", encoding="utf-8")
    done = _pytest(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["test_one.py"]


@pytest.mark.parametrize(("statistics", "properties", "expected"), [
    (None, [], 1),
    ("- during generate phase: 93 passing, 0 failing\n- during shrink phase: 4 passing", [], 97),
    ("nothing counted", [], 1),
    ("- 93 passing", [("cases", 936)], 936),
])
def test_cases_counts_what_the_test_said_then_hypothesis_then_one(
        statistics: str | None, properties: list[tuple[str, object]], expected: int) -> None:
    assert cases(statistics, properties) == expected


SUITE = Suite("hostile input", "mutated files", "let through", ("tests/x.py",))


def test_a_suite_that_passed_is_a_line_with_its_inputs_and_no_failure() -> None:
    line = campaign_of(SUITE, Tally(passed=4, failed=0, skipped=0, cases=120, failed_cases=0,
                                    failures=()))
    assert (line.times, line.verdict.ok, line.verdict.total("let through")) == (120, True, 0)


def test_a_failed_or_skipped_test_counts_its_inputs_under_the_suite_s_kind() -> None:
    line = campaign_of(SUITE, Tally(passed=3, failed=1, skipped=1, cases=130, failed_cases=11,
                                    failures=("tests/x.py::test_a", "tests/x.py::test_b")))
    assert not line.verdict.ok
    assert line.verdict.total("let through") == 11
    assert line.verdict.checks[0].examples == ["tests/x.py::test_a", "tests/x.py::test_b"]


def test_a_suite_that_ran_nothing_or_could_not_run_is_not_a_pass() -> None:
    empty = campaign_of(SUITE, Tally(0, 0, 0, 0, 0, ()))
    assert not empty.verdict.ok
    not_run = campaign_of(SUITE, None, "needs Apache Kafka")
    assert not_run.verdict.ok  # nothing failed: but the line says it did not run
    assert not_run.tried == "not run: needs Apache Kafka"


def test_a_suite_that_needs_kafka_is_reported_not_run_without_it() -> None:
    said: list[str] = []
    lines = suites.run(said.append, kafka=False,
                       suites=[Suite("zombie fencing", "frozen", "diverged", ("tests/z.py",),
                                     needs_kafka=True)])
    assert [line.tried for line in lines] == ["not run: needs Apache Kafka (make test-kafka "
                                              "runs it)"]
    assert "not run" in said[0]


def test_the_report_shows_the_suites_in_its_summary_and_their_own_table() -> None:
    failed = campaign_of(SUITE, Tally(3, 1, 0, 50, 7, ("tests/x.py::test_a",)))
    report = Report(command="python -m reliability", date="2026-12-07 10:00 UTC",
                    broker="the embedded broker", wall_s=1.0, inputs={}, campaigns=(),
                    suites=(failed,))
    text = markdown(report, "method")
    assert not report.ok
    assert "| hostile input | mutated files | 50 | 0 | 0 | 7 | 0 |" in text
    assert "## Suites" in text
    assert "tests/x.py::test_a" in text
