"""The campaign's input, made once from a seed and played twice (with and without kills).

A plan is plain data: the reseller network, which resellers take webhooks, the
businesses' enrolments and training (some reported by HTTP, some by trainers' files
dropped in the inbox, a few sent twice as a retrying partner would), their offer
requests, and the consent withdrawals and erasures that close the story. The synthetic
generator (connectors/synthetic/generator.py) writes the businesses; the plan adds the
cases the generator does not make: offers from businesses without a passport, offers
dated before the passport, a second request for a category already asked, privacy
requests, and a person to call on every enrolment (a phone and a name beside the
generator's e-mail: contact data the leak scan then looks for, reliability/leaks.py).
Everything comes from ``random.Random(seed)`` and the plan's clock, so two plans of one
seed are equal, event ids included.

The phases are played in order (reliability/flow.py) because some hub decisions depend
on arrival order by design: privacy wins over a late offer (services/passport/rules.py),
and the router's fair share depends on the order of its inputs (docs/routing.md). Offers
go one at a time, answers in rounds, privacy last: so a run with kills and a run without
present the router with the same sequence.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from connectors.synthetic.generator import Synthetic
from connectors.synthetic.identities import SURNAMES
from schemas.models import (
    BusinessEnrolled,
    ConsentWithdrawn,
    ErasureRequested,
    EventModel,
    ModuleCompleted,
    OfferRequested,
    ResellerProfile,
    TrainingFeedback,
)
from schemas.reference import CATEGORIES

#: Share of businesses whose trainers report by file (the rest over HTTP).
FILE_SHARE = 0.25
#: Share of phase-1 events a partner sends a second time (a retry after a lost answer).
RESEND_SHARE = 0.05
#: Share of resellers with a webhook endpoint (the others would pull).
WEBHOOK_SHARE = 0.5
#: Events per HTTP batch in phase 1.
BATCH = 25
#: Businesses whose trainer rows go in one dropped file.
FILE_BUSINESSES = 12
#: First names of the people to call (accents included: the logs' JSON escapes them).
FIRST_NAMES = ("Jeanne", "Hélène", "Marc", "Zoé", "Jérôme", "Inès", "Théo", "Aurélie",
               "François", "Chloé", "Mathis", "Léa")


@dataclass(frozen=True, slots=True)
class Post:
    """One phase-1 delivery: events in one HTTP batch, or one dropped file's rows."""

    channel: str
    """``api`` (``POST /v1/events:batch``) or ``file`` (a JSON Lines file in the inbox)."""
    events: tuple[EventModel, ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """Everything the partners will send, in the order they send it."""

    seed: int
    now: datetime
    profiles: tuple[ResellerProfile, ...]
    webhooks: tuple[str, ...]
    """The resellers that register a webhook endpoint (before any lead exists)."""
    training: tuple[Post, ...]
    """Phase 1: enrolments, completions and feedback (and a few events sent twice)."""
    offers: tuple[OfferRequested, ...]
    """Phase 2, one at a time."""
    privacy: tuple[ConsentWithdrawn | ErasureRequested, ...]
    """Phase 4: consent withdrawals and erasures, one at a time."""
    answer_seed: int = 0
    """The seed of the CRMs' answers (connectors/synthetic/crm.py ``decide``)."""
    businesses: tuple[str, ...] = field(default=())
    """The SIRENs of phase 1's businesses."""
    background: tuple[Post, ...] = ()
    """Steady traffic meanwhile: more businesses' enrolments and training (no offers, so
    the router's input stays the same in every run), sent all along phases 1-4 so that a
    kill finds its victim busy."""

    def events(self) -> Iterator[EventModel]:
        """Every distinct event of the plan (a resent one once), in playing order."""
        seen: set[UUID] = set()
        for event in (*self.profiles, *(e for p in self.training for e in p.events),
                      *self.offers, *self.privacy,
                      *(e for p in self.background for e in p.events)):
            if event.event_id not in seen:
                seen.add(event.event_id)
                yield event

    def counts(self) -> dict[str, int]:
        """How many of each thing the plan holds (for the report)."""
        phase1 = [e for post in self.training for e in post.events]
        files = [post for post in self.training if post.channel == "file"]
        steady = [e for post in self.background for e in post.events]
        return {"resellers": len(self.profiles), "webhook endpoints": len(self.webhooks),
                "businesses": len(self.businesses),
                "training events": len({e.event_id for e in phase1}),
                "sent twice": len(phase1) - len({e.event_id for e in phase1}),
                "dropped files": len(files),
                "offers": len(self.offers), "privacy requests": len(self.privacy),
                "background businesses": sum(isinstance(e, BusinessEnrolled) for e in steady),
                "background events": len({e.event_id for e in steady})}


def make(*, seed: int, businesses: int, resellers: int, now: datetime,
         background: int = 0) -> Plan:
    """The plan of a seed: ``businesses`` synthetic businesses, ``resellers`` resellers, and
    ``background`` more businesses whose enrolments and training flow meanwhile."""
    # Not random.Random(seed): the generator draws from that very stream, ids included.
    rng = random.Random(f"{seed}/plan")  # noqa: S311 - a reproducible campaign, nothing secret
    synthetic = Synthetic(seed=seed, clock=lambda: now, resellers=resellers)
    profiles = tuple(e for e in synthetic.resellers() if isinstance(e, ResellerProfile))
    # Not ``rng``: contacts drawn from their own stream leave every other draw as it was.
    contacts = random.Random(f"{seed}/contacts")  # noqa: S311 - reproducible, nothing secret
    stories = [_with_contact(contacts, synthetic.business()) for _ in range(businesses)]
    api_events: list[EventModel] = []
    file_units: list[Sequence[EventModel]] = []
    offers: list[OfferRequested] = []
    for story in stories:
        told = [e for e in story if not isinstance(e, OfferRequested)]
        offers.extend(e for e in story if isinstance(e, OfferRequested))
        if rng.random() < FILE_SHARE:
            trainers = [e for e in told if isinstance(e, ModuleCompleted | TrainingFeedback)]
            api_events.extend(e for e in told if isinstance(e, BusinessEnrolled))
            file_units.append(trainers)
        else:
            api_events.extend(told)
    offers.extend(_extra_offers(rng, stories, offers, now))
    rng.shuffle(offers)  # the order partners send them in: not the order they happened
    webhooks = tuple(sorted(p.reseller_id for p in profiles if rng.random() < WEBHOOK_SHARE))
    privacy = tuple(_privacy(rng, stories, offers, now))
    steady = [e for _ in range(background)
              for e in _with_contact(contacts, synthetic.business())
              if not isinstance(e, OfferRequested)]
    return Plan(seed=seed, now=now, profiles=profiles, webhooks=webhooks,
                training=tuple(_posts(rng, api_events, file_units)), offers=tuple(offers),
                privacy=privacy, answer_seed=seed,
                businesses=tuple(_siren(story) for story in stories),
                background=tuple(_posts(rng, steady, [])))


def _with_contact(rng: random.Random, story: list[EventModel]) -> list[EventModel]:
    """The story with a person to call on its enrolment: a mobile number (E.164, as the
    API keeps it) and a name."""
    def contact(event: EventModel) -> EventModel:
        if not isinstance(event, BusinessEnrolled):
            return event
        # 07: some 06 numbers (639, 69x) are overseas ones (+262...) once normalised.
        phone = f"+337{rng.randrange(10 ** 8):08d}"
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}"
        return event.model_copy(update={"contact_phone": phone, "contact_name": name})

    return [contact(event) for event in story]


