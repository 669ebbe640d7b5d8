"""The read model's SQLite file: its tables, and the one writer that upserts state records.

One writer (the materialiser thread) and any number of readers, each on its own
connection: WAL lets readers see the last committed batch while the writer
applies the next one.

A record the writer cannot apply (an impossible value: ``checks.py``; or one that
breaks a view or a constraint) is set aside with its cause in ``rejected``, and
the rest of the batch is applied without it: the materialiser dead-letters it
(docs/architecture.md, "Bad input never blocks a partition").

Erasure (docs/architecture.md, "Personal data is handled as such"): once a
business is erased (its erased passport, or the withdrawal of a lead "erased"),
no row here keeps its contact e-mail — its leads' views and its feed events are
rewritten without it, and a later row about it is written without it, whichever
of the two topics a rebuild reads first. SQLite zeroes the space the old rows
leave (``secure_delete``), and the write-ahead log that still holds their old
pages is checkpointed and truncated after the batch.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hub.contract import Inbound, Rejected
from hub.sqlite import connect
from schemas.webhooks import lead_events, without_contact
from services.readmodel import aggregates, checks, feed, views

_SCHEMA = """
CREATE TABLE IF NOT EXISTS passports (
    siren TEXT PRIMARY KEY, json TEXT NOT NULL, state TEXT NOT NULL,
    departement TEXT NOT NULL, region TEXT NOT NULL, updated_at INTEGER NOT NULL,
    -- What this snapshot adds to the counters (aggregates.dumps): subtracted when replaced.
    contrib TEXT NOT NULL,
    -- The snapshot's input_offsets (JSON): read your writes (consistency.py).
    offsets TEXT NOT NULL
);  -- a rowid table: WITHOUT ROWID keeps whole rows (~1.5 KB here) in its interior
    -- pages, and a rebuild of 50,000 passports took 1.7x as long (19.1 s against 11.4)
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
-- the open lead a duplicate request resolves to; siren finds a business's leads when
-- it is erased.
CREATE TABLE IF NOT EXISTS leads (
    lead_id TEXT PRIMARY KEY, reseller_id TEXT, siren TEXT NOT NULL, status TEXT NOT NULL,
    json TEXT NOT NULL, assigned_at INTEGER NOT NULL, version INTEGER NOT NULL,
    updated_at INTEGER NOT NULL, legacy INTEGER NOT NULL, duplicate_of TEXT,
    contrib TEXT NOT NULL,
    -- The change's input_offsets (JSON): read your writes (consistency.py).
    offsets TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS leads_reseller ON leads (reseller_id, assigned_at);
CREATE INDEX IF NOT EXISTS leads_status ON leads (status);
CREATE INDEX IF NOT EXISTS leads_siren ON leads (siren);
-- Event ids already applied: a re-emitted event (same id, docs/architecture.md "Effectively
-- once") arriving after a newer record of its key must not bring the old state back.
CREATE TABLE IF NOT EXISTS applied (event_id TEXT PRIMARY KEY) WITHOUT ROWID;
-- Read your writes (consistency.py): per "<topic>/<partition>" input of the passport
-- service, the highest next offset any snapshot's input_offsets showed.
CREATE TABLE IF NOT EXISTS watermarks (
    input TEXT PRIMARY KEY, next INTEGER NOT NULL
) WITHOUT ROWID;
-- The lead-event feed (feed.py): seq comes from the pn.leads.v1 offset, so it is the
-- same after any rebuild; body is the event's JSON (schemas.webhooks.LeadEvent.body);
-- siren finds a business's events when it is erased.
-- Businesses erased, as the leads topic told it (an erasure withdrawal), so that leads read
-- before their erased passport lose their contact e-mail too.
CREATE TABLE IF NOT EXISTS erasures (siren TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS feed (
    seq INTEGER PRIMARY KEY, reseller_id TEXT NOT NULL, message_id TEXT NOT NULL UNIQUE,
    lead_id TEXT, siren TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS feed_reseller ON feed (reseller_id, seq);
CREATE INDEX IF NOT EXISTS feed_siren ON feed (siren);
-- The latest WebhookEndpoint of each reseller, by version (views.webhook_endpoint).
CREATE TABLE IF NOT EXISTS webhook_endpoints (
    reseller_id TEXT PRIMARY KEY, version INTEGER NOT NULL, json TEXT NOT NULL
) WITHOUT ROWID;
-- The delivery log: one row per WebhookDelivery attempt in the order read (a reseller's
-- attempts share a partition, so that is the order they were written), the last
-- MAX_DELIVERIES of each reseller.
CREATE TABLE IF NOT EXISTS deliveries (
    seq INTEGER PRIMARY KEY, reseller_id TEXT NOT NULL, message_id TEXT NOT NULL,
    json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_reseller ON deliveries (reseller_id, seq);
CREATE INDEX IF NOT EXISTS deliveries_message ON deliveries (reseller_id, message_id, seq);
-- The resellers as their latest profile names them (the KPI page's labels): what the
-- programme shows of a partner, never its contact e-mail or webhook URL.
CREATE TABLE IF NOT EXISTS resellers (
    reseller_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    weight INTEGER NOT NULL, capacity INTEGER NOT NULL
) WITHOUT ROWID;
-- Each reseller's fair-share account as the router keeps it (docs/routing.md "Choice"):
-- the leads it was entitled to and received, as of the last decision it stood in.
CREATE TABLE IF NOT EXISTS standings (
    reseller_id TEXT PRIMARY KEY, entitlement REAL NOT NULL, received INTEGER NOT NULL
) WITHOUT ROWID;
"""

PASSPORT_RECORD = "PassportSnapshot"
LEAD_RECORD = "LeadAssigned"
ENDPOINT_RECORD = "WebhookEndpoint"
DELIVERY_RECORD = "WebhookDelivery"
RESELLER_RECORD = "ResellerProfile"
#: The records the read model serves; any other is ignored.
RECORDS = frozenset({PASSPORT_RECORD, LEAD_RECORD, ENDPOINT_RECORD, DELIVERY_RECORD,
                     RESELLER_RECORD})

#: Delivery attempts kept per reseller, newest: the log is for "what happened lately";
#: the topic keeps the rest for as long as its retention says.
MAX_DELIVERIES = 1000

#: What a record that cannot be applied raises: its own fault (an impossible value, a
#: missing field, a constraint it breaks), not the store's. An ``OperationalError`` (disk
#: full, I/O) is the store's, and stops the model instead (materialiser.py).
RECORD_ERRORS: tuple[type[Exception], ...] = (
    checks.ImpossibleValueError, ValueError, KeyError, TypeError, AttributeError,
    IndexError, ArithmeticError, sqlite3.IntegrityError)


def remove(path: Path) -> None:
    """Delete a read model file and its WAL companions (the model is rebuilt from topics)."""
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def _dumps(value: Any) -> str:
    # orjson: compact UTF-8 like json.dumps(separators=(",", ":"), ensure_ascii=False), ~4x
    # faster; a lead's view with its trace and history is the largest row written here.
    return orjson.dumps(value).decode()


def _offsets(datum: Mapping[str, Any]) -> dict[str, int]:
    return {str(where): int(offset) for where, offset in (datum.get("input_offsets") or {}).items()}


def _erasure(datum: Mapping[str, Any]) -> bool:
    """Whether a lead change is one an erasure of the business caused: the withdrawal of an
    open lead, or the ``erased`` change of a closed one (services/routing/router.py)."""
    return datum.get("change") in ("withdrawn", "erased") and datum.get("reason") == "erased"


@dataclass
class _Moves:
    """What one batch moves besides rows, applied once at its end."""

    counters: Counter[aggregates.Key] = field(default_factory=Counter)
    marks: dict[str, int] = field(default_factory=dict)
    """Watermarks: the highest next offset per input the batch's snapshots showed."""
    logged: set[str] = field(default_factory=set)
    """Resellers whose delivery log grew (trimmed to ``MAX_DELIVERIES``)."""

    def merge(self, other: _Moves) -> None:
        """Add the moves of one record applied on its own (``Writer._isolated``)."""
        self.counters.update(other.counters)
        for where, offset in other.marks.items():
            self.marks[where] = max(offset, self.marks.get(where, offset))
        self.logged |= other.logged


class Writer:
    """The read model's single writer connection."""

    def __init__(self, path: Path) -> None:
        # A read model is rebuilt from its topics, so a lost last commit costs nothing.
        self._conn = connect(path, durable=False, schema=_SCHEMA, what="read model")
        # A withdrawn lead's row is rewritten without its contact e-mail: have SQLite zero
        # the space the old row leaves instead of keeping its bytes in free space.
        self._conn.execute("PRAGMA secure_delete = ON")
        self.rejected: list[Rejected] = []
        """Records set aside as unappliable, not dead-lettered yet (``take_rejected``)."""
        self._scrubbed = False
        """An erasure rewrote rows since the write-ahead log was last truncated."""

    def apply(self, batch: Iterable[Inbound]) -> int:
        """Apply decoded records in order, in one transaction; return how many changed anything.

        The last record per key wins (for a lead: the highest version, so a
        replayed older change never overwrites a newer one; for an endpoint: the
        highest version); an event id seen before changes nothing; record names
        the read model does not serve are ignored. The counters, the feed and
        the watermarks move in the same transaction: a reader never sees
        passports and figures, or a lead and its events, that disagree. The
        records' offsets matter: a lead change's events take their feed
        position from its offset (feed.py).

        A record that raises one of ``RECORD_ERRORS`` is set aside in ``rejected``:
        the batch is then applied again one record at a time, each in a savepoint,
        so the others go in as if it had never been there (the fast path, one
        statement stream for the whole batch, stays as it was for good batches).
        """
        records = [inbound for inbound in batch if inbound.record in RECORDS]
        try:
            changed = self._transaction(records, isolate=False)
        except RECORD_ERRORS:
            changed = self._transaction(records, isolate=True)
        self._truncate_log()
        return changed

    def take_rejected(self) -> list[Rejected]:
        """The records set aside since the last call, in the order they were read."""
        rejected, self.rejected = self.rejected, []
        return rejected

    def _transaction(self, records: list[Inbound], *, isolate: bool) -> int:
        changed = 0
        moves = _Moves()
        conn = self._conn
        scrubbed = self._scrubbed
        conn.execute("BEGIN")
        try:
            for inbound in records:
                if (self._isolated(inbound, moves) if isolate
                        else self._one(inbound, moves)):
                    changed += 1
            self._count(moves.counters)
            self._mark(moves.marks)
            self._trim(moves.logged)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            self._scrubbed = scrubbed
            raise
        return changed

    def _isolated(self, inbound: Inbound, moves: _Moves) -> bool:
        """Apply one record inside a savepoint; set it aside if it raises a record error."""
        own = _Moves()
        self._conn.execute("SAVEPOINT record")
        try:
            changed = self._one(inbound, own)
        except RECORD_ERRORS as exc:
            self._conn.execute("ROLLBACK TO record")
            self._conn.execute("RELEASE record")
            self.rejected.append(Rejected(inbound, exc, "apply"))
            return False
        self._conn.execute("RELEASE record")
        moves.merge(own)
        return changed

    def _one(self, inbound: Inbound, moves: _Moves) -> bool:
        """Apply one record the model serves; whether it changed anything."""
        record, datum = inbound.record, inbound.datum
        checks.check(record, datum)
        if record == PASSPORT_RECORD:
            # Any snapshot read shows how far its service got, a repeat included.
            for where, offset in _offsets(datum).items():
                moves.marks[where] = max(offset, moves.marks.get(where, offset))
        seen = self._conn.execute("INSERT OR IGNORE INTO applied (event_id) VALUES (?)",
                                  (str(datum["event_id"]),))
        if seen.rowcount == 0:
            return False
        if record == PASSPORT_RECORD:
            moves.counters.update(self._passport(datum))
            if datum.get("erased"):
                self._scrub(str(datum["siren"]))
            return True
        if record == LEAD_RECORD:
            moved = self._lead(datum)
            if moved is None:
                return False
            moves.counters.update(moved)
            self._feed(inbound.offset, datum)
            return True
        if record == ENDPOINT_RECORD:
            return self._endpoint(datum)
        if record == RESELLER_RECORD:
            self._reseller(datum)
        else:
            self._delivery(datum)
            moves.logged.add(str(datum["reseller_id"]))
        return True

    def _passport(self, datum: Mapping[str, Any]) -> aggregates.Contribution:
        """Upsert a snapshot; return how the counters move (its contribution less the old one's)."""
        view = views.passport(datum)
        row = self._conn.execute("SELECT contrib FROM passports WHERE siren = ?",
                                 (view["siren"],)).fetchone()
        contribution = aggregates.contributions(datum)
        self._conn.execute(
            "INSERT INTO passports (siren, json, state, departement, region, updated_at, contrib, "
            "offsets) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (siren) DO UPDATE SET "
            "json = excluded.json, state = excluded.state, departement = excluded.departement, "
            "region = excluded.region, updated_at = excluded.updated_at, "
            "contrib = excluded.contrib, offsets = excluded.offsets",
            (view["siren"], _dumps(view), view["state"], view["departement"], view["region"],
             views.millis(datum["occurred_at"]), aggregates.dumps(contribution),
             _dumps(_offsets(datum))))
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
        if view["contact_email"] is not None and self._erased(str(view["siren"])):
            view["contact_email"] = None  # the business was erased: its e-mail never comes back
        contribution = aggregates.lead_contributions(view)
        # A reassignment replaces the row: the lead leaves the previous reseller's list.
        self._conn.execute(
            "INSERT INTO leads (lead_id, reseller_id, siren, status, json, assigned_at, version, "
            "updated_at, legacy, duplicate_of, contrib, offsets) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (lead_id) DO UPDATE SET reseller_id = excluded.reseller_id, "
            "siren = excluded.siren, "
            "status = excluded.status, json = excluded.json, "
            "assigned_at = excluded.assigned_at, version = excluded.version, "
            "updated_at = excluded.updated_at, legacy = excluded.legacy, "
            "duplicate_of = excluded.duplicate_of, contrib = excluded.contrib, "
            "offsets = excluded.offsets",
            (view["lead_id"], view["reseller_id"], str(view["siren"]), view["status"],
             _dumps(view),
             views.millis(datum.get("assigned_at") or datum["occurred_at"]), version, at,
             int(legacy), view["duplicate_of"], aggregates.dumps(contribution),
             _dumps(_offsets(datum))))
        self._standings(datum.get("decision"))
        moved = Counter(aggregates.change(old, contribution))
        moved.update(aggregates.lead_change_counts(datum))
        moved.update(aggregates.reseller_change_counts(datum, previous))
        return dict(moved)

    def _standings(self, decision: Mapping[str, Any] | None) -> None:
        """Take in a decision's standings as the router does (RouterState.apply in
        services/routing/state.py): each candidate's entitlement as the trace states it,
        and the leads it received, the winner's this one included."""
        if not decision:
            return
        winner = decision.get("winner")
        self._conn.executemany(
            "INSERT INTO standings (reseller_id, entitlement, received) VALUES (?, ?, ?) "
            "ON CONFLICT (reseller_id) DO UPDATE SET entitlement = excluded.entitlement, "
            "received = excluded.received",
            [(str(c["reseller_id"]), float(c["entitlement"]),
              int(c["received"]) + (c["reseller_id"] == winner))
             for c in decision.get("candidates") or ()])

    def _reseller(self, datum: Mapping[str, Any]) -> None:
        """Keep a reseller's latest profile (the one read last, as the router does)."""
        self._conn.execute(
            "INSERT INTO resellers (reseller_id, name, status, weight, capacity) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (reseller_id) DO UPDATE SET "
            "name = excluded.name, status = excluded.status, weight = excluded.weight, "
            "capacity = excluded.capacity",
            (str(datum["reseller_id"]), str(datum["name"]), str(datum.get("status", "active")),
             int(datum.get("weight", 1)), int(datum.get("capacity", 10))))

    def _feed(self, offset: int, datum: Mapping[str, Any]) -> None:
        """Add the events a lead change causes to the feed; on an erasure, scrub the business's.

        Called for changes the lead's row took (not for a replayed older one, which
        must not tell a CRM again what it has moved past). A message id already in
        the feed adds nothing, whatever its offset: a change re-emitted under its
        own event id is never heard twice.

        Erasure is of a business, so it scrubs every event of every lead of it: the
        withdrawal routing writes reaches only the open leads, while a closed one's
        ``lead.assigned`` still carries the e-mail. The erased passport scrubs them
        too (``apply``), and a business already erased gets no e-mail in new rows:
        a rebuild reads the two topics in no particular order between them.
        """
        siren = str(datum["siren"])
        erased = _erasure(datum) or self._erased(siren)
        rows = []
        for index, event in enumerate(lead_events(datum)):
            body = event.body()
            if erased:
                body["data"] = without_contact(body["data"])
            rows.append((feed.seq(offset, index), event.reseller_id, event.message_id,
                         event.lead_id, siren, _dumps(body)))
        self._conn.executemany(
            "INSERT INTO feed (seq, reseller_id, message_id, lead_id, siren, body) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING", rows)
        if _erasure(datum):
            self._scrub(siren)

    def _erased(self, siren: str) -> bool:
        """Whether the business is erased: its passport says so, or routing withdrew one of
        its leads for it (``erasures``: a rebuild may read that first)."""
        row = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM passports WHERE siren = ? "
            "AND json_extract(json, '$.erased')) "
            "OR EXISTS (SELECT 1 FROM erasures WHERE siren = ?)", (siren, siren)).fetchone()
        return bool(row[0])

    def _scrub(self, siren: str) -> None:
        """Rewrite every lead view and feed event of a business without its contact e-mail
        (erasure), and remember the business as erased."""
        self._conn.execute("INSERT OR IGNORE INTO erasures (siren) VALUES (?)", (siren,))
        rows = self._conn.execute("SELECT seq, body FROM feed WHERE siren = ?",
                                  (siren,)).fetchall()
        scrubbed = []
        for seq, text in rows:
            body = json.loads(text)
            data = without_contact(body["data"])
            if data != body["data"]:
                scrubbed.append((_dumps({**body, "data": data}), seq))
        self._conn.executemany("UPDATE feed SET body = ? WHERE seq = ?", scrubbed)
        leads = self._conn.execute(
            "SELECT lead_id, json FROM leads WHERE siren = ? "
            "AND json_extract(json, '$.contact_email') IS NOT NULL", (siren,)).fetchall()
        self._conn.executemany("UPDATE leads SET json = ? WHERE lead_id = ?",
                               [(_dumps({**json.loads(text), "contact_email": None}), lead_id)
                                for lead_id, text in leads])
        self._scrubbed = True  # the rows replaced before this call left old pages too

    def _truncate_log(self) -> None:
        """After an erasure rewrote rows, empty the write-ahead log that holds their old
        pages (the checkpoint copies the current pages into the file first). Readers in a
        read transaction hold it up: then it is tried again after the next batch."""
        if not self._scrubbed:
            return
        busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        self._scrubbed = bool(busy)

    def _endpoint(self, datum: Mapping[str, Any]) -> bool:
        """Keep a reseller's endpoint at its highest version; whether this record was it."""
        view = views.webhook_endpoint(datum)
        cursor = self._conn.execute(
            "INSERT INTO webhook_endpoints (reseller_id, version, json) VALUES (?, ?, ?) "
            "ON CONFLICT (reseller_id) DO UPDATE SET version = excluded.version, "
            "json = excluded.json WHERE excluded.version > webhook_endpoints.version",
            (view["reseller_id"], view["version"], _dumps(view)))
        return cursor.rowcount > 0

    def _delivery(self, datum: Mapping[str, Any]) -> None:
        view = views.delivery(datum)
        self._conn.execute(
            "INSERT INTO deliveries (reseller_id, message_id, json) VALUES (?, ?, ?)",
            (str(datum["reseller_id"]), view["message_id"], _dumps(view)))

    def _trim(self, resellers: Iterable[str]) -> None:
        """Keep the last ``MAX_DELIVERIES`` attempts of each reseller that logged some."""
        self._conn.executemany(
            "DELETE FROM deliveries WHERE reseller_id = ? AND seq < (SELECT seq FROM deliveries "
            "WHERE reseller_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            [(reseller, reseller, MAX_DELIVERIES - 1) for reseller in resellers])

    def _mark(self, marks: Mapping[str, int]) -> None:
        self._conn.executemany(
            "INSERT INTO watermarks (input, next) VALUES (?, ?) "
            "ON CONFLICT (input) DO UPDATE SET next = MAX(next, excluded.next)",
            list(marks.items()))

    def close(self) -> None:
        self._conn.close()
