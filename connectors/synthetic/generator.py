"""A pure source of plausible partner traffic, and what the hub should make of it.

Resellers first, then businesses one after another: enrolment, completed
modules, maybe an offer request. Everything comes from one seeded
``random.Random`` and an injected clock, so a seed replays the same traffic
(event ids included) and tests need no broker. Alongside, the generator counts
what a correct hub must produce from it: passports and leads.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from connectors.synthetic.identities import identity, siren, slug
from connectors.synthetic.resellers import DEFAULT_RESELLERS, WALKTHROUGH, profiles
from schemas.models import (
    BusinessEnrolled,
    EventModel,
    ModuleCompleted,
    OfferRequested,
    TrainingFeedback,
)
from schemas.reference import CATEGORIES, DEPARTEMENTS, MODULES

#: Modules a business needs to earn its passport (docs/architecture.md).
PASSPORT_MODULES = 3
#: How many modules a business completes (0-5), as weights: most stop at 3.
_MODULE_COUNT_WEIGHTS = (12, 12, 14, 30, 17, 15)
_CONSENT_RATE = 0.8
#: Where the businesses are: every département but the README walk-through's.
_DEPARTEMENTS = sorted(set(DEPARTEMENTS) - {WALKTHROUGH})
_OFFER_RATE = 0.4
_TRAINER_FIRST_RATE = 0.2
"""Share of businesses whose trainer reports a module before the advisor enrols them."""
_REPEAT_RATE = 0.1
"""Chance that a completion repeats a module already done (a retake, reported again)."""
_FEEDBACK_RATE = 0.5
"""Share of completed modules the trainee rates (the quality referential of the KPI page)."""
#: Scores 1-5, as weights: most trainees are content, a few are not.
_SCORE_WEIGHTS = (4, 6, 15, 40, 35)


@dataclass(slots=True)
class Expected:
    """What the hub must produce from the traffic generated so far."""

    businesses: int = 0
    passports: int = 0
    leads: int = 0
    events: int = 0

    def result(self) -> dict[str, int]:
        """The synthetic source's result line (``businesses`` first: the CLI looks for it)."""
        return {"businesses": self.businesses, "expected_passports": self.passports,
                "expected_leads": self.leads, "events": self.events}


class Synthetic:
    """Generates resellers and businesses; counts the passports and leads they imply."""

    def __init__(self, *, seed: int, clock: Callable[[], datetime],
                 resellers: int = DEFAULT_RESELLERS) -> None:
        self._rng = random.Random(seed)  # noqa: S311 - demo data: reproducible, not secret
        # Feedback draws from its own stream: the rest of the traffic (ids included) is the
        # same for a seed as before feedback was generated.
        self._feedback_rng = random.Random(seed ^ 0xFEED)  # noqa: S311 - as above
        self._clock = clock
        self._reseller_count = resellers
        self._sirens: set[str] = set()
        self.expected = Expected()

    def units(self, businesses: int | None = None) -> Iterator[list[EventModel]]:
        """The resellers, then each business's events, as lists (without end when None).

        Whole units, so a publisher that stops between two of them leaves the
        expectations exact: everything counted was handed out.
        """
        yield self.resellers()
        made = 0
        while businesses is None or made < businesses:
            yield self.business()
            made += 1

    def events(self, businesses: int | None = None) -> Iterator[EventModel]:
        """The events of ``units``, one by one."""
        for unit in self.units(businesses):
            yield from unit

    # -- resellers -------------------------------------------------------------------------

    def resellers(self) -> list[EventModel]:
        """The reseller profiles (connectors/synthetic/resellers.py)."""
        out: list[EventModel] = [*profiles(self._rng, self._reseller_count, self._clock(),
                                           self._uuid)]
        self.expected.events += len(out)
        return out

    # -- businesses ------------------------------------------------------------------------

    def business(self) -> list[EventModel]:
        """One business's events in the order partners report them."""
        rng = self._rng
        code = self._new_siren()
        who = identity(rng)
        departement = rng.choice(_DEPARTEMENTS)
        consent = rng.random() < _CONSENT_RATE
        completions = self._completions()
        passport = len(set(completions)) >= PASSPORT_MODULES
        offer = passport and rng.random() < _OFFER_RATE
        # The story happens over days and ends now: enrolment, modules, offer.
        steps = 1 + len(completions) + int(offer)
        times = self._timeline(steps)
        delegation = f"cefac-{departement.lower()}"
        enrolment = BusinessEnrolled(
            event_id=self._uuid(), occurred_at=times[0], source=delegation, siren=code,
            name=who.name, departement=departement, naf=who.naf, employees=who.employees,
            contact_email=who.email, advisor_id=f"adv-{departement.lower()}-{rng.randint(1, 12)}",
            delegation=delegation, consent_share_with_resellers=consent)
        modules: list[EventModel] = []
        for module_id, at in zip(completions, times[1:], strict=False):
            provider = MODULES[module_id].provider
            modules.append(ModuleCompleted(
                event_id=self._uuid(), occurred_at=at, source=slug(provider), siren=code,
                module_id=module_id, trainer_org=provider))
        events: list[EventModel] = [enrolment, *modules]
        feedback = self._feedback(code, delegation, modules)
        if modules and rng.random() < _TRAINER_FIRST_RATE:
            early = rng.randint(1, len(modules))
            events = [*modules[:early], enrolment, *modules[early:]]
        events.extend(feedback)
        if offer:
            events.append(OfferRequested(
                event_id=self._uuid(), occurred_at=times[-1], source=delegation, siren=code,
                category=rng.choice(sorted(CATEGORIES))))
        self.expected.events += len(events)
        self.expected.businesses += 1
        self.expected.passports += int(passport)
        self.expected.leads += int(offer and consent)
        return events

    def _feedback(self, code: str, delegation: str,
                  modules: list[EventModel]) -> list[EventModel]:
        """Some trainees rate the module they completed, as it is reported."""
        rng = self._feedback_rng
        out: list[EventModel] = []
        for done in modules:
            assert isinstance(done, ModuleCompleted)
            if rng.random() < _FEEDBACK_RATE:
                score = rng.choices(range(1, 6), _SCORE_WEIGHTS)[0]
                out.append(TrainingFeedback(
                    event_id=UUID(int=rng.getrandbits(128), version=4),
                    occurred_at=done.occurred_at, source=done.source, siren=code,
                    module_id=done.module_id, trainer_org=done.trainer_org,
                    delegation=delegation, score=score))
        return out

    def _completions(self) -> list[str]:
        rng = self._rng
        count = rng.choices(range(len(_MODULE_COUNT_WEIGHTS)), _MODULE_COUNT_WEIGHTS)[0]
        done: list[str] = []
        catalogue = sorted(MODULES)
        for _ in range(count):
            if done and rng.random() < _REPEAT_RATE:
                done.append(rng.choice(done))
            else:
                done.append(rng.choice([m for m in catalogue if m not in done]))
        return done

    def _timeline(self, steps: int) -> list[datetime]:
        """``steps`` instants a few hours to two days apart, the last one now."""
        end = self._clock()
        gaps = [timedelta(minutes=self._rng.randint(30, 48 * 60)) for _ in range(steps - 1)]
        times = [end]
        for gap in reversed(gaps):
            times.insert(0, times[0] - gap)
        return times

    def _new_siren(self) -> str:
        while (code := siren(self._rng)) in self._sirens:
            pass
        self._sirens.add(code)
        return code

    def _uuid(self) -> UUID:
        # From the seeded generator, not uuid4(): the same seed replays the same ids.
        return UUID(int=self._rng.getrandbits(128), version=4)
