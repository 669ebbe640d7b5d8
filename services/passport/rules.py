"""The passport state machine: one business's state, and one event applied to it (pure).

No I/O and no clock: every time here is an event's ``occurred_at``, so replaying
the same events gives the same passport and the same leads, whatever the order
they arrived in, within the limits written below.

- A business earns its passport with 3 DISTINCT modules; the issue time is the
  completion time of the third one, computed from each module's earliest
  completion, so late or out-of-order reports give the same issue time.
  Attendance without completion and feedback count for nothing toward it.
- An offer request becomes a lead only if the passport was issued at or before
  the request and the business consents (latest enrolment) to share its contact
  data. Every request is kept with its decision. A refused one is judged again
  whenever the passport or the consent changes, so a request that arrives before
  the training reports that make it eligible gets its lead all the same, with
  the same lead id as in order. A lead once requested is never taken back.
- Consent withdrawal and erasure act from when they are APPLIED, whatever their
  ``occurred_at``: after them no lead is ever requested, even for an older offer
  that arrives late (the one place where arrival order matters: privacy wins).
  Withdrawal is for good (a later enrolment does not turn consent back on);
  erasure drops the contact data for good and implies withdrawal. The SIREN,
  the modules, the offers and the counts stay.
- Events of a business not yet enrolled are parked (as their datums) and applied
  in ``occurred_at`` order when the enrolment arrives; ``expire`` takes out those
  parked longer than the operator's bound (they go to the dead letters).
- An event id already applied (or parked) changes nothing.
- Feedback is kept per business (module, trainer organisation, delegation,
  score): the read model sums it into the quality referential.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, replace
from typing import Any, Literal

from hub.ids import derive
from schemas.frozen import frozen
from services.passport import events
from services.passport.events import (
    ConsentOff,
    Enrolled,
    Erasure,
    Event,
    Feedback,
    ModuleDone,
    OfferAsked,
)

#: Distinct modules a business completes to earn its passport (docs/architecture.md, The programme).
MODULES_FOR_PASSPORT = 3

Status = Literal["awaiting_enrolment", "enrolled", "in_training", "passport_issued"]
IneligibleReason = Literal["no_passport", "no_consent"]
Decision = Literal["lead_requested", "no_passport", "no_consent"]


@frozen
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
    enrolment_id: str = ""
    """That enrolment's event id: between two of the same time, the greater id wins."""


@frozen
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


@frozen
class Offer:
    """An offer request and what became of it."""

    event_id: str
    occurred_at: int
    category: str
    decision: Decision
    lead_id: str | None = None


@frozen
class Score:
    """One feedback given by the business on a module."""

    event_id: str
    module_id: str
    trainer_org: str | None
    delegation: str | None
    score: int


@frozen
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


@frozen
class Passport:
    """One business's passport state."""

    siren: str
    profile: Profile | None = None
    modules: Mapping[str, int] = field(default_factory=dict)
    """Module id → earliest completion time (epoch ms)."""
    offers: tuple[Offer, ...] = ()
    """Offer requests in (occurred_at, event id) order, each with its decision."""
    feedback: tuple[Score, ...] = ()
    """Feedback in event id order."""
    applied: frozenset[str] = frozenset()
    """Ids of the events applied: a redelivered event is recognised and ignored."""
    parked: tuple[Parked, ...] = ()
    last_event_at: int | None = None
    """Latest ``occurred_at`` among the applied and parked events."""
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
        if self.profile is None:
            return "awaiting_enrolment"
        if self.issued_at is not None:
            return "passport_issued"
        return "in_training" if self.modules else "enrolled"

    @property
    def modules_completed(self) -> tuple[str, ...]:
        """Distinct module ids, in completion order (ties by id, for determinism)."""
        return tuple(sorted(self.modules, key=lambda module: (self.modules[module], module)))

    @property
    def offer_requests(self) -> int:
        return len(self.offers)

    @property
    def leads_requested(self) -> int:
        return sum(1 for offer in self.offers if offer.decision == "lead_requested")

    @property
    def consents(self) -> bool:
        """Whether contact data may go to a reseller now."""
        return (self.profile is not None and self.profile.consent
                and not self.consent_withdrawn and not self.erased)

    def seen(self, event_id: str) -> bool:
        return event_id in self.applied or (
            bool(self.parked) and any(p.event_id == event_id for p in self.parked))


