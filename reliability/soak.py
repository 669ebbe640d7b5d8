"""The soak (``--long``): steady realistic traffic for half an hour, a kill every minute.

Businesses arrive at a steady rate (the synthetic generator on the wall clock: each
enrolment, its training, its feedback and maybe its offer, over HTTP), the CRMs answer
their leads as they come (``connectors.synthetic.crm.decide``, after the delay it
chooses), and the killer takes one component a minute, in turn. Every ``SAMPLE_S`` the
soak notes each process's resident memory (``/proc/<pid>/status``), the consumer lag each
processor reports on its ``/metrics`` (``passport_hub_consumer_lag_records``), and the
time from a probe enrolment's 202 to the API serving its passport (a read ``after`` the
write's token): the table gives, per window, the worst of each. Flat means the last
window is within ``GROWTH`` of the first. At the end the results are checked as the
crash campaign's are (the oracle and the invariants; there is no reference run).
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from uuid import UUID

import httpx

from connectors.synthetic.crm import decide
from connectors.synthetic.generator import Synthetic
from reliability import chaos, checks, oracle
from reliability.campaign import Progress, broker, workspace
from reliability.flow import NATIONAL_QUEUE
from reliability.leaks import Findings
from reliability.plan import WEBHOOK_SHARE, Plan, Post
from reliability.processes import Cluster
from reliability.run import Live, Run, Target
from reliability.verdict import Check, Verdict
from schemas.models import BusinessEnrolled, EventModel, OfferRequested, ResellerProfile

MINUTES = 30.0
WINDOW_MINUTES = 5.0
KILL_EVERY_S = 60.0
SAMPLE_S = 10.0
#: Businesses a second: ~6 partner events a second, ~20,000 in half an hour.
RATE = 0.6
#: Flat: the last window's worst within this factor of the first's (plus a small margin).
GROWTH = 1.5
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Settings:
    minutes: float = MINUTES
    window_minutes: float = WINDOW_MINUTES
    kill_every_s: float = KILL_EVERY_S
    seed: int = 20261207
    resellers: int = 120
    rate: float = RATE
    work_dir: Path | None = None


@dataclass
class Sample:
    """One look at the hub."""

    at_s: float
    rss_mb: dict[str, float]
    lag: dict[str, float]
    latency_ms: float | None
    accepted: int = 0
    """Events the hub had acknowledged by then."""


@dataclass
class Soaked:
    """What the soak found."""

    tried: str
    kills: int
    verdict: Verdict
    rows: list[dict[str, str]] = field(default_factory=list)
    leaks: Findings = field(default_factory=Findings)


def rss_mb(pid: int | None) -> float:
    """Resident memory of a process (MB), 0 when it is gone."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / _MB
    except OSError:
        pass
    return 0.0


