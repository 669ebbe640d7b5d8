"""A pytest plugin that writes, per test, its outcome and how many inputs it tried.

``python -m reliability`` runs the other campaigns' test suites under it
(``reliability.suites``) and reports their figures beside the crash campaign's. A test
tried one input, or as many as hypothesis ran valid examples of it (a parametrized
case is a test of its own), or as many as it says itself (``record_property("cases", n)``,
e.g. the auth matrix's cells). Enabled by ``-p reliability.tally`` with the file to
write in ``PASSPORT_HUB_TALLY``; one JSON object per line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from typing import Any

import pytest

#: Where the plugin writes its lines.
TALLY_ENV = "PASSPORT_HUB_TALLY"

#: In hypothesis's per-test statistics (``--hypothesis-show-statistics``' text), the
#: valid cases of each phase. A figure of the report only: nothing passes or fails on it.
_PASSING = re.compile(r"(\d+) passing")


def cases(statistics: str | None, properties: Sequence[tuple[str, object]] = ()) -> int:
    """How many inputs a test tried: its own count, hypothesis's valid examples, or 1."""
    said = [int(str(value)) for name, value in properties if name == "cases"]
    if said:
        return sum(said)
    if not statistics:
        return 1
    return max(1, sum(int(n) for n in _PASSING.findall(statistics)))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """One line per test, at its teardown (when hypothesis's statistics are there), or at
    the phase that failed or skipped it."""
    report = (yield).get_result()
    path = os.environ.get(TALLY_ENV)
    if not path:
        return
    done = report.when == "teardown" or report.failed or report.skipped
    if not done or getattr(item, "_tallied", False):
        return
    item._tallied = True  # type: ignore[attr-defined]  # one line per test
    outcome = "failed" if report.failed else "skipped" if report.skipped else "passed"
    line = {"nodeid": item.nodeid, "outcome": outcome,
            "cases": cases(getattr(item, "hypothesis_statistics", None),
                           list(item.user_properties))}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