@frozen
class Withdrawal:
    """A requested lead routing must cancel: the business withdrew consent or was erased
    (becomes a ``LeadWithdrawn``)."""

    lead_id: str
    event_id: str
    occurred_at: int
    siren: str
    reason: str
    """consent_withdrawn | erased."""


@frozen
class Outcome:
    """The state after one event, the leads it asks for, and those it withdraws."""

    passport: Passport
    leads: tuple[Lead, ...] = ()
    withdrawals: tuple[Withdrawal, ...] = ()


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
        return Outcome(replace(passport, parked=(*passport.parked, parked),
                               last_event_at=_latest(passport.last_event_at, event.occurred_at)))
    return _apply_enrolled(passport, passport.profile, event)


def expire(passport: Passport, older_than: int) -> tuple[Passport, tuple[Parked, ...]]:
    """Take out the parked events that occurred before ``older_than`` (epoch ms).

    They are NOT remembered as applied: they go to the dead letters, and an
    operator who redrives one (same event id) once the enrolment is in gets it
    applied. A replay that meets one again parks it again, until the next sweep.
    """
    gone = tuple(p for p in passport.parked if p.occurred_at < older_than)
    if not gone:
        return passport, ()
    kept = tuple(p for p in passport.parked if p.occurred_at >= older_than)
    return replace(passport, parked=kept), gone


def _enrol(passport: Passport, event: Enrolled) -> Outcome:
    profile = passport.profile
    if profile is None or (event.occurred_at, event.event_id) > (profile.as_of,
                                                                profile.enrolment_id):
        profile = Profile(event.name, event.departement, event.region, event.naf,
                          None if passport.erased else event.contact_email,
                          event.consent and not passport.consent_withdrawn, event.occurred_at,
                          event.event_id)
    waiting = sorted(passport.parked, key=lambda p: (p.occurred_at, p.event_id))
    passport = _applied(passport, event, profile=profile, parked=())
    leads: list[Lead] = []
    withdrawals: list[Withdrawal] = []
    for parked in waiting:
        # Parsed with the same code when parked, so this parses (unless the
        # catalogue lost a module or category since: then InvalidEventError, and the
        # enrolment goes to the dead letters with the cause, for ops to redrive).
        waiting_event = events.parse(parked.record, parked.datum)
        outcome = _apply_enrolled(passport, profile, waiting_event)
        passport = outcome.passport
        leads.extend(outcome.leads)
        withdrawals.extend(outcome.withdrawals)
    judged = _rejudge(passport, profile)
    return Outcome(judged.passport, (*leads, *judged.leads), tuple(withdrawals))


