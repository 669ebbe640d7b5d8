"""What the API reads: the read model's queries (passports, leads, who holds a lead, figures)."""

from __future__ import annotations

from typing import Any, Protocol

from services.readmodel import ReadModel


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
