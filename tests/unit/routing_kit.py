"""What the routing tests share: resellers, requests and times of plain data, the fold of
emitted changes, and a seeded random run of the router that checks its invariants."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from schemas.fields import REJECT_REASONS
from schemas.reference import departements_of, region_of
from services.routing import records
from services.routing.registry import Absence, Registry, Reseller
from services.routing.router import Answer, InvalidAnswerError, LeadRequest, Router, RoutingRules
from services.routing.state import HELD, OPEN, Change, Lead, RouterState

PARIS = ZoneInfo("Europe/Paris")
HOUR = 3_600_000
DAY = 24 * HOUR
#: Every status a lead may rest in between two inputs (rejected/expired never do).
RESTING = frozenset({"assigned", "accepted", "queued", "won", "lost", "withdrawn", "duplicate"})
FINAL = RESTING - OPEN


def ms(when: datetime) -> int:
    """Epoch milliseconds of an aware datetime."""
    return int(when.timestamp() * 1000)


def paris(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


#: Tuesday 3 March 2026, 10:00 in Paris: a business day far from any holiday.
T0 = ms(paris(2026, 3, 3, 10))


def reseller(reseller_id: str, departements: Iterable[str] = ("78",), *,
             categories: Iterable[str] = ("e-commerce",), capacity: int = 10, weight: int = 1,
             status: str = "active", absences: Sequence[tuple[date, date]] = ()) -> Reseller:
    return Reseller(reseller_id, reseller_id.title(), frozenset(departements),
                    frozenset(categories), capacity=capacity, weight=weight, status=status,
                    absences=tuple(Absence(start, end) for start, end in absences))


def request(lead_id: str, *, siren: str = "732829320", departement: str = "78",
            category: str = "e-commerce", at: int = T0) -> LeadRequest:
    return LeadRequest(lead_id, siren, "Boulangerie Martin", departement,
                       region_of(departement), category, "contact@boulangerie.example", at)


def router(*resellers: Reseller, rules: RoutingRules | None = None) -> Router:
    return Router(Registry.of(resellers), rules=rules)


def fold(changes: Iterable[Change]) -> RouterState:
    """A fresh state fed the changes as a restore reads them: datum out, change back in."""
    state = RouterState()
    for change in changes:
        state.apply(records.change_of(records.datum(change, {"pn.lead-requests.v1/0": 1})))
    return state


def live_deadlines(state: RouterState) -> list[tuple[int, str]]:
    """The deadlines that can still fire (the heap also holds stale entries)."""
    return sorted({(d, i) for d, i in state.deadlines
                   if state.leads[i].held and state.leads[i].deadline_at == d})


def summary(state: RouterState) -> tuple[object, ...]:
    """What a restored state must share with the live one."""
    return (state.leads, state.standings, {k: v for k, v in state.open_counts.items() if v},
            state.open_by_request, live_deadlines(state), state.unplaced)


# -- random runs ------------------------------------------------------------------------------

CATEGORIES = ("e-commerce", "website-hosting", "security")
#: Two régions, so a run mixes département, région and national decisions.
REGIONS = ("11", "28")


def random_registry(rnd: random.Random, size: int) -> Registry:
    """``size`` resellers over two régions: 1-3 départements each (sometimes a whole
    région), 1-3 categories, weights 1-5, capacities 1-12."""
    resellers = []
    for n in range(size):
        region = rnd.choice(REGIONS)
        pool = departements_of(region)
        deps = pool if rnd.random() < 0.15 else tuple(rnd.sample(pool, rnd.randint(1, 3)))
        resellers.append(reseller(f"r{n:02d}", deps,
                                  categories=rnd.sample(CATEGORIES, rnd.randint(1, 3)),
                                  capacity=rnd.randint(1, 12), weight=rnd.randint(1, 5)))
    return Registry.of(resellers)


@dataclass
class Run:
    """A router driven by seeded random inputs, every change kept, invariants checked."""

    router: Router
    rnd: random.Random
    now: int = T0
    changes: list[Change] = field(default_factory=list)
    holders: dict[str, list[str]] = field(default_factory=dict)
    """Per lead, every reseller it was assigned to, in order."""
    held: dict[str, int] = field(default_factory=dict)
    """Open leads per reseller, counted from the changes alone."""
    max_open: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    spurious: list[Change] = field(default_factory=list)
    """Expiries of a lead that was not held past its deadline (state.due's double entries)."""
    _last: dict[str, Lead] = field(default_factory=dict)

    @classmethod
    def start(cls, seed: int, size: int, *, max_hops: int = 5) -> Run:
        rnd = random.Random(seed)
        return cls(Router(random_registry(rnd, size), rules=RoutingRules(max_hops=max_hops)),
                   rnd)

    def take(self, changes: list[Change]) -> None:
        """Keep the changes of one input, checking each as it comes and the state after."""
        for change in changes:
            lead = change.lead
            old = self._last.get(lead.lead_id)
            if old is None:
                self.ids.append(lead.lead_id)
            else:
                assert lead.version == old.version + 1, (old, lead)
                if old.held and old.holder is not None:
                    self.held[old.holder] -= 1
                if change.kind == "expired" and not (
                        old.held and old.deadline_at is not None and old.deadline_at <= change.at):
                    self.spurious.append(change)
            if change.kind in ("assigned", "reassigned"):
                assert lead.holder is not None
                self.holders.setdefault(lead.lead_id, []).append(lead.holder)
            if lead.held and lead.holder is not None:
                count = self.held[lead.holder] = self.held.get(lead.holder, 0) + 1
                assert count <= self.router.registry[lead.holder].capacity, (lead, count)
                self.max_open[lead.holder] = max(self.max_open.get(lead.holder, 0), count)
            self._last[lead.lead_id] = lead
        self.changes.extend(changes)
        state = self.router.state
        for change in changes:
            lead = state.leads[change.lead.lead_id]
            assert lead.status in RESTING, lead
            assert (lead.status in HELD) + (lead.status == "queued") + \
                (lead.status in FINAL) == 1
            if lead.holder is not None:
                assert state.open_count(lead.holder) == self.held.get(lead.holder, 0)
        assert not state.unplaced

    def step(self, n: int) -> None:
        """One random input: mostly new requests, then answers, withdrawals, time."""
        roll = self.rnd.random()
        if roll < 0.45 or not self.ids:
            self.take(self.router.request(self._request(n), self.now))
        elif roll < 0.5:
            known = self.router.state.leads[self.rnd.choice(self.ids)]
            again = request(f"L{n}", siren=known.siren, departement=known.departement,
                            category=known.category, at=self.now)
            self.take(self.router.request(again, self.now))
        elif roll < 0.9:
            self._answer()
        elif roll < 0.93:
            self.take(self.router.withdraw(self.rnd.choice(self.ids), "consent", self.now))
        else:
            self.now += self.rnd.choice((HOUR, 4 * HOUR, 12 * HOUR, DAY, 3 * DAY))
            self.take(self.router.expire(self.now))

    def _request(self, n: int) -> LeadRequest:
        departement = self.rnd.choice(departements_of(self.rnd.choice(REGIONS)))
        return request(f"L{n}", siren=f"{n:09d}", departement=departement,
                       category=self.rnd.choice(CATEGORIES), at=self.now)

    def _answer(self) -> None:
        """The holder of a random held lead answers (now and then, someone else does)."""
        leads = self.router.state.leads
        for _ in range(8):
            lead = leads[self.rnd.choice(self.ids)]
            if lead.held:
                break
        else:
            return
        assert lead.holder is not None
        if self.rnd.random() < 0.05:  # someone else answers: refused, nothing changes
            before = summary(self.router.state)
            try:
                self.router.answer(Answer(lead.lead_id, "intruder", "accepted"), self.now)
            except InvalidAnswerError:
                assert summary(self.router.state) == before
                return
            raise AssertionError("an answer from a non-holder was taken")
        if lead.status == "assigned":
            choice = self.rnd.choice(("accepted", "rejected", "rejected"))
        else:
            choice = self.rnd.choice(("won", "lost"))
        reason = self.rnd.choice(REJECT_REASONS) if choice == "rejected" else None
        self.take(self.router.answer(Answer(lead.lead_id, lead.holder, choice, reason),
                                     self.now))

    def run(self, steps: int) -> Run:
        for n in range(steps):
            self.step(n)
        return self
