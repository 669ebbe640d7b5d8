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
from services.readmodel import consistency, feed, kpi, stats
from services.readmodel.aggregates import ENROLLED_STATES, Key
from services.readmodel.consistency import Token
from services.readmodel.store import MAX_DELIVERIES

#: Most leads one query returns (the API's ``limit`` is bounded to it).
MAX_LEADS = 1000
#: Most passports one page holds (the API's ``limit`` is bounded to it).
MAX_PAGE = 500
#: Most feed events one call returns.
MAX_FEED = 1000


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

    def lead(self, lead_id: str) -> dict[str, Any] | None:
        """A lead's full view (``views.lead``), or None if unknown.

        A duplicate request's id resolves to the open lead it duplicates, with
        ``requested_as`` naming the id asked for (the duplicate's own row when
        that lead is not known here).
        """
        with self._connect() as conn:
            row = conn.execute("SELECT json, duplicate_of FROM leads WHERE lead_id = ?",
                               (lead_id,)).fetchone()
            if row is None:
                return None
            if row[1] is not None:
                target = conn.execute("SELECT json FROM leads WHERE lead_id = ?",
                                      (row[1],)).fetchone()
                if target is not None:
                    return {**_loads(target[0]), "requested_as": lead_id}
        return _loads(row[0])

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        """Whether the lead is known, and the reseller that holds it now (None: nobody)."""
        with self._connect() as conn:
            row = conn.execute("SELECT reseller_id FROM leads WHERE lead_id = ?",
                               (lead_id,)).fetchone()
        return (False, None) if row is None else (True, row[0])

    def passports_in(self, departement: str, *, state: str | None = None,
                     after: str | None = None, limit: int = 100) -> dict[str, Any]:
        """One page of a département's enrolled businesses, by SIREN.

        Keyset pagination: the page starts after SIREN ``after`` (the previous
        page's ``next_cursor``), so a page costs an index seek whatever its
        depth, and a business enrolled between two calls neither shifts nor
        repeats the rest. ``state`` narrows to one of ``ENROLLED_STATES``;
        businesses awaiting their enrolment are never listed. ``total`` counts
        the whole listing (every page) as it stands now.
        """
        if state is not None and state not in ENROLLED_STATES:
            raise ValueError(f"not a listed state: {state}")
        limit = max(1, min(limit, MAX_PAGE))
        states = (state,) if state is not None else ENROLLED_STATES
        marks = ", ".join("?" * len(states))
        where = f"departement = ? AND state IN ({marks})"
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT siren, json FROM passports WHERE {where} AND siren > ? "  # noqa: S608 - only placeholders are interpolated
                "ORDER BY siren LIMIT ?", (departement, *states, after or "", limit + 1)).fetchall()
            (total,) = conn.execute(f"SELECT COUNT(*) FROM passports WHERE {where}",  # noqa: S608 - as above
                                    (departement, *states)).fetchone()
        more = len(rows) > limit
        rows = rows[:limit]
        return {"passports": [_loads(text) for _siren, text in rows],
                "next_cursor": rows[-1][0] if more else None, "total": int(total)}

    def stats(self) -> dict[str, Any]:
        """The programme figures (``stats.document``) from the counters the writer keeps."""
        with self._connect() as conn:
            rows = conn.execute("SELECT dimension, key, metric, value FROM counters").fetchall()
        counters: dict[Key, int] = {(d, k, m): int(v) for d, k, m, v in rows}
        return stats.document(counters)

    def kpi(self) -> dict[str, Any]:
        """The KPI page's figures (``kpi.document``), read in one snapshot of the file.

        One read transaction: the counters, the standings and the profiles are of
        the same committed batch, so the page never shows resellers' leads that
        disagree with the leads' figures.
        """
        with self._connect() as conn:
            conn.execute("BEGIN")
            rows = conn.execute("SELECT dimension, key, metric, value FROM counters").fetchall()
            standings = {str(rid): kpi.Standing(float(entitled), int(received))
                         for rid, entitled, received in conn.execute(
                             "SELECT reseller_id, entitlement, received FROM standings")}
            profiles = [kpi.Profile(str(rid), str(name), str(status), int(weight), int(capacity))
                        for rid, name, status, weight, capacity in conn.execute(
                            "SELECT reseller_id, name, status, weight, capacity FROM resellers")]
            conn.execute("COMMIT")
        counters: dict[Key, int] = {(d, k, m): int(v) for d, k, m, v in rows}
        return kpi.document(counters, profiles, standings)

    def counts(self) -> dict[str, int]:
        """Programme figures: businesses, passports issued, leads assigned and waiting (queued)."""
        with self._connect() as conn:
            businesses, issued = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(state = 'passport_issued'), 0) FROM passports"
            ).fetchone()
            # v1 said unassigned where v2 queues the lead: both wait for a reseller.
            assigned, unassigned = conn.execute(
                "SELECT COALESCE(SUM(status = 'assigned'), 0), "
                "COALESCE(SUM(status IN ('unassigned', 'queued')), 0) FROM leads").fetchone()
        return {"passports_issued": int(issued), "businesses": int(businesses),
                "leads_assigned": int(assigned), "leads_unassigned": int(unassigned)}

    def webhook_endpoint(self, reseller_id: str) -> dict[str, Any] | None:
        """A reseller's webhook endpoint as the delivery component last wrote it, or None."""
        with self._connect() as conn:
            row = conn.execute("SELECT json FROM webhook_endpoints WHERE reseller_id = ?",
                               (reseller_id,)).fetchone()
        return None if row is None else _loads(row[0])

    def deliveries(self, reseller_id: str, *, limit: int = 100,
                   message_id: str | None = None) -> list[dict[str, Any]]:
        """A reseller's delivery attempts, newest first; one message's only if ``message_id``.

        Only the last ``MAX_DELIVERIES`` attempts of a reseller are kept.
        """
        limit = max(1, min(limit, MAX_DELIVERIES))
        with self._connect() as conn:
            if message_id is None:
                rows = conn.execute(
                    "SELECT json FROM deliveries WHERE reseller_id = ? ORDER BY seq DESC LIMIT ?",
                    (reseller_id, limit)).fetchall()
            else:
                rows = conn.execute(
                    "SELECT json FROM deliveries WHERE reseller_id = ? AND message_id = ? "
                    "ORDER BY seq DESC LIMIT ?", (reseller_id, message_id, limit)).fetchall()
        return [_loads(text) for (text,) in rows]

    def lead_feed(self, reseller_id: str | None, *, cursor: str | None,
                  limit: int = 100) -> dict[str, Any]:
        """The lead events after ``cursor``, in feed order, and the cursor to ask from next.

        ``reseller_id`` None: every reseller's events (an admin's), each body saying
        ``reseller_id``. ``cursor`` None (or "" or "start"): from the beginning.
        ``next_cursor`` is the given cursor (or the start one) when nothing is new.
        ``ValueError`` for a cursor this model did not issue (feed.decode_cursor).
        """
        after = feed.decode_cursor(cursor)
        limit = max(1, min(limit, MAX_FEED))
        with self._connect() as conn:
            if reseller_id is None:
                rows = conn.execute(
                    "SELECT seq, reseller_id, body FROM feed WHERE seq > ? ORDER BY seq LIMIT ?",
                    (after, limit)).fetchall()
            else:
                rows = conn.execute(
                    "SELECT seq, reseller_id, body FROM feed WHERE reseller_id = ? AND seq > ? "
                    "ORDER BY seq LIMIT ?", (reseller_id, after, limit)).fetchall()
        events = [_loads(body) if reseller_id is not None
                  else {**_loads(body), "reseller_id": owner} for _seq, owner, body in rows]
        if not rows:
            return {"events": [], "next_cursor": cursor or feed.START_CURSOR}
        return {"events": events, "next_cursor": feed.encode_cursor(int(rows[-1][0]))}

    def reflects_passport(self, siren: str, token: Token) -> bool:
        """Whether the passports reflect the write ``token`` names (consistency.py's rules)."""
        with self._connect() as conn:
            if token.key == siren:
                row = conn.execute("SELECT offsets FROM passports WHERE siren = ?",
                                   (siren,)).fetchone()
                return consistency.reflects_own(None if row is None else _offsets(row[0]),
                                                token)
            mark = conn.execute("SELECT next FROM watermarks WHERE input = ?",
                                (token.where,)).fetchone()
        return consistency.reflects_watermark(None if mark is None else int(mark[0]), token)

    def reflects_lead(self, lead_id: str, token: Token) -> bool:
        """Whether lead ``lead_id`` is known and reflects the write ``token`` names."""
        with self._connect() as conn:
            row = conn.execute("SELECT offsets FROM leads WHERE lead_id = ?",
                               (lead_id,)).fetchone()
        return consistency.reflects_lead(None if row is None else _offsets(row[0]), token)


def _offsets(text: str) -> dict[str, int]:
    return {str(where): int(offset) for where, offset in json.loads(text).items()}


def _loads(text: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(text)
    return value
