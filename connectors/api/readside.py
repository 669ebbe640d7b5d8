"""What the API reads: the read model's queries (passports, leads, who holds a lead, figures,
webhook endpoints and deliveries, the lead-event feed) and whether it reflects a write yet."""

from __future__ import annotations

from typing import Any, Protocol

from services.readmodel import ReadModel
from services.readmodel.consistency import Token


class ReadSide(Protocol):
    """What the API needs from the read model (``services.readmodel.ReadModel``)."""

    @property
    def caught_up(self) -> bool: ...

    def passport(self, siren: str) -> dict[str, Any] | None: ...

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The full views of the leads a reseller holds now, most recent first."""
        ...

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        """A lead's full view (a duplicate's id resolved to its open lead), or None."""
        ...

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        """Whether the lead is known, and the reseller that holds it now (None: nobody)."""
        ...

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of a département's enrolled businesses: passports, next_cursor, total."""
        ...

    def stats(self) -> dict[str, Any]:
        """The programme figures (``services.readmodel.stats.document``)."""
        ...

    def kpi(self) -> dict[str, Any]:
        """The KPI page's figures (``services.readmodel.kpi.document``)."""
        ...

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        """A reseller's webhook endpoint as the delivery component last stated it, or None."""
        ...

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        """A reseller's delivery attempts, newest first (one message's, with ``message_id``)."""
        ...

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        """The lead events after ``cursor`` (None: from the start) of one reseller, or of all
        (None): ``{"events", "next_cursor"}``; ``ValueError`` for a malformed cursor."""
        ...

    def wait_for_change(self, timeout_s: float) -> bool:
        """Block until the read model commits its next batch (True) or ``timeout_s`` (False)."""
        ...

    def reflects_passport(self, siren: str, token: Token) -> bool:
        """Whether the passport of ``siren`` reflects the write ``token`` names."""
        ...

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        """Whether the lead reflects the write ``token`` names."""
        ...


class ModelReadSide:
    """A ``ReadModel`` as the API's read side: every query is the read model's own."""

    def __init__(self, model: ReadModel) -> None:
        self._model = model

    @property
    def caught_up(self) -> bool:
        return self._model.caught_up

    def passport(self, siren: str) -> dict[str, Any] | None:
        return self._model.passport(siren)

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._model.leads_for(reseller_id, limit)

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        return self._model.lead(lead_id)

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        return self._model.lead_holder(lead_id)

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        return self._model.passports_in(departement, state=state, after=after, limit=limit)

    def stats(self) -> dict[str, Any]:
        return self._model.stats()

    def kpi(self) -> dict[str, Any]:
        return self._model.kpi()

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        return self._model.webhook_endpoint(reseller_id)

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        return self._model.deliveries(reseller_id, limit=limit, message_id=message_id)

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        return self._model.lead_feed(reseller_id, cursor=cursor, limit=limit)

    def wait_for_change(self, timeout_s: float) -> bool:
        return self._model.wait_for_change(timeout_s)

    def reflects_passport(self, siren: str, token: Token) -> bool:
        return self._model.reflects_passport(siren, token)

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        return self._model.reflects_lead(lead_id, token)