def _siren(story: Sequence[EventModel]) -> str:
    return next(e.siren for e in story if isinstance(e, BusinessEnrolled))


def _posts(rng: random.Random, api_events: list[EventModel],
           file_units: list[Sequence[EventModel]]) -> list[Post]:
    """Phase 1's HTTP batches with the dropped files between them, and the resends."""
    batches = [list(api_events[i:i + BATCH]) for i in range(0, len(api_events), BATCH)]
    for index, batch in enumerate(batches):
        later = batches[min(len(batches) - 1, index + rng.randint(1, 3))]
        if later is not batch:
            later.extend([e for e in batch if rng.random() < RESEND_SHARE])
    files = [[e for unit in file_units[i:i + FILE_BUSINESSES] for e in unit]
             for i in range(0, len(file_units), FILE_BUSINESSES)]
    posts = [Post("api", tuple(batch)) for batch in batches]
    for rows in files:
        if rows:
            posts.insert(rng.randint(0, len(posts)), Post("file", tuple(rows)))
    return posts


def _extra_offers(rng: random.Random, stories: list[list[EventModel]],
                  offers: list[OfferRequested], now: datetime) -> list[OfferRequested]:
    """Requests the generator never makes: without a passport, before it, and repeats."""
    extra: list[OfferRequested] = []

    def offer(like: BusinessEnrolled, at: datetime, category: str) -> OfferRequested:
        return OfferRequested(event_id=UUID(int=rng.getrandbits(128), version=4),
                              occurred_at=at, source=like.source, siren=like.siren,
                              category=category)

    categories = sorted(CATEGORIES)
    for story in stories:
        enrolment = next(e for e in story if isinstance(e, BusinessEnrolled))
        modules = {e.module_id for e in story if isinstance(e, ModuleCompleted)}
        roll = rng.random()
        if len(modules) < 3 and roll < 0.08:  # no passport: refused
            extra.append(offer(enrolment, now - timedelta(minutes=5), rng.choice(categories)))
        elif len(modules) >= 3 and roll < 0.06:  # dated before the passport: refused
            first = min(e.occurred_at for e in story if isinstance(e, ModuleCompleted))
            extra.append(offer(enrolment, first - timedelta(minutes=1), rng.choice(categories)))
    for asked in list(offers):
        enrolment = next(e for story in stories for e in story
                         if isinstance(e, BusinessEnrolled) and e.siren == asked.siren)
        roll = rng.random()
        if roll < 0.15:  # asked again for the same category: a duplicate while the first is open
            extra.append(offer(enrolment, now - timedelta(minutes=2), asked.category))
        elif roll < 0.25:  # another category: another lead
            other = rng.choice([c for c in categories if c != asked.category])
            extra.append(offer(enrolment, now - timedelta(minutes=3), other))
    return extra


def _privacy(rng: random.Random, stories: list[list[EventModel]],
             offers: list[OfferRequested],
             now: datetime) -> list[ConsentWithdrawn | ErasureRequested]:
    """Withdrawals and erasures: some of businesses with an offer, two of businesses without."""
    asked = sorted({o.siren for o in offers})
    chosen = rng.sample(asked, max(1, len(asked) // 6)) if asked else []
    quiet = [_siren(s) for s in stories if _siren(s) not in set(asked)]
    chosen += rng.sample(quiet, min(2, len(quiet)))
    out: list[ConsentWithdrawn | ErasureRequested] = []
    for index, siren in enumerate(chosen):
        source = next(e.source for s in stories for e in s
                      if isinstance(e, BusinessEnrolled) and e.siren == siren)
        event_id = UUID(int=rng.getrandbits(128), version=4)
        if index % 2 == 0:
            out.append(ConsentWithdrawn(event_id=event_id, occurred_at=now, source=source,
                                        siren=siren, reason="no longer interested"))
        else:
            out.append(ErasureRequested(event_id=event_id, occurred_at=now, source=source,
                                        siren=siren, requested_by="the business"))
    return out
