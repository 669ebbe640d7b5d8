"""Rolling broker crashes under a steady load (three brokers, acks=all, min.insync.replicas=2).

Partners post over HTTP all along while the passport and routing services consume.
Each broker in turn is SIGKILLed, kept down while the API goes on acknowledging, then
restarted and waited for back in every ISR; last, the leader of the partition holding
the most records of the busiest input topic gets the same. At the end every event the
API answered 202 for is in the final passports exactly once, and every lead the
passports requested was decided once by the router, none of the services restarted.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from hub.reader import TopicReader
from schemas import catalog
from tests.faults.conftest import (
    Cluster,
    Components,
    Partner,
    assert_applied_once,
    busiest_partition,
    final_passports,
    siren,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(480)]

#: A broker stays down at least this long: past ``broker.session.timeout.ms`` (5 s), so
#: the controller has fenced it and moved its leaderships while the load goes on.
_DOWN_S = 7.0
#: ... and until the API has acknowledged this many events without it.
_ACKED_WHILE_DOWN = 20
#: Between two events, so the load stays steady and leaves the brokers some CPU.
_PACE_S = 0.02


class Load:
    """Partner traffic in a thread, one business after the other (enrolment, three
    modules, one or two offer requests), until stopped between two businesses."""

    def __init__(self, partner: Partner) -> None:
        self.partner = partner
        self.businesses = 0
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        partner = self.partner
        try:
            while not self._stop.is_set():
                business = siren(partner.rng)
                if business in partner.acknowledged:
                    continue
                partner.enrol_and_train(business, name=f"Entreprise {self.businesses}",
                                        departement="78", consent_share_with_resellers=True,
                                        contact_email="contact@example.fr")
                for _ in range(partner.rng.randint(1, 2)):
                    partner.request_offer(business)
                self.businesses += 1
        except BaseException as exc:  # handed to the test's thread by ``stop``
            self._error = exc

    @property
    def acknowledged(self) -> int:
        return self.partner.answers[202]

    def wait_acknowledged(self, count: int, timeout_s: float = 90) -> None:
        """Wait until the API has acknowledged ``count`` events in all."""
        deadline = time.monotonic() + timeout_s
        while self.acknowledged < count:
            assert self._thread.is_alive(), f"the load stopped: {self._error!r}"
            assert time.monotonic() < deadline, (
                f"{self.acknowledged} events acknowledged, not {count}, in {timeout_s}s")
            time.sleep(0.2)

    @contextmanager
    def running(self) -> Iterator[Load]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=180)
        assert not self._thread.is_alive(), "the load did not stop"
        if self._error is not None:
            raise self._error


@dataclass
class Kill:
    """One crash: which node, why, and what partners saw from the kill until the node
    was back in every ISR."""

    node: int
    why: str
    answers: Counter[int]
    acknowledged_while_down: int
    seconds: float


def _crash_and_restart(cluster: Cluster, load: Load, node: int, why: str) -> Kill:
    answers = load.partner.answers
    seen = Counter(answers)
    started = time.monotonic()
    cluster.kill(node)
    time.sleep(_DOWN_S)
    load.wait_acknowledged(seen[202] + _ACKED_WHILE_DOWN)  # one broker down: writes go on
    while_down = answers[202] - seen[202]
    cluster.restart(node)
    cluster.wait_isr()
    return Kill(node, why, Counter(answers) - seen, while_down, time.monotonic() - started)


def _leads(components: Components, want: set[str], timeout_s: float = 60) -> dict[str, set[str]]:
    """The event ids of each lead's first change (version 1) on ``pn.leads.v1``, read
    until every lead of ``want`` has one (or ``timeout_s``), then a little longer."""
    reader = TopicReader(components.settings, [catalog.LEADS])
    reader.start()
    first: dict[str, set[str]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not want <= set(first):
            for record in reader.poll(timeout_ms=500):
                if record.datum["version"] == 1:
                    first.setdefault(record.datum["lead_id"], set()).add(record.datum["event_id"])
        for record in reader.poll(timeout_ms=2000):
            if record.datum["version"] == 1:
                first.setdefault(record.datum["lead_id"], set()).add(record.datum["event_id"])
    finally:
        reader.close()
    return first


def _summary(kills: list[Kill], partner: Partner, businesses: int) -> str:
    lines = [f"rolling broker crashes: {len(kills)} kills, {businesses} businesses, "
             f"{partner.answers[202]} events acknowledged, answers {dict(partner.answers)}"]
    lines += [f"  kill node {k.node} ({k.why}): {k.seconds:.0f} s to back in ISR, "
              f"{k.answers[202]} acknowledged ({k.acknowledged_while_down} while down), "
              f"{k.answers[503]} answered 503, {k.answers[0]} unanswered" for k in kills]
    return "\n".join(lines)


def test_rolling_broker_crashes_under_load_lose_nothing_acknowledged(
        cluster: Cluster, components: Components, capsys: pytest.CaptureFixture[str]) -> None:
    cluster.wait_isr()
    components.start("connectors.api")
    components.start("services.passport")
    components.start("services.routing")
    components.wait_api_ready()
    kills: list[Kill] = []
    with httpx.Client(base_url=components.api) as client:
        partner = Partner(client, random.Random(17))
        load = Load(partner)
        with load.running():
            load.wait_acknowledged(100)
            for node in (1, 2, 3):
                kills.append(_crash_and_restart(cluster, load, node, "in turn"))
            busiest = busiest_partition(components.settings, (
                catalog.ENROLMENTS, catalog.TRAINING, catalog.OFFER_REQUESTS))
            kills.append(_crash_and_restart(
                cluster, load, busiest.leader,
                f"leader of {busiest.topic}/{busiest.partition}, {busiest.records} records"))
    passports = final_passports(components, partner.acknowledged, timeout_s=180)
    wanted = {o["lead_id"] for p in passports.values() for o in p["offers"] if o["lead_id"]}
    leads = _leads(components, wanted)
    with capsys.disabled():
        print(f"\n{_summary(kills, partner, load.businesses)}")
    stopped = [m for m in components.processes if not components.running(m)]
    assert not stopped, f"exited during the crashes: {stopped}"
    assert_applied_once(passports, partner.acknowledged)
    assert busiest.topic == catalog.TRAINING  # three module reports a business: the busiest
    # every offer made a lead (consent, passport issued), each decided once by the router
    assert sum(len(p["offers"]) for p in passports.values()) == len(wanted)
    assert set(leads) == wanted
    assert not {lead: ids for lead, ids in leads.items() if len(ids) > 1}, "decided twice"
