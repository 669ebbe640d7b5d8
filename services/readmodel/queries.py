"""Read-only queries over the read model's file, each on its own short-lived connection.

A connection per call keeps the queries thread-safe without a lock (the API
calls them from its threadpool) and never blocks the writer (WAL).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from hub.errors import StoreError

#: Most leads one query returns (the API's ``limit`` is bounded to it).
MAX_LEADS = 1000


class Queries:
    """The read model's queries over one SQLite file."""

    def __init__(self, path: Path) -> None:
        self._uri = path.resolve().as_uri() + "?mode=ro"

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self._uri, uri=True, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"read model unavailable: {exc}") from exc
        with closing(conn):
            yield conn

    def passport(self, siren: str) -> dict[str, Any] | None:
        """The latest passport of a business, or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT json FROM passports WHERE siren = ?", (siren,)).fetchone()
        return None if row is None else _loads(row[0])

    def leads_for(self, reseller_id: str, limit: int = 100) -> list[dict[str, Any]]:
        """The leads currently held by a reseller, most recent first."""
        limit = max(1, min(limit, MAX_LEADS))
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT json FROM leads WHERE reseller_id = ? "
                "ORDER BY assigned_at DESC, lead_id DESC LIMIT ?", (reseller_id, limit)).fetchall()
        return [_loads(json_text) for (json_text,) in rows]

    def counts(self) -> dict[str, int]:
        """Programme figures: businesses, passports issued, leads assigned and unassigned."""
        with self._connect() as conn:
            businesses, issued = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(state = 'passport_issued'), 0) FROM passports"
            ).fetchone()
            assigned, unassigned = conn.execute(
                "SELECT COALESCE(SUM(status = 'assigned'), 0), "
                "COALESCE(SUM(status = 'unassigned'), 0) FROM leads").fetchone()
        return {"passports_issued": int(issued), "businesses": int(businesses),
                "leads_assigned": int(assigned), "leads_unassigned": int(unassigned)}


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value
