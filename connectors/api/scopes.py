"""Whether a caller may send one event: its scopes, its reseller, the lead it answers, its
tenant, asked in that order.

One rule for both ways in: the API (connectors/api/ingest.py) answers a ``Refusal`` with
its status (403, 404, 503 for that event alone), and the file drop (connectors/file_drop/
scopes.py) writes it in the file's report, or leaves the file for later on a 503. The
order matters to the words: a reseller key sending a delegation's event is refused for
the type, never for the reseller or the lead, whichever way the event comes. The read
model is asked through the two lookups given (``holder_of``, ``departement_of``), and
only for the events that need it: a trainer's or an admin's never does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from connectors.api.auth import Caller, DepartementOf
from hub.errors import StoreError
from schemas.models import EventModel, LeadAnswered


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a caller may not send an event, as the API answers it."""

    status: Literal[403, 404, 503]
    """403 outside the key's scope or tenant; 404 a lead the read model does not know;
    503 a lead it cannot tell about yet (retry)."""
    detail: str
    log: Mapping[str, object] = field(default_factory=dict)
    """The context of the API's log line about it (a 403's ``ingest.forbidden``, a read
    model away's ``ingest.readmodel_unavailable``); empty: not logged."""


#: Who holds a lead now (None: nobody), or the refusal that says why it cannot be told.
HolderOf = Callable[[str], tuple[str | None, Refusal | None]]


def holder_of(lead_holder: Callable[[str], tuple[bool, str | None]],
              caught_up: Callable[[], bool]) -> HolderOf:
    """The ``HolderOf`` of a read side (its ``lead_holder`` query and ``caught_up``).

    A lead it does not know while it is still catching up may be one it has not read
    yet: a 503, never the 404 of a lead that does not exist.
    """
    def lookup(lead_id: str) -> tuple[str | None, Refusal | None]:
        try:
            known, holder = lead_holder(lead_id)
        except StoreError as exc:
            return None, Refusal(503, "the read model is not available yet; retry",
                                 {"error": str(exc)})
        if not known:
            if not caught_up():
                return None, Refusal(503, "the read model is still catching up; retry")
            return None, Refusal(404, f"no lead {lead_id}")
        return holder, None
    return lookup


def refusal(caller: Caller, event: EventModel, *, holder_of: HolderOf,
            departement_of: DepartementOf) -> Refusal | None:
    """Why ``caller`` may not send ``event``, or None.

    ``departement_of`` may raise (the API's 503 ``ProblemError`` of a read model that
    cannot tell yet, a ``StoreError``): the caller decides what that means for it.
    """
    # pydantic keeps fields in __dict__; getattr() on one a model lacks goes through its
    # metaclass and an exception, ten times slower, once per event of every batch.
    fields = event.__dict__
    kind = str(fields.get("type", ""))
    if not caller.may_send(kind):
        return Refusal(403, f"key {caller.key_id} may not send {kind} events",
                       {"event_type": kind})
    reseller = fields.get("reseller_id")
    if isinstance(reseller, str) and not caller.speaks_for(reseller):
        return Refusal(403, f"key {caller.key_id} may not speak for reseller {reseller}",
                       {"event_type": kind, "reseller_id": reseller})
    if isinstance(event, LeadAnswered) and not caller.admin:
        return _lead_refusal(caller, event, holder_of)
    # The tenant: a delegation writes for its départements' businesses only, a trainer
    # for its organisation (Caller.refusal), whichever route or batch the event comes by.
    why = caller.refusal(event, departement_of)
    if why is None:
        return None
    return Refusal(403, why, {"event_type": kind, "tenant": True})


def asks_read_model(caller: Caller, event: EventModel) -> bool:
    """Whether ``refusal`` may ask a lookup about ``event`` (the API then checks it from
    a worker thread, never on its event loop)."""
    return (isinstance(event, LeadAnswered) and not caller.admin) or caller.looks_up(event)


def _lead_refusal(caller: Caller, event: LeadAnswered, holder_of: HolderOf) -> Refusal | None:
    """A reseller answers only a lead it holds now."""
    holder, unknown = holder_of(event.lead_id)
    if unknown is not None:
        return unknown
    if holder != caller.reseller_id:
        return Refusal(403, f"lead {event.lead_id} is not assigned to reseller "
                            f"{caller.reseller_id}",
                       {"event_type": event.type, "reseller_id": caller.reseller_id,
                        "lead_id": event.lead_id})
    return None
