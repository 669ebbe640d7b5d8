"""The read model's SQLite file: its tables, and the one writer that upserts state records.

One writer (the materialiser thread) and any number of readers, each on its own
connection: WAL lets readers see the last committed batch while the writer
applies the next one.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from hub.store import connect
from services.readmodel import aggregates, views

_SCHEMA = """
CREATE TABLE IF NOT EXISTS passports (
    siren TEXT PRIMARY KEY, json TEXT NOT NULL, state TEXT NOT NULL,
    departement TEXT NOT NULL, region TEXT NOT NULL, updated_at INTEGER NOT NULL,
    -- What this snapshot adds to the counters (aggregates.dumps): subtracted when replaced.
    contrib TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS passports_state ON passports (state);
-- A delegation's pages, by SIREN, with or without a state filter.
CREATE INDEX IF NOT EXISTS passports_departement ON passports (departement, siren);
CREATE INDEX IF NOT EXISTS passports_departement_state ON passports (departement, state, siren);
-- The programme figures, kept as the latest snapshots' contributions add up (aggregates.py).
CREATE TABLE IF NOT EXISTS counters (
    dimension TEXT NOT NULL, key TEXT NOT NULL, metric TEXT NOT NULL, value INTEGER NOT NULL,
    PRIMARY KEY (dimension, key, metric)
) WITHOUT ROWID;
-- One row per lead: its latest version (views.lead). reseller_id is the holder now;
-- legacy marks a v1 record (no versions: the later record wins); duplicate_of names
-- the open lead a duplicate request resolves to.
CREATE TABLE IF NOT EXISTS leads (
    lead_id TEXT PRIMARY KEY, reseller_id TEXT, status TEXT NOT NULL,
    json TEXT NOT NULL, assigned_at INTEGER NOT NULL, version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, legacy INTEGER NOT NULL, duplicate_of TEXT,
    contrib TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_reseller ON leads (reseller_id, assigned_at);
CREATE INDEX IF NOT EXISTS leads_status ON leads (status);
-- Event ids already applied: a re-emitted event (same id, DESIGN.md "Effectively
-- once") arriving after a newer record of its key must not bring the old state back.
CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
"""

PASSPORT_RECORD = "PassportSnapshot"
LEAD_RECORD = "LeadAssigned"


def remove(path: Path) -> None:
    """Delete a read model file and its WAL companions (the model is rebuilt from topics)."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _dumps(value: Any) -> str:
    # orjson: compact UTF-8 like json.dumps(separators=(",", ":"), ensure_ascii=False), ~4x
    # faster; a lead's view with its trace and history is the largest row written here.
    return orjson.dumps(value).decode()


class Writer:
    """The read model's single writer connection."""

    def __init__(self, path: Path) -> None:
        # A read model is rebuilt from its topics, so a lost last commit costs nothing.
        self._conn = connect(path, durable=False, schema=_SCHEMA, what="read model")
        # A withdrawn lead's row is rewritten without its contact e-mail: have SQLite zero
        # the space the old row leaves instead of keeping its bytes in free space.
        self._conn.execute("PRAGMA secure_delete = ON")

    def apply(self, records: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Upsert (record name, datum) pairs in order, in one transaction; return how many changed.

        The last record per key wins (for a lead: the highest version, so a
        replayed older change never overwrites a newer one); an event id seen
        before changes nothing; record names the read model does not serve are ignored. The counters
        move in the same transaction: a reader never sees passports and figures
        that disagree.
        """
        changed = 0
        counters: Counter[aggregates.Key] = Counter()
        conn = self._conn
        conn.execute("BEGIN")
        try:
            for record, datum in records:
                if record not in (PASSPORT_RECORD, LEAD_RECORD):
                    continue
                seen = conn.execute("INSERT OR IGNORE INTO applied (event_id) VALUES (?)",
                                    (str(datum["event_id"]),))
                if seen.rowcount == 0:
                    continue
                moved = (self._passport(datum) if record == PASSPORT_RECORD
                         else self._lead(datum))
                if moved is None:
                    continue
                counters.update(moved)
                changed += 1
            self._count(counters)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return changed

    def _passport(self, datum: Mapping[str, Any]) -> aggregates.Contribution:
        """Upsert a snapshot; return how the counters move (its contribution less the old one's)."""
        view = views.passport(datum)
        row = self._conn.execute("SELECT contrib FROM passports WHERE siren = ?",
                                 (view["siren"],)).fetchone()
        contribution = aggregates.contributions(datum)
        self._conn.execute(
            "INSERT INTO passports (siren, json, state, departement, region, updated_at, contrib) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (siren) DO UPDATE SET json = excluded.json, "
            "state = excluded.state, departement = excluded.departement, "
            "region = excluded.region, updated_at = excluded.updated_at, "
            "contrib = excluded.contrib",
            (view["siren"], _dumps(view), view["state"], view["departement"], view["region"],
             views.millis(datum["occurred_at"]), aggregates.dumps(contribution)))
        return aggregates.change(aggregates.loads(None if row is None else row[0]), contribution)

    def _count(self, counters: Mapping[aggregates.Key, int]) -> None:
        moved = [(*key, amount) for key, amount in counters.items() if amount]
        if not moved:
            return
        self._conn.executemany(
            "INSERT INTO counters (dimension, key, metric, value) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (dimension, key, metric) DO UPDATE SET value = value + excluded.value",
            moved)
        # A counter back at zero is no counter: the table holds what a rebuild would.
        self._conn.execute("DELETE FROM counters WHERE value = 0")

    def _lead(self, datum: Mapping[str, Any]) -> aggregates.Contribution | None:
        """Upsert a lead change unless the row is at its version already (None: dropped).

        v2 changes carry the lead's version: one at or below the stored one is a
        repeat or a replay. v1 records all say version 1: among them the later
        one wins, as before versions existed.
        """
        version, at = int(datum.get("version", 1)), views.millis(datum["occurred_at"])
        legacy = int(datum.get("schema_version", 1)) < 2
        row = self._conn.execute(
            "SELECT version, updated_at, legacy, json, contrib FROM leads WHERE lead_id = ?",
            (str(datum["lead_id"]),)).fetchone()
        previous: dict[str, Any] | None = None
        old: aggregates.Contribution = {}
        if row is not None:
            stored, stored_at, stored_legacy, text, contrib = row
            newer = version > stored or (
                version == stored and legacy and stored_legacy and at > stored_at)
            if not newer:
                return None
            previous, old = json.loads(text), aggregates.loads(contrib)
        view = views.lead(datum, previous)
        contribution = aggregates.lead_contributions(view)
        # A reassignment replaces the row: the lead leaves the previous reseller's list.
        self._conn.execute(
            "INSERT INTO leads (lead_id, reseller_id, status, json, assigned_at, version, "
            "updated_at, legacy, duplicate_of, contrib) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (lead_id) DO UPDATE SET reseller_id = excluded.reseller_id, "
            "status = excluded.status, json = excluded.json, "
            "assigned_at = excluded.assigned_at, version = excluded.version, "
            "updated_at = excluded.updated_at, legacy = excluded.legacy, "
            "duplicate_of = excluded.duplicate_of, contrib = excluded.contrib",
            (view["lead_id"], view["reseller_id"], view["status"], _dumps(view),
             views.millis(datum.get("assigned_at") or datum["occurred_at"]), version, at,
             int(legacy), view["duplicate_of"], aggregates.dumps(contribution)))
        moved = Counter(aggregates.change(old, contribution))
        moved.update(aggregates.lead_change_counts(datum))
        return dict(moved)

    def close(self) -> None:
        self._conn.close()