def _apply_enrolled(passport: Passport, profile: Profile, event: Event) -> Outcome:
    if isinstance(event, Enrolled):  # never here: enrolments go through _enrol
        raise events.InvalidEventError("an enrolment reached the enrolled-events path")
    if isinstance(event, ModuleDone):
        earliest = min(event.occurred_at, passport.modules.get(event.module_id, event.occurred_at))
        modules = {**passport.modules, event.module_id: earliest}
        return _rejudge(_applied(passport, event, modules=modules), profile)
    if isinstance(event, ConsentOff):
        return Outcome(_applied(passport, event, consent_withdrawn=True,
                                profile=replace(profile, consent=False)),
                       withdrawals=_withdrawals(passport, event, "consent_withdrawn"))
    if isinstance(event, Erasure):
        return Outcome(_applied(passport, event, erased=True, consent_withdrawn=True,
                                profile=replace(profile, contact_email=None, consent=False)),
                       withdrawals=_withdrawals(passport, event, "erased"))
    if isinstance(event, Feedback):
        score = Score(event.event_id, event.module_id, event.trainer_org, event.delegation,
                      event.score)
        feedback = tuple(sorted((*passport.feedback, score), key=lambda f: f.event_id))
        return Outcome(_applied(passport, event, feedback=feedback))
    if isinstance(event, OfferAsked):
        offer = Offer(event.event_id, event.occurred_at, event.category, "no_passport")
        offers = tuple(sorted((*passport.offers, offer), key=lambda o: (o.occurred_at, o.event_id)))
        return _rejudge(_applied(passport, event, offers=offers), profile)
    return Outcome(_applied(passport, event))  # attendance: recorded, counts for nothing


def _withdrawals(passport: Passport, event: Event, reason: str) -> tuple[Withdrawal, ...]:
    """Every lead the passport requested, to cancel (routing ignores those already closed)."""
    return tuple(Withdrawal(offer.lead_id, derive(event.event_id, f"withdraw/{offer.lead_id}"),
                            event.occurred_at, passport.siren, reason)
                 for offer in passport.offers
                 if offer.decision == "lead_requested" and offer.lead_id is not None)


def _rejudge(passport: Passport, profile: Profile) -> Outcome:
    """Decide again every offer not yet turned into a lead; return the new leads."""
    leads: list[Lead] = []
    offers: list[Offer] = []
    for offer in passport.offers:
        if offer.decision == "lead_requested":
            offers.append(offer)
            continue
        decision = _decision(passport, offer)
        if decision != "lead_requested":
            same = decision == offer.decision
            offers.append(offer if same else replace(offer, decision=decision))
            continue
        lead = _lead(passport, profile, offer)
        leads.append(lead)
        offers.append(replace(offer, decision=decision, lead_id=lead.lead_id))
    if not leads and all(a.decision == b.decision for a, b in zip(offers, passport.offers,
                                                                  strict=True)):
        return Outcome(passport)
    return Outcome(replace(passport, offers=tuple(offers)), tuple(leads))


def _decision(passport: Passport, offer: Offer) -> Decision:
    issued_at = passport.issued_at
    if issued_at is None or issued_at > offer.occurred_at:
        return "no_passport"
    if not passport.consents:
        return "no_consent"
    return "lead_requested"


def _lead(passport: Passport, profile: Profile, offer: Offer) -> Lead:
    return Lead(
        lead_id=derive(offer.event_id, "lead"),
        event_id=derive(offer.event_id, "lead-requested"),
        occurred_at=offer.occurred_at,
        siren=passport.siren,
        name=profile.name,
        departement=profile.departement,
        region=profile.region,
        category=offer.category,
        naf=profile.naf,
        contact_email=profile.contact_email,
    )


def _latest(last: int | None, occurred_at: int) -> int:
    return occurred_at if last is None else max(last, occurred_at)


def _applied(passport: Passport, event: Event, **changes: Any) -> Passport:
    """The passport with ``changes`` made and ``event`` recorded as applied, in one copy.

    Spelled out rather than ``dataclasses.replace`` (twice as slow): it runs for
    every event applied. A field added to ``Passport`` must be added here too.
    """
    get = changes.get
    return Passport(
        siren=passport.siren,
        profile=get("profile", passport.profile),
        modules=get("modules", passport.modules),
        offers=get("offers", passport.offers),
        feedback=get("feedback", passport.feedback),
        applied=passport.applied | {event.event_id},
        parked=get("parked", passport.parked),
        last_event_at=_latest(passport.last_event_at, event.occurred_at),
        consent_withdrawn=get("consent_withdrawn", passport.consent_withdrawn),
        erased=get("erased", passport.erased),
    )
