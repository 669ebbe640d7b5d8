"""The campaigns that are test suites: run under pytest, reported beside the crash campaign.

Hostile input, the auth matrix, poison records, erasure, a full or read-only store, broker
faults and zombie fencing each have their own tests (where they belong: unit, contract,
integration, faults). ``python -m reliability`` runs them with ``reliability.tally`` and
turns each suite into a campaign line: what was tried, how many inputs, and the failed
tests under the kind of failure the suite guards against (each failing test counts the
inputs it tried). A suite that needs what this run does not have (zombie fencing needs an
Apache Kafka the hub does not start) is reported as not run, and why; it is not a pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reliability.report import Campaign
from reliability.tally import TALLY_ENV
from reliability.verdict import Check, Verdict

_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Suite:
    """A campaign run as tests."""

    name: str
    tried: str
    kind: str
    """What a failed test of it means: one of ``reliability.checks.KINDS``."""
    paths: tuple[str, ...]
    needs_kafka: bool = False
    """Needs ``KAFKA_BOOTSTRAP_SERVERS`` naming an Apache Kafka (fencing is its feature)."""
    timeout_s: float = 1200


SUITES = (
    Suite("hostile input", "schemathesis over every route and documented status; almost-valid "
          "events over HTTP and alone; hostile text in every field; mutated CSV and JSON Lines "
          "files (cut, wrong encodings, BOMs, huge lines, wrong delimiters, formulas)",
          "let through",
          ("tests/contract/test_schemathesis.py", "tests/contract/test_hostile_events.py",
           "tests/unit/test_fields_hostile.py", "tests/unit/test_file_drop_hostile.py")),
    Suite("auth matrix", "every role (and no, revoked, expired key) x every route x own and "
          "another tenant's data; tenant-bound keys over HTTP; rate limits; a retry on "
          "another API instance", "let through",
          ("tests/unit/test_auth_matrix.py", "tests/unit/test_ratelimit.py",
           "tests/integration/test_api_auth.py",
           "tests/integration/test_api_batch.py::"
           "test_two_instances_on_one_store_answer_a_retry_alike_and_publish_once",
           "tests/integration/test_file_drop_scopes.py")),
    Suite("poison records", "garbage bytes, an unknown fingerprint and impossible values "
          "written straight onto every input topic (the read model's and the reseller "
          "table's too): dead-lettered, the partition flowing", "lost",
          ("tests/integration/test_poison_records.py", "tests/unit/test_readmodel_poison.py",
           "tests/unit/test_routing_table_poison.py")),
    Suite("erasure", "an erasure, then every store, topic and log the hub serves from "
          "searched for the business's contact data", "let through",
          ("tests/integration/test_erasure_copies.py", "tests/unit/test_readmodel_erasure.py",
           "tests/unit/test_routing_erasure.py")),
    Suite("full or read-only store", "a service's store at its cap or read-only: a clear "
          "stop, nothing half-written, a restart with room resumes; the API answers 503",
          "lost", ("tests/unit/test_store_full.py", "tests/integration/test_store_full.py")),
    Suite("broker faults", "three brokers (acks=all, min.insync.replicas=2): each killed in "
          "turn under load, the busiest partition's leader, all of them at once", "lost",
          ("tests/faults",)),
    Suite("zombie fencing", "an instance frozen (SIGSTOP) past its session timeout mid-burst, "
          "then let go; a relay under a stale generation", "diverged",
          ("tests/reliability/test_zombie.py",), needs_kafka=True),
)


@dataclass(frozen=True, slots=True)
class Tally:
    """What one suite's tests said, line by line (``reliability.tally``)."""

    passed: int
    failed: int
    skipped: int
    cases: int
    failed_cases: int
    failures: tuple[str, ...]


def tally_of(lines: Sequence[Mapping[str, object]]) -> Tally:
    """Sum the plugin's lines."""
    def count(outcome: str) -> int:
        return sum(1 for line in lines if line["outcome"] == outcome)

    return Tally(
        passed=count("passed"), failed=count("failed"), skipped=count("skipped"),
        cases=sum(int(str(line["cases"])) for line in lines),
        failed_cases=sum(int(str(line["cases"])) for line in lines
                         if line["outcome"] != "passed"),
        failures=tuple(str(line["nodeid"]) for line in lines if line["outcome"] != "passed"))


def campaign_of(suite: Suite, tally: Tally | None, why_not: str = "") -> Campaign:
    """The suite's line of the report. A skipped test is a failure here: the campaign
    said it would try it. No test at all (pytest found none, or could not start) is one."""
    if tally is None:
        check = Check(f"{suite.name}: not run", suite.kind, 0, 0, [why_not])
        return Campaign(suite.name, f"not run: {why_not}", 0, Verdict([check], {}))
    check = Check(f"{suite.name}: {tally.passed} tests passed", suite.kind, tally.cases)
    for nodeid in tally.failures:
        check.fail(nodeid)
    check.failures = tally.failed_cases if tally.failures else 0
    if tally.passed + tally.failed + tally.skipped == 0:
        check.fail("no test ran")
    return Campaign(suite.name, suite.tried, tally.cases, Verdict([check], {}))


def run(say: Callable[[str], None], *, kafka: bool | None = None,
        suites: Sequence[Suite] = SUITES) -> list[Campaign]:
    """Run each suite under pytest (this interpreter, the repository's own settings) and
    return its campaign line; ``kafka``: whether the configured broker is Apache Kafka
    (default: whether ``KAFKA_BOOTSTRAP_SERVERS`` is set)."""
    kafka = bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")) if kafka is None else kafka
    out = []
    for suite in suites:
        if suite.needs_kafka and not kafka:
            say(f"suite {suite.name}: not run (needs KAFKA_BOOTSTRAP_SERVERS: make test-kafka)")
            out.append(campaign_of(suite, None, "needs Apache Kafka (make test-kafka runs it)"))
            continue
        say(f"suite {suite.name}: {' '.join(suite.paths)}")
        tally, why_not = _pytest(suite)
        campaign = campaign_of(suite, tally, why_not)
        say(f"suite {suite.name}: {campaign.times} inputs, "
            f"{'ok' if campaign.verdict.ok else 'FAILED'}")
        out.append(campaign)
    return out


def _pytest(suite: Suite) -> tuple[Tally | None, str]:
    with tempfile.TemporaryDirectory(prefix="reliability-tally-") as work:
        path = Path(work) / "tally.jsonl"
        env = {**os.environ, TALLY_ENV: str(path)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "reliability.tally",
                   "-p", "no:cacheprovider", *suite.paths]
        try:
            done = subprocess.run(  # noqa: S603 - our own interpreter and tests
                command, cwd=_ROOT, env=env, timeout=suite.timeout_s,
                                  capture_output=True, text=True, check=False)
        except subprocess.TimeoutExpired:
            return None, f"pytest ran past {suite.timeout_s:g} s"
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] \
            if path.exists() else []
        if not lines:
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            return None, f"pytest exited {done.returncode}: {' / '.join(tail)}"
        return tally_of(lines), ""
