"""The crash campaign: one plan, a crash-free run and a run with kills, and their verdicts.

Both runs share one broker (the embedded one unless ``KAFKA_BOOTSTRAP_SERVERS`` names
another) under different topic and group prefixes. The crash-free run is checked
against the oracle too: if it failed, the oracle or the flow would be wrong, not the
kills. ``--long`` plays several plans (one seed each) and adds the soak.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from hub.broker import EmbeddedBroker, without_transactions
from reliability import chaos, checks, oracle, plan
from reliability.leaks import Findings
from reliability.run import Run, Target
from reliability.verdict import EXAMPLES, Check, Verdict

TRIED = ("SIGKILL in turn of api (and its read model), passport, routing active and standby, "
         "crm_webhook and file_drop, during the flow; each restarted")

METHOD = """\
`python -m reliability` starts each component as its own process, as deployed (`python -m
connectors.api`, `services.passport`, `services.routing` twice (one active, one standby),
`connectors.crm_webhook`, `connectors.file_drop` watching its inbox), on the embedded broker
unless `KAFKA_BOOTSTRAP_SERVERS` names one. It plays a seeded plan over real HTTP: the
reseller network and webhook endpoints (CRM receivers in the campaign's process verify every
signature), enrolments, completions and feedback (a quarter of the trainers' reports as
JSON Lines files dropped in the inbox of the trainers' API key, `inbox/<key id>/`, a few
events sent twice), offer requests one at a time, the CRMs' answers in rounds
(`connectors.synthetic.crm.decide`: accept, reject with a reason, stay silent, later won or
lost), then consent withdrawals and erasures; all along,
more businesses' enrolments and training flow steadily, so that a kill finds its victim
busy. With kills, the phases are paced to last as long as the kills' schedule. Partners retry
on refused connections, timeouts and 503s with the same `event_id`, as a real partner does;
every event answered 202 (or settled from a file) is written down.

The plan is played twice on one broker: once without kills (the reference), once while a
seeded killer SIGKILLs, in turn, each component (the API, which holds the read model; the
passport service; the active router and the standby; the deliverer; the file drop) at seeded
moments, each killed once it is up and restarted at once on the same data directory.

