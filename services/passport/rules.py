"""The passport state machine: one business's state, and one event applied to it (pure).

No I/O and no clock: every time here is an event's ``occurred_at``, so replaying
the same events gives the same passport and the same leads, whatever the order
they arrived in within the limits written below.

- A business earns its passport with 3 DISTINCT modules; the issue time is the
  completion time of the third one, computed from each module's earliest
  completion, so late or out-of-order reports give the same issue time.
- An offer request becomes a lead only if the passport was issued at or before
  the request and the business consented to share its contact data. Eligibility
  is decided once, when the request is applied: a request that arrives before
  the training that would have made it eligible stays without a lead.
- Events of a business not yet enrolled are parked (as their datums) and applied
  in ``occurred_at`` order when the enrolment arrives.
- An event id already applied (or parked) changes nothing.
- Attendance and feedback are recorded as applied and count for nothing toward
  the passport. A consent withdrawal turns consent off for good (a later
  enrolment does not turn it back on: consent is given again explicitly, by an
  event the contract does not have yet). An erasure request drops the contact
  data; the SIREN, the modules and the counts stay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from hub.ids import derive
from services.passport import events
from services.passport.events import (
    ConsentOff,
    Enrolled,
    Erasure,
    Event,
    ModuleDone,
    OfferAsked,
)

#: Distinct modules a business completes to earn its passport (DOMAIN.md).
MODULES_FOR_PASSPORT = 3

Status = Literal["enrolled", "in_training", "passport_issued"]
IneligibleReason = Literal["no_passport", "no_consent"]


@dataclass(frozen=True, slots=True)
class Profile:
    """What the latest enrolment says about the business."""

    name: str
    departement: str
    region: str
    naf: str | None
    contact_email: str | None
    consent: bool
    as_of: int
    """``occurred_at`` of the enrolment it comes from: an older one never overwrites it."""


@dataclass(frozen=True, slots=True)
class Parked:
    """An event that arrived before its business's enrolment, kept as its JSON datum."""

    record: str
    datum: Mapping[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.datum["event_id"])

    @property
    def occurred_at(self) -> int:
        return int(self.datum["occurred_at"])


@dataclass(frozen=True, slots=True)
class Lead:
    """A lead the passport asks routing to place (becomes a ``LeadRequested``)."""

    lead_id: str
    event_id: str
    occurred_at: int
    siren: str
    name: str
    departement: str
    region: str
    category: str
    naf: str | None
    contact_email: str | None