def lag_of(metrics: str) -> float:
    """The records behind a processor says it is, summed over its input topics."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("passport_hub_consumer_lag_records{"):
            value = float(line.rsplit(" ", 1)[1])
            total += value if math.isfinite(value) else 0.0
    return total


def _group(name: str) -> str:
    return "routing" if name.startswith("routing") else name


def sample(cluster: Cluster, at_s: float, latency_ms: float | None, accepted: int) -> Sample:
    rss: dict[str, float] = {}
    lag: dict[str, float] = {}
    for name, component in cluster.components.items():
        group = _group(name)
        rss[group] = max(rss.get(group, 0.0), rss_mb(component.pid if component.running()
                                                     else None))
        if name in ("api", "file_drop"):
            continue
        try:
            text = httpx.get(f"{component.spec.probes}/metrics", timeout=2).text
        except httpx.HTTPError:
            continue
        lag[group] = max(lag.get(group, 0.0), lag_of(text))
    return Sample(at_s, rss, lag, latency_ms, accepted)


def windows(samples: list[Sample], kills_at: list[float], window_s: float) -> list[dict[str, str]]:
    """The table: per window, the worst memory of each component, lag and latency."""
    rows: list[dict[str, str]] = []
    if not samples:
        return rows
    count = max(1, math.ceil(samples[-1].at_s / window_s))
    before = 0
    for index in range(count):
        lo, hi = index * window_s, (index + 1) * window_s
        inside = [s for s in samples if lo <= s.at_s < hi] or [samples[-1]]
        row = {"window": f"{lo / 60:.0f}-{hi / 60:.0f} min",
               "events": str(inside[-1].accepted - before),
               "kills": str(sum(1 for k in kills_at if lo <= k < hi))}
        before = inside[-1].accepted
        for group in sorted({g for s in inside for g in s.rss_mb}):
            row[f"{group} MB"] = f"{max(s.rss_mb.get(group, 0.0) for s in inside):.0f}"
        row["lag max"] = f"{max(max(s.lag.values(), default=0.0) for s in inside):.0f}"
        latencies = sorted(s.latency_ms for s in inside if s.latency_ms is not None)
        row["latency p50 ms"] = f"{latencies[len(latencies) // 2]:.0f}" if latencies else "-"
        row["latency max ms"] = f"{latencies[-1]:.0f}" if latencies else "-"
        rows.append(row)
    return rows


def flat(rows: list[dict[str, str]]) -> Check:
    """Memory, lag and median latency of the last window against the first's (the worst
    latency of a window is a kill's: it is shown, not judged)."""
    check = Check("soak: memory, lag and latency stay flat (last window against the first)",
                  "diverged")
    if len(rows) < 2:
        return check
    first, last = rows[0], rows[-1]
    for name in first:
        if name in ("window", "events", "kills", "latency max ms") or first[name] == "-" \
                or last.get(name, "-") == "-":
            continue
        before, after = float(first[name]), float(last[name])
        margin = {"lag max": 200.0, "latency p50 ms": 500.0}.get(name, 40.0)
        check.look(after <= before * GROWTH + margin, f"{name}: {before:.0f} then {after:.0f}")
    return check


class _Traffic:
    """The partners of the soak: businesses at a steady rate, CRMs answering, probes timed."""

    def __init__(self, live: Live, synthetic: Synthetic, rate: float, seed: int) -> None:
        self.live = live
        self.synthetic = synthetic
        self.rate = rate
        self.seed = seed
        self.sent: list[EventModel] = []
        self.offers: list[OfferRequested] = []
        self.latencies: list[float] = []
        self.stop = threading.Event()
        self._rng = random.Random(f"{seed}/soak")  # noqa: S311 - reproducible traffic
        self._answered: set[tuple[str, int]] = set()
        self._due: dict[tuple[str, int], float] = {}

    def businesses(self) -> None:
        credit = 0.0
        while not self.stop.wait(1.0):
            credit += self.rate
            batch: list[EventModel] = []
            while credit >= 1.0:
                credit -= 1.0
                batch.extend(self.synthetic.business())
            if batch:
                self._send(batch)

    def _send(self, batch: list[EventModel]) -> None:
        try:
            self.live.admin.send(batch)
        except Exception as exc:  # noted; the checks find what it cost
            self.live.flow.notes.append(f"soak batch: {exc}")
        self.sent.extend(e for e in batch if not isinstance(e, OfferRequested))
        self.offers.extend(e for e in batch if isinstance(e, OfferRequested))

    def crms(self) -> None:
        """Answer each lead change as the CRM decides, once its delay has passed."""
        while not self.stop.wait(0.5):
            current = self.live.tap.read(lambda t: dict(t.leads))
            now = time.monotonic()
            for lead_id in sorted(current):
                reply = decide(self.seed, current[lead_id], national_queue=NATIONAL_QUEUE)
                if reply is None or (reply.lead_id, reply.version) in self._answered:
                    continue
                due = self._due.setdefault((reply.lead_id, reply.version), now + reply.delay_s)
                if due <= now:
                    self._answered.add((reply.lead_id, reply.version))
                    self.live.flow.guarded(partial(self.live.flow.answer, reply),
                                           f"answer {reply.lead_id}")

    def probe(self) -> float | None:
        """One enrolment, and how long until the API serves its passport (ms)."""
        template = self.synthetic.business()[0]
        if not isinstance(template, BusinessEnrolled):
            return None
        event = template.model_copy(update={
            "event_id": UUID(int=self._rng.getrandbits(128), version=4),
            "occurred_at": datetime.now(UTC)})
        started = time.monotonic()
        try:
            answer = self.live.admin.send_one(event)
            token = answer.json().get("consistency_token")
            read = self.live.admin.request("GET", f"/v1/passports/{event.siren}",
                                           params={"after": token, "wait": 10})
        except Exception:  # a probe that failed is a gap in the table, not a stop
            return None
        self.sent.append(event)
        return (time.monotonic() - started) * 1000 if read.status_code == 200 else None


