"""The bounded crash campaign, as ``make reliability`` runs it: every component SIGKILLed in
turn during a realistic flow, and nothing lost, doubled, let through or diverged; no key,
secret or contact value in any log line, metric or dead-letter header.

In CI on Apache Kafka, by ``make test-kafka`` (the campaign follows
``KAFKA_BOOTSTRAP_SERVERS``); ``make test`` leaves this directory out (it is not in the
pytest testpaths): the campaign takes some 3.5 minutes, and ``make test`` stays well
under its budget. ``pytest tests/reliability`` runs it on the embedded broker. The report
goes to the test's directory; ``docs/reliability.md`` is written by ``make reliability``
alone. ``--no-suites``: the campaigns that are test suites run in CI as tests already.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(540)]

ROOT = Path(__file__).resolve().parents[2]


def test_the_bounded_campaign_kills_every_component_and_finds_nothing_lost(
        tmp_path: Path) -> None:
    report = tmp_path / "reliability.md"
    done = subprocess.run(
        [sys.executable, "-m", "reliability", "--no-suites", "--report", str(report),
         "--work-dir", str(tmp_path / "runs")],
        cwd=ROOT, capture_output=True, text=True, timeout=500, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    text = report.read_text(encoding="utf-8")
    assert "**nothing lost, doubled or let through**" in text
    summary = re.search(r"^\| crash \| [^|]+ \| (\d+) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$",
                        text, re.MULTILINE)
    assert summary is not None, text
    kills, *failures = map(int, summary.groups())
    assert kills >= 20
    assert failures == [0, 0, 0, 0]
    for target in ("api", "passport", "routing-active", "routing-standby", "crm_webhook",
                   "file_drop"):
        row = re.search(rf"^\| {target} \| (\d+) \| (\d+) \|$", text, re.MULTILINE)
        assert row is not None, f"{target} was not killed"
        assert int(row.group(1)) >= 3, f"{target} was killed {row.group(1)} times only"
    # Every check compared something: a campaign that checked nothing would pass too.
    checks = re.findall(r"^\| ([^|]+) \| (lost|doubled|let through|diverged) \| (\d+) \| (\d+) \|",
                        text, re.MULTILINE)
    assert len(checks) >= 15
    assert all(int(compared) > 0 for _, _, compared, _ in checks), checks
    # The trainers' files went through their key's inbox (inbox/<key id>/): a row the file
    # drop refused would fail "no valid event refused"; here, rows went that way at all.
    by_file = re.search(r"^\| by dropped file \| (\d+) \| (\d+) \|$", text, re.MULTILINE)
    assert by_file is not None, text
    assert int(by_file.group(1)) == int(by_file.group(2)) > 0
    # No key, secret or contact value in any log line, metric or dead-letter header; and
    # the scan looked for every kind of them, in every process's logs and metrics.
    leaks = dict(re.findall(r"^\| ([a-zA-Z -]+) \| (\d+ \| \d+ \| \d+ \| \d+) \|$",
                            text.split("## Leaks", 1)[1].split("\n## ", 1)[0], re.MULTILINE))
    for kind in ("API key", "webhook secret", "webhook secret key", "contact e-mail",
                 "contact phone", "contact name", "all"):
        injected, *found = map(int, leaks[kind].split(" | "))
        assert injected > 0, f"no {kind} looked for"
        assert found == [0, 0, 0], f"{kind} leaked: {leaks[kind]}"
    read = re.search(r"^- Read: (\d+) log files \((\d+) lines\), (\d+) scrapes", text,
                     re.MULTILINE)
    assert read is not None, text
    files, lines, scrapes = map(int, read.groups())
    assert (files, scrapes) == (12, 12)  # 6 processes, 2 runs
    assert lines > 1000
    control = re.search(r"Control: the same scan found (\d+) contact values", text)
    assert control is not None, text
    assert int(control.group(1)) > 0  # it sees the values as the hub writes them