@dataclass(frozen=True, slots=True)
class Passport:
    """One business's passport state."""

    siren: str
    profile: Profile | None = None
    modules: Mapping[str, int] = field(default_factory=dict)
    """Module id → earliest completion time (epoch ms)."""
    offer_requests: int = 0
    leads_requested: int = 0
    applied: frozenset[str] = frozenset()
    """Ids of the events applied: a redelivered event is recognised and ignored."""
    parked: tuple[Parked, ...] = ()
    last_event_at: int | None = None
    """Latest ``occurred_at`` among the applied events."""
    last_ineligible_reason: IneligibleReason | None = None
    consent_withdrawn: bool = False
    erased: bool = False

    @property
    def issued_at(self) -> int | None:
        """When the passport was issued (epoch ms), or None."""
        if len(self.modules) < MODULES_FOR_PASSPORT:
            return None
        return sorted(self.modules.values())[MODULES_FOR_PASSPORT - 1]

    @property
    def status(self) -> Status:
        if self.issued_at is not None:
            return "passport_issued"
        return "in_training" if self.modules else "enrolled"

    @property
    def modules_completed(self) -> tuple[str, ...]:
        """Distinct module ids, in completion order (ties by id, for determinism)."""
        return tuple(sorted(self.modules, key=lambda module: (self.modules[module], module)))

    def seen(self, event_id: str) -> bool:
        return event_id in self.applied or any(p.event_id == event_id for p in self.parked)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The state after one event, and the leads it asks for."""

    passport: Passport
    leads: tuple[Lead, ...] = ()


def apply(passport: Passport, event: Event, datum: Mapping[str, Any]) -> Outcome:
    """Apply one event (``datum`` is its Avro datum, kept if the event must be parked)."""
    if event.siren != passport.siren:
        raise ValueError(f"event for {event.siren} applied to passport {passport.siren}")
    if passport.seen(event.event_id):
        return Outcome(passport)
    if isinstance(event, Enrolled):
        return _enrol(passport, event)
    if passport.profile is None:
        parked = Parked(event.record, events.to_json(datum))
        return Outcome(replace(passport, parked=(*passport.parked, parked)))
    return _apply_enrolled(passport, passport.profile, event)


def _enrol(passport: Passport, event: Enrolled) -> Outcome:
    profile = passport.profile
    if profile is None or event.occurred_at >= profile.as_of:
        profile = Profile(event.name, event.departement, event.region, event.naf,
                          None if passport.erased else event.contact_email,
                          event.consent and not passport.consent_withdrawn, event.occurred_at)
    waiting = sorted(passport.parked, key=lambda p: (p.occurred_at, p.event_id))
    passport = _applied(replace(passport, profile=profile, parked=()), event)
    leads: list[Lead] = []
    for parked in waiting:
        # Parsed with the same code when parked, so this parses (unless the
        # catalogue lost a module or category since: then InvalidEventError, and the
        # enrolment goes to the dead letters with the cause, for ops to redrive).
        waiting_event = events.parse(parked.record, parked.datum)
        outcome = _apply_enrolled(passport, profile, waiting_event)
        passport = outcome.passport
        leads.extend(outcome.leads)
    return Outcome(passport, tuple(leads))


def _apply_enrolled(passport: Passport, profile: Profile, event: Event) -> Outcome:
    if isinstance(event, Enrolled):  # never here: enrolments go through _enrol
        raise events.InvalidEventError("an enrolment reached the enrolled-events path")
    if isinstance(event, ConsentOff):
        passport = replace(passport, consent_withdrawn=True,
                           profile=replace(profile, consent=False))
        return Outcome(_applied(passport, event))
    if isinstance(event, Erasure):
        passport = replace(passport, erased=True, profile=replace(profile, contact_email=None))
        return Outcome(_applied(passport, event))
    if not isinstance(event, ModuleDone | OfferAsked):  # attendance, feedback
        return Outcome(_applied(passport, event))
    if isinstance(event, ModuleDone):
        earliest = min(event.occurred_at, passport.modules.get(event.module_id, event.occurred_at))
        modules = {**passport.modules, event.module_id: earliest}
        return Outcome(_applied(replace(passport, modules=modules), event))
    passport = replace(passport, offer_requests=passport.offer_requests + 1)
    reason = _ineligible(passport, profile, event)
    if reason is not None:
        return Outcome(_applied(replace(passport, last_ineligible_reason=reason), event))
    lead = Lead(
        lead_id=derive(event.event_id, "lead"),
        event_id=derive(event.event_id, "lead-requested"),
        occurred_at=event.occurred_at,
        siren=passport.siren,
        name=profile.name,
        departement=profile.departement,
        region=profile.region,
        category=event.category,
        naf=profile.naf,
        contact_email=profile.contact_email,
    )
    passport = replace(passport, leads_requested=passport.leads_requested + 1)
    return Outcome(_applied(passport, event), (lead,))


def _ineligible(passport: Passport, profile: Profile, event: OfferAsked) -> IneligibleReason | None:
    issued_at = passport.issued_at
    if issued_at is None or issued_at > event.occurred_at:
        return "no_passport"
    if not profile.consent:
        return "no_consent"
    return None


def _applied(passport: Passport, event: Event) -> Passport:
    last = passport.last_event_at
    return replace(
        passport,
        applied=passport.applied | {event.event_id},
        last_event_at=event.occurred_at if last is None else max(last, event.occurred_at),
    )