def run(settings: Settings, say: Callable[[str], None]) -> Soaked:
    """Soak a hub for ``settings.minutes``; the table and the verdict."""
    with workspace(settings.work_dir, "reliability-soak-") as work:
        return _soak(settings, work, say)


def _soak(settings: Settings, work: Path, say: Callable[[str], None]) -> Soaked:
    duration = settings.minutes * 60
    kills = chaos.schedule(settings.seed, max(1, int(duration // settings.kill_every_s)),
                           gap_s=(settings.kill_every_s * 0.9, settings.kill_every_s * 1.1))
    now = datetime.now(UTC)
    synthetic = Synthetic(seed=settings.seed, clock=lambda: datetime.now(UTC),
                          resellers=settings.resellers)
    rng = random.Random(f"{settings.seed}/webhooks")  # noqa: S311 - reproducible
    profiles = tuple(e for e in synthetic.resellers() if isinstance(e, ResellerProfile))
    webhooks = tuple(sorted(p.reseller_id for p in profiles if rng.random() < WEBHOOK_SHARE))
    base = Plan(seed=settings.seed, now=now, profiles=profiles, webhooks=webhooks, training=(),
                offers=(), privacy=(), answer_seed=settings.seed)
    samples: list[Sample] = []
    with broker(work) as (bootstrap, _described):
        soak_run = Run(base, oracle.expect(base), Target(bootstrap, f"soak{os.getpid()}"),
                       work / "soak", kills=kills, progress=Progress(say))
        with soak_run.live() as live:
            traffic = _Traffic(live, synthetic, settings.rate, settings.seed)
            threads = [threading.Thread(target=traffic.businesses, daemon=True),
                       threading.Thread(target=traffic.crms, daemon=True)]
            for thread in threads:
                thread.start()
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < duration:
                latency = traffic.probe()
                samples.append(sample(live.cluster, elapsed, latency,
                                      len(soak_run.ledger.accepted)))
                time.sleep(max(0.0, SAMPLE_S - (time.monotonic() - started - elapsed)))
            traffic.stop.set()
            for thread in threads:
                thread.join(timeout=60)
            played = Plan(seed=settings.seed, now=now, profiles=profiles, webhooks=webhooks,
                          training=(Post("api", tuple(traffic.sent)),),
                          offers=tuple(traffic.offers), privacy=(), answer_seed=settings.seed)
            soak_run.plan, soak_run.expected = played, oracle.expect(played)
            observed = soak_run.finish(live)
        soak_run.scan(observed)
    verdict = checks.verify(played, soak_run.expected, observed)
    rows = windows(samples, [k.at_s for k in observed.kills], settings.window_minutes * 60)
    verdict.checks.append(flat(rows))
    return Soaked(f"{settings.minutes:g} min of steady traffic, a kill every "
                  f"{settings.kill_every_s:g} s", len(observed.kills), verdict, rows,
                  observed.leaks)
