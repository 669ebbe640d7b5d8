"""What the API reads: the read model's queries, plus who holds a lead (for resellers' answers)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any, Protocol

from hub.errors import StoreError
from services.readmodel import ReadModel


class ReadSide(Protocol):
    """What the API needs from the read model (``services.readmodel.ReadModel``)."""

    @property
    def caught_up(self) -> bool: ...

    def passport(self, siren: str) -> dict[str, Any] | None: ...

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]: ...

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        """Whether the lead is known, and the reseller that holds it now (None: nobody)."""
        ...


class ModelReadSide:
    """A ``ReadModel`` as the API's read side.

    The read model has no query by lead id yet, so this one reads its file
    directly (read-only, a connection per call, as its own queries do); it
    belongs in ``services.readmodel.queries`` and moves there when it grows one.
    """

    def __init__(self, model: ReadModel) -> None:
        self._model = model
        self._uri = model.path.resolve().as_uri() + "?mode=ro"

    @property
    def caught_up(self) -> bool:
        return self._model.caught_up

    def passport(self, siren: str) -> dict[str, Any] | None:
        return self._model.passport(siren)

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        return self._model.leads_for(reseller_id, limit)

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        try:
            with closing(sqlite3.connect(self._uri, uri=True)) as conn:
                row = conn.execute("SELECT reseller_id FROM leads WHERE lead_id = ?",
                                   (lead_id,)).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"read model unavailable: {exc}") from exc
        return (False, None) if row is None else (True, row[0])
