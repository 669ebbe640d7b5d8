"""What the hub must make of a plan, said simply and owing nothing to the hub's own rules.

This is the programme's rule book as docs/architecture.md ("The programme") and
docs/routing.md state it, not a second copy of ``services.passport.rules``:

- a business holds its passport once it completed 3 distinct modules; it was issued
  when the third distinct module was first completed;
- an offer request becomes a lead when the business held its passport when it asked
  and consents (its enrolment said so and it withdrew nothing before); a request
  for a category the business already has an open lead in is that lead's duplicate;
- a consent withdrawal or an erasure cancels the business's open leads (``withdrawn``)
  and, for an erasure, its contact data.

What this cannot say simply (which reseller gets a lead, how the CRMs' answers move it)
is compared with a crash-free run of the same plan instead (reliability/checks.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from reliability.plan import Plan
from schemas.models import (
    BusinessEnrolled,
    ConsentWithdrawn,
    ErasureRequested,
    EventModel,
    ModuleCompleted,
    OfferRequested,
    TrainingFeedback,
)

#: Distinct modules of a passport (docs/architecture.md, The programme).
PASSPORT_MODULES = 3


@dataclass(frozen=True, slots=True)
class Business:
    """What one business's passport must say once everything is in."""

    siren: str
    state: str
    """``enrolled``, ``in_training`` or ``passport_issued``."""
    modules: frozenset[str]
    issued_at: datetime | None
    feedback: int
    consent: bool
    """Consent as it stands at the end."""
    consent_withdrawn: bool
    erased: bool
    offers: dict[str, str] = field(default_factory=dict)
    """Offer event id → ``lead_requested``, ``no_passport`` or ``no_consent``."""


@dataclass(frozen=True, slots=True)
class Lead:
    """A lead the hub must hold, named by the offer that asked for it."""

    offer_id: str
    siren: str
    category: str
    duplicate: bool
    """Asked while the business had an open lead in that category: ``duplicate`` at once."""
    withdrawn: str | None
    """Why it must end ``withdrawn`` if it is still open then (``consent_withdrawn`` or
    ``erased``), or None."""


@dataclass(frozen=True, slots=True)
class Expected:
    """The whole expectation of a plan."""

    businesses: dict[str, Business]
    leads: dict[str, Lead]
    """By offer event id."""

    @property
    def passports(self) -> int:
        return sum(1 for b in self.businesses.values() if b.state == "passport_issued")


def issued_at(completions: Iterable[ModuleCompleted]) -> datetime | None:
    """When a passport was issued: the first completion of the third distinct module."""
    first: dict[str, datetime] = {}
    for done in completions:
        first[done.module_id] = min(done.occurred_at, first.get(done.module_id, done.occurred_at))
    times = sorted(first.values())
    return times[PASSPORT_MODULES - 1] if len(times) >= PASSPORT_MODULES else None


def expect(plan: Plan) -> Expected:
    """The expectation of ``plan`` played in its phases' order."""
    events = list(plan.events())
    by_siren: dict[str, list[EventModel]] = {}
    for event in events:
        siren = getattr(event, "siren", None)
        if isinstance(siren, str):
            by_siren.setdefault(siren, []).append(event)
    businesses: dict[str, Business] = {}
    for siren, own in by_siren.items():
        businesses[siren] = _business(siren, own)
    return Expected(businesses, _leads(plan, businesses))


def _business(siren: str, own: list[EventModel]) -> Business:
    enrolment = next(e for e in own if isinstance(e, BusinessEnrolled))
    completions = [e for e in own if isinstance(e, ModuleCompleted)]
    issued = issued_at(completions)
    modules = frozenset(e.module_id for e in completions)
    withdrawn = any(isinstance(e, ConsentWithdrawn | ErasureRequested) for e in own)
    erased = any(isinstance(e, ErasureRequested) for e in own)
    consented = bool(enrolment.consent_share_with_resellers)
    offers: dict[str, str] = {}
    for offer in (e for e in own if isinstance(e, OfferRequested)):
        # Offers are all in before any privacy request (the plan's phases).
        if issued is None or issued > offer.occurred_at:
            offers[str(offer.event_id)] = "no_passport"
        elif not consented:
            offers[str(offer.event_id)] = "no_consent"
        else:
            offers[str(offer.event_id)] = "lead_requested"
    state = ("passport_issued" if issued is not None
             else "in_training" if modules else "enrolled")
    return Business(siren=siren, state=state, modules=modules, issued_at=issued,
                    feedback=sum(1 for e in own if isinstance(e, TrainingFeedback)),
                    consent=consented and not withdrawn, consent_withdrawn=withdrawn,
                    erased=erased, offers=offers)


def _leads(plan: Plan, businesses: dict[str, Business]) -> dict[str, Lead]:
    """The leads, in the order the offers are sent: the second request of a category is
    the first one's duplicate (no answer comes before the offers are all in)."""
    closed: dict[str, str] = {}
    for event in plan.privacy:
        closed[event.siren] = ("erased" if isinstance(event, ErasureRequested)
                               else "consent_withdrawn")
    open_categories: set[tuple[str, str]] = set()
    out: dict[str, Lead] = {}
    for offer in plan.offers:
        if businesses[offer.siren].offers.get(str(offer.event_id)) != "lead_requested":
            continue
        pair = (offer.siren, offer.category)
        out[str(offer.event_id)] = Lead(str(offer.event_id), offer.siren, offer.category,
                                        duplicate=pair in open_categories,
                                        withdrawn=closed.get(offer.siren))
        open_categories.add(pair)
    return out
