"""The passport service under SIGKILL, and two instances sharing the partitions.

Both tests run the real service (``python -m services.passport``) as child
processes against the test's broker, feed it synthetic partner traffic (with
events sent twice and trainers reporting before the enrolment) while it runs,
and compare the end result with the pure rules applied to the same events:
the final snapshot of every business, and the lead requests — each lead once,
under one event id (the same record may be on the topic twice after a crash:
the relay resends what it could not confirm, with the same ids).

1. Crash: the service is killed with SIGKILL at random moments after it took
   its partitions (``PASSPORT_HUB_CRASH_KILLS`` times, 20 by default), restarted
   each time on the same store.
2. Scale-out: two instances in one group share the partitions; one is killed;
   the other takes its partitions over and restores them from pn.passports.v1.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.publish import Publisher
from connectors.synthetic.generator import Expected, Synthetic
from hub.config import Settings
from hub.reader import TopicReader
from schemas import catalog
from schemas.models import EventModel
from services.passport import events, outputs, persist, rules
from services.passport.rules import Passport
from tests.integration.processes import Service, services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KILLS = int(os.environ.get("PASSPORT_HUB_CRASH_KILLS", "20"))
NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def _traffic_and_intent(businesses: int, seed: int) -> tuple[list[EventModel], Expected]:
    """Synthetic businesses' events, some sent twice, in a lightly shuffled order; and
    what their generator meant by them (businesses, passports, leads): an oracle that
    owes nothing to services.passport.rules."""
    rng = random.Random(seed)
    synthetic = Synthetic(seed=seed, clock=lambda: NOW)
    out: list[EventModel] = []
    for _ in range(businesses):
        unit = synthetic.business()
        out.extend(unit)
        out.extend(event for event in unit if rng.random() < 0.05)  # delivered twice
    # Neighbours swap now and then: reports of one business cross topics out of order.
    for i in range(0, len(out) - 1, 7):
        out[i], out[i + 1] = out[i + 1], out[i]
    return out, synthetic.expected


def _as_intended(outputs_: Outputs, intent: Expected) -> None:
    """The outputs against the generator's own count, not the rules' replay."""
    issued = sum(1 for p in outputs_.snapshots.values() if p["state"] == "passport_issued")
    assert (len(outputs_.snapshots), issued, len(outputs_.lead_event_ids)) == (
        intent.businesses, intent.passports, intent.leads)


def _expected(sent: list[EventModel]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """What a run without crashes gives: the rules over the same events."""
    passports: dict[str, Passport] = {}
    leads: set[str] = set()
    for event in sent:
        datum = event.to_avro()
        parsed = events.parse(event.RECORD, datum)
        outcome = rules.apply(passports.get(parsed.siren) or Passport(parsed.siren), parsed,
                              datum)
        passports[parsed.siren] = outcome.passport
        leads.update(lead.lead_id for lead in outcome.leads)
    return {siren: persist.dump(p) for siren, p in passports.items()}, leads


class Outputs:
    """Follows pn.passports.v1 and pn.lead-requests.v1."""

    def __init__(self, settings: Settings) -> None:
        self.reader = TopicReader(settings, [catalog.PASSPORTS, catalog.LEAD_REQUESTS])
        self.reader.start()
        self.snapshots: dict[str, dict[str, Any]] = {}
        self.lead_event_ids: dict[str, set[str]] = defaultdict(set)
        self.regressions: list[str] = []
        """Businesses whose snapshot lost events the one before it had: a reader saw their
        passport go back (a stale snapshot published after a newer one)."""

    def poll(self) -> None:
        for inbound in self.reader.poll(timeout_ms=200):
            if inbound.topic == catalog.PASSPORTS:
                siren, datum = inbound.datum["siren"], inbound.datum
                before = self.snapshots.get(siren)
                if before is not None and not (set(before["applied_event_ids"])
                                               <= set(datum["applied_event_ids"])):
                    self.regressions.append(siren)
                self.snapshots[siren] = datum
            else:
                self.lead_event_ids[inbound.datum["lead_id"]].add(inbound.datum["event_id"])

    def passports(self) -> dict[str, dict[str, Any]]:
        return {siren: persist.dump(outputs.restore(datum))
                for siren, datum in self.snapshots.items()}

    def matches(self, expected: dict[str, dict[str, Any]], leads: set[str]) -> bool:
        return set(self.lead_event_ids) == leads and self.passports() == expected

    def close(self) -> None:
        self.reader.close()


def _feed(settings: Settings, sent: list[EventModel], seconds: float) -> threading.Thread:
    """Publish ``sent`` evenly over ``seconds`` from a thread (the partners, meanwhile)."""
    def run() -> None:
        publisher = Publisher(settings)
        chunks = max(1, int(seconds * 4))
        size = -(-len(sent) // chunks)
        for start in range(0, len(sent), size):
            failures = publisher.publish_records(
                [publisher.record(event) for event in sent[start:start + size]])
            assert not any(failures), failures
            time.sleep(0.25)
        publisher.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _await(outputs_: Outputs, expected: dict[str, dict[str, Any]], leads: set[str],
           timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        outputs_.poll()
        if outputs_.matches(expected, leads):
            return
    got = outputs_.passports()
    wrong = sorted(s for s in expected if got.get(s) != expected[s])
    raise AssertionError(
        f"{len(wrong)} of {len(expected)} passports differ (first: {wrong[:3]}); "
        f"leads missing {sorted(leads - set(outputs_.lead_event_ids))[:3]}, "
        f"unexpected {sorted(set(outputs_.lead_event_ids) - leads)[:3]}")


def _one_id_per_lead(outputs_: Outputs) -> None:
    twice = {lead: ids for lead, ids in outputs_.lead_event_ids.items() if len(ids) > 1}
    assert twice == {}, f"leads requested under two event ids: {twice}"


def test_sigkill_at_random_moments_loses_nothing_and_applies_nothing_twice(
        topics: Settings, tmp_path: Path) -> None:
    rng = random.Random(20261126)
    sent, intent = _traffic_and_intent(businesses=400, seed=7)
    expected, leads = _expected(sent)
    watch = Outputs(topics)
    feeder = _feed(topics, sent, seconds=KILLS * 2.0)
    data = tmp_path / "passport"
    kills_in_flight = 0
    with services() as running:
        for round_ in range(KILLS):
            # A new group each time: positions come from the store, and a dead
            # member of the old group would hold the next join for its session timeout.
            service = Service(topics, data, f"{topics.group_prefix}-r{round_}")
            running.append(service)
            assert service.assigned.wait(60), "".join(service.lines[-20:])
            time.sleep(rng.uniform(0.0, 1.5))
            kills_in_flight += service.process.poll() is None
            service.kill()
            watch.poll()
        feeder.join(timeout=120)
        running.append(Service(topics, data, f"{topics.group_prefix}-final"))
        _await(watch, expected, leads, timeout_s=180)
    _one_id_per_lead(watch)
    _as_intended(watch, intent)
    watch.close()
    assert kills_in_flight == KILLS  # every kill hit a running service
    assert len(expected) == 400
    assert leads  # the traffic asks for leads, so losing one would show


def test_two_instances_share_the_partitions_and_one_takes_over_the_others(
        topics: Settings, tmp_path: Path) -> None:
    sent, intent = _traffic_and_intent(businesses=300, seed=11)
    expected, leads = _expected(sent)
    watch = Outputs(topics)
    group = f"{topics.group_prefix}-pair"
    with services() as running:
        first = Service(topics, tmp_path / "a", group)
        running.append(first)
        assert first.assigned.wait(60), "".join(first.lines[-20:])
        feeder = _feed(topics, sent, seconds=12)
        second = Service(topics, tmp_path / "b", group)
        running.append(second)
        assert second.assigned.wait(90), "".join(second.lines[-20:])
        time.sleep(2)
        first.kill()  # mid-traffic: its partitions move to the second instance
        feeder.join(timeout=120)
        _await(watch, expected, leads, timeout_s=180)
        assert second.restored >= 1, "the survivor never restored a partition from the topic"
    _one_id_per_lead(watch)
    _as_intended(watch, intent)
    watch.close()
