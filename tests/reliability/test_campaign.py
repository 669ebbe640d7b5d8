"""The bounded crash campaign, as ``make reliability`` runs it: every component SIGKILLed in
turn during a realistic flow, and nothing lost, doubled, let through or diverged.

In CI on Apache Kafka, by ``make test-kafka`` (the campaign follows
``KAFKA_BOOTSTRAP_SERVERS``); ``make test`` leaves this directory out (it is not in the
pytest testpaths): the campaign takes some 3.5 minutes, and ``make test`` stays well
under its budget. ``pytest tests/reliability`` runs it on the embedded broker. The report
goes to the test's directory; ``docs/reliability.md`` is written by ``make reliability``
alone.
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
        [sys.executable, "-m", "reliability", "--report", str(report),
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
