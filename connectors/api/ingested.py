"""The events ingested, by channel, partner kind, type and outcome: the API's and the file
drop's (docs/operations.md, Metrics).

They are labelled by the partner's *kind*, never its name or key: ~650 resellers and a
hundred delegations would each be a series (docs/architecture.md, How the code is written).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter
from pydantic_core import from_json

from connectors.api.keys import ADMIN, ROLES
from schemas.models import MODELS_BY_TYPE, EventModel

#: Where an event came in.
Channel = Literal["api", "file_drop"]
#: What became of an event: published (or acknowledged before, ``duplicate``), or refused
#: (invalid, forbidden, a conflicting body, an unknown lead). One the broker did not
#: acknowledge (a 503) is not counted: nothing was decided, and its retry is counted.
IngestOutcome = Literal["accepted", "duplicate", "rejected"]
#: The partner kinds: the roles of connectors/api/keys.py, and ``other`` for a key whose
#: scopes fit no single role.
PARTNER_KINDS = ("delegation", "trainer", "reseller", "admin", "other")
#: The ``type`` label of an event whose type is not in the catalog (or not known).
UNKNOWN_TYPE = "unknown"
_TYPES = frozenset(MODELS_BY_TYPE)
_MODEL_TYPES: dict[type, str] = {model: tag for tag, model in MODELS_BY_TYPE.items()}
_ROLES = {role: frozenset(scopes) for role, scopes in ROLES.items() if role != "admin"}


@cache
def partner_kind(scopes: frozenset[str]) -> str:
    """A key's partner kind, from its scopes (keys do not store their role; ``mint`` gives
    each the scopes of one): ``admin`` for ``*`` (operations, the dev key), else the first
    role whose scopes hold all the key's, else ``other``. A handful of distinct scope sets
    exist (one per role, give or take): the cache stays that small."""
    if ADMIN in scopes:
        return "admin"
    for role, allowed in _ROLES.items():
        if scopes <= allowed:
            return role
    return "other"


@cache
def sender_kind(event_type: str) -> str:
    """The partner kind that sends events of a type (the file drop knows no key): the role
    whose scopes include it, else ``other``."""
    for role, allowed in _ROLES.items():
        if event_type in allowed:
            return role
    return "other"


def type_label(event_type: object) -> str:
    """An event's ``type`` label: its catalog type, or ``unknown``."""
    return event_type if isinstance(event_type, str) and event_type in _TYPES else UNKNOWN_TYPE


def claimed_type(document: object) -> str:
    """The type label a JSON object that is no valid event claims (``unknown`` if none)."""
    return type_label(document.get("type") if isinstance(document, dict) else None)


def from_json_or_none(body: bytes) -> Any:
    """A body's JSON value, or None when it is not JSON."""
    try:
        return from_json(body)
    except ValueError:
        return None


class Settled(Protocol):
    """An item's outcome as the metric reads it (``connectors.api.ingest.Outcome``)."""

    @property
    def status(self) -> int: ...

    @property
    def duplicate(self) -> bool: ...


def counted(status: int, duplicate: bool) -> IngestOutcome | None:
    """What an item answered ``status`` counts as; None for a 503 (nothing was decided)."""
    if status == 202:
        return "duplicate" if duplicate else "accepted"
    return None if status == 503 else "rejected"


@dataclass(slots=True)
class IngestMetrics:
    """``passport_hub_events_ingested_total{channel,partner,type,outcome}`` for one channel.

    partner: one of ``PARTNER_KINDS``; type: a catalog event type or ``unknown``;
    outcome: ``accepted`` | ``duplicate`` | ``rejected`` (``IngestOutcome``). Children are
    bound once per label set and kept (at most 5 x 10 x 3): counting an event is a dict
    lookup and an ``inc``, not a ``labels()`` call.
    """

    counter: Counter
    channel: Channel
    _children: dict[tuple[str, str, str], Counter] = field(default_factory=dict)

    @classmethod
    def create(cls, registry: CollectorRegistry, channel: Channel) -> IngestMetrics:
        return cls(Counter(
            "passport_hub_events_ingested",
            "Partner events ingested, by channel (api, file_drop), partner kind "
            f"({', '.join(PARTNER_KINDS)}), event type (the catalog's, or unknown) and "
            "outcome (accepted, duplicate, rejected).",
            ["channel", "partner", "type", "outcome"], registry=registry), channel)

    def count(self, partner: str, event_type: str, outcome: IngestOutcome, n: int = 1) -> None:
        """Count ``n`` events (``event_type`` already a label: ``type_label``)."""
        key = (partner, event_type, outcome)
        child = self._children.get(key)
        if child is None:  # two threads may both bind it: labels() gives them the same child
            child = self._children[key] = self.counter.labels(self.channel, *key)
        child.inc(n)

    def count_all(self, partner: str, tally: Mapping[tuple[str, IngestOutcome], int]) -> None:
        """Count a request's or a chunk's events, tallied by (type label, outcome)."""
        for (event_type, outcome), n in tally.items():
            self.count(partner, event_type, outcome, n)

    def count_items(self, partner: str, items: Sequence[EventModel | dict[str, Any]],
                    outcomes: Sequence[Settled], body: bytes | None = None) -> None:
        """Count a request's items (events, or the problem documents of invalid ones).

        Items are tallied by (model class, status, duplicate) first, the labels found
        once per distinct key: ~0.2 µs an item, 1-2% of validating it. The invalid ones
        are then taken one by one, each by the type its item in a batch ``body`` claims
        (a second parse, paid only by a batch with invalid items).
        """
        settled: dict[tuple[type, int, bool], int] = {}
        for item, outcome in zip(items, outcomes, strict=True):
            key = (type(item), outcome.status, outcome.duplicate)
            settled[key] = settled.get(key, 0) + 1
        tally: dict[tuple[str, IngestOutcome], int] = {}
        invalid = False
        for (cls, status, duplicate), n in settled.items():
            outcome_label = counted(status, duplicate)
            if cls is dict:
                invalid = True
            elif outcome_label is not None:
                label = _MODEL_TYPES.get(cls, UNKNOWN_TYPE)
                tally[label, outcome_label] = tally.get((label, outcome_label), 0) + n
        if invalid:
            for label, outcome in _invalid(items, outcomes, body):
                outcome_label = counted(outcome.status, outcome.duplicate)
                if outcome_label is not None:
                    tally[label, outcome_label] = tally.get((label, outcome_label), 0) + 1
        self.count_all(partner, tally)


def _invalid(items: Sequence[EventModel | dict[str, Any]], outcomes: Sequence[Settled],
             body: bytes | None) -> Iterator[tuple[str, Settled]]:
    """The type label and outcome of each invalid item."""
    document = from_json_or_none(body) if body is not None else None
    raw = document.get("events") if isinstance(document, dict) else None
    for index, (item, outcome) in enumerate(zip(items, outcomes, strict=True)):
        if isinstance(item, dict):
            claimed = raw[index] if isinstance(raw, list) and index < len(raw) else None
            yield claimed_type(claimed), outcome