After the flow and the kills, once everything is back up and drained (every consumer group
at the end of its inputs as the broker sees it, the topics quiet, the CRMs holding every
message of the read model's feed), the checks read the topics (from their beginning), the
API, and what the CRM receivers got:

- an oracle, independent of `services.passport.rules`: a passport is 3 distinct modules
  (issued at the third's first completion), an offer is a lead when the passport came
  before it and the business consents, a second request of an open category is a
  duplicate, a withdrawal or erasure leaves no lead open and no contact e-mail;
- invariants over `pn.leads.v1`: one request id per lead, one decision per version,
  versions 1..n, capacity never overbooked, never twice to one reseller, only to one that
  covers, sells and is active; every acknowledged answer applied;
- the read model against the topics; the CRMs against the read model's feed (each message at
  least once, signed, under one webhook-id);
- the crash-free run: the same passports, the same decisions for every lead (offers go one
  at a time and answers in rounds, so the router sees the same input order in both runs),
  the same messages delivered.

Once a run's processes stopped, a leak scan (`reliability/leaks.py`) looks for every value the
run handed the hub that must never show where operators read: every API key it minted, every
webhook signing secret the API returned, the hub's sealing key
(`PASSPORT_HUB_WEBHOOK_SECRET_KEY`), every contact e-mail, phone and name of the enrolments.
It reads every line every process wrote (stdout and stderr, across restarts), each
component's `/metrics` as scraped at the end of the run, and the headers of every record
of the dead-letter topic; it looks for each value as sent, in any case, URL-encoded and
JSON-escaped (and a secret without its `whsec_` prefix, a phone in its national forms).
Any occurrence fails the campaign ("let through"); the report says where, never what.

Routing decisions are compared whole (holder, reason, hops, and every candidate's
standing); times are not (they are the wall clock's). With the router's clock at speed 1
no SLA expires within a run: deadlines under crashes are the failover test's
(tests/integration/test_routing_failover.py). A campaign whose two runs fall on either side
of midnight in Paris may see a reseller's absence begin or end between them: its decisions
would then differ for a reason that is not a crash (run it again).

The other campaigns are test suites (`reliability/suites.py`): hostile input (schemathesis,
hypothesis, mutated files), the auth matrix, poison records, erasure, a full or read-only
store, broker faults on a three-broker Apache Kafka and zombie fencing (which needs Apache
Kafka: `KAFKA_BOOTSTRAP_SERVERS`). They run after the crash campaign, each under pytest
with a plugin (`reliability/tally.py`) that counts the inputs each test tried."""


@dataclass(frozen=True, slots=True)
class Settings:
    """The knobs of a campaign."""

    seed: int = 20261207
    businesses: int = 160
    resellers: int = 120
    background: int = 300
    """Businesses of the steady traffic sent all along (enrolments and training only)."""
    kills: int = 24
    rounds: int = 1
    """Plans played (one seed each, from ``seed``): the long campaign plays several."""
    gap_s: tuple[float, float] = (2.5, 5.5)
    work_dir: Path | None = None
    """Keep the runs' directories (logs, stores, results) there; None: a temporary one."""


@dataclass
class Outcome:
    """What the campaign found over all its rounds."""

    crash: Verdict
    reference: Verdict
    inputs: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    kills_up: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    broker: str = ""
    runs: list[list[str]] = field(default_factory=list)
    """Per round: seed, leads expected, the two runs' wall times, the kills."""
    leaks: Findings = field(default_factory=Findings)
    """The leak scans of every run, summed."""


@contextmanager
def broker(work: Path) -> Iterator[tuple[str, str]]:
    """The campaign's broker: the configured one, or an embedded one started here."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured, f"the configured broker ({configured})"
        return
    with without_transactions(), EmbeddedBroker(log_path=work / "broker.log") as embedded:
        yield embedded.bootstrap, "the embedded broker (Tansu)"


@contextmanager
def workspace(work_dir: Path | None, prefix: str) -> Iterator[Path]:
    """Where runs keep their stores and logs: ``work_dir`` (kept), or a temporary directory
    removed at the end."""
    if work_dir is not None:
        work_dir.mkdir(parents=True, exist_ok=True)
        yield work_dir
        return
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(settings: Settings, say: Callable[[str], None]) -> Outcome:
    """Play the campaign's rounds; their verdicts merged."""
    if settings.rounds == 0:
        return Outcome(Verdict([]), Verdict([]))
    with workspace(settings.work_dir, "reliability-") as work:
        outcome = _rounds(settings, work, say)
        if settings.work_dir is None and not (outcome.crash.ok and outcome.reference.ok):
            kept = _keep(work)
            say(f"a check failed: the runs' stores and logs are kept in {kept}")
            outcome.notes.append(f"the runs' stores and logs are kept in {kept}")
        return outcome


def _keep(work: Path) -> Path:
    """A copy of a failed campaign's runs (a temporary workspace is removed at the end):
    without its logs and stores, a failure seen once in 200 kills cannot be explained."""
    kept = Path(tempfile.mkdtemp(prefix="reliability-failed-"))
    shutil.copytree(work, kept, dirs_exist_ok=True, ignore_dangling_symlinks=True)
    return kept


def _rounds(settings: Settings, work: Path, say: Callable[[str], None]) -> Outcome:
    """Each round: a plan of its own seed, its crash-free run, then its run with kills."""
    replication = int(os.environ.get("PASSPORT_HUB_REPLICATION_FACTOR", "1"))
    crash: list[Verdict] = []
    reference: list[Verdict] = []
    outcome = Outcome(Verdict([]), Verdict([]))
    with broker(work) as (bootstrap, described):
        outcome.broker = described
        for round_ in range(settings.rounds):
            seed = settings.seed + round_
            now = datetime.now(UTC).replace(microsecond=0)
            made = plan.make(seed=seed, businesses=settings.businesses,
                             resellers=settings.resellers, now=now,
                             background=settings.background)
            expected = oracle.expect(made)
            outcome.inputs.update(made.counts())
            tag = f"rel{seed}-{os.urandom(2).hex()}"
            progress = Progress(say)
            say(f"round {round_ + 1}/{settings.rounds}: seed {seed}, "
                f"{len(expected.leads)} leads expected")
            base = Run(made, expected, Target(bootstrap, f"{tag}-ref", replication),
                       work / f"{seed}-reference", progress=progress).play()
            killed = Run(made, expected, Target(bootstrap, f"{tag}-kill", replication),
                         work / f"{seed}-kills", progress=progress,
                         kills=chaos.schedule(seed, settings.kills,
                                              gap_s=settings.gap_s)).play()
            reference.append(checks.verify(made, expected, base))
            crash.append(checks.verify(made, expected, killed, base))
            outcome.leaks.add(base.leaks)
            outcome.leaks.add(killed.leaks)
            outcome.kills.update(chaos.per_target(killed.kills))
            outcome.kills_up.update(k.target for k in killed.kills if k.up)
            outcome.notes += [f"seed {seed}: {n}" for n in (*base.notes, *killed.notes)]
            say(f"round {round_ + 1}: reference {base.wall_s:.0f} s, with kills "
                f"{killed.wall_s:.0f} s, {len(killed.kills)} kills")
            outcome.runs.append([str(seed), str(len(expected.leads)), f"{base.wall_s:.0f}",
                                 f"{killed.wall_s:.0f}", str(len(killed.kills))])
    outcome.crash, outcome.reference = merge(crash), merge(reference)
    return outcome


def merge(verdicts: list[Verdict]) -> Verdict:
    """Several rounds' verdicts as one: each check's counts summed, the first examples kept."""
    merged: dict[str, Check] = {}
    figures: Counter[str] = Counter()
    for verdict in verdicts:
        for check in verdict.checks:
            into = merged.setdefault(check.name, Check(check.name, check.kind))
            into.compared += check.compared
            into.failures += check.failures
            into.examples += check.examples[:max(0, EXAMPLES - len(into.examples))]
        figures.update(verdict.figures)
    return Verdict(list(merged.values()), dict(figures))


class Progress(list[str]):
    """A progress list that also says each line as it is appended."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__()
        self._say = say

    def append(self, line: str) -> None:
        super().append(line)
        self._say(line)
