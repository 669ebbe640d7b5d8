"""The file drop applies the API's scopes: each inbox is bound to one API key's role and
tenant, and a row does only what that key could do over HTTP (issue 13, "Hostile input").

Real files, a real keys file, a real SQLite checkpoint; the broker is the in-memory sink of
tests/unit/test_file_drop_ingest.py and the read model the two-tenant read side of the
auth matrix (tests/unit/test_auth_matrix.py), both fakes of our own interfaces. The
matrix's own oracle (``expected_event``) says what each row must get, and the API's own
``Ingest`` says in which words: the file drop must agree with both on every cell.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from connectors.api import keys
from connectors.api.auth import KeyRing
from connectors.api.idempotency import AcceptedStore
from connectors.api.ingest import EventWriter, Ingest
from connectors.file_drop.checkpoint import Checkpoints
from connectors.file_drop.ingest import FileDrop, Options
from connectors.file_drop.metrics import FileDropMetrics
from connectors.file_drop.scopes import KEY_FIELD, SCOPE_FIELD, Inboxes, ScopeUnavailable
from connectors.file_drop.watch import Watcher
from hub.errors import ConfigError, StoreError
from schemas.models import EVENT_ADAPTER, EXAMPLES
from tests.unit.test_api_webhooks import Writer
from tests.unit.test_auth_matrix import (
    DEPARTEMENT,
    LEAD,
    NOW_MS,
    ORG,
    OTHER,
    OWN,
    RESELLER,
    TENANCIES,
    UNBOUND,
    World,
    event,
    expected_event,
    foreign_write,
)
from tests.unit.test_file_drop_ingest import MemorySink

NOW = datetime.fromtimestamp(NOW_MS / 1000, UTC)
DEV = "scopes-dev-key"
#: The roles of the auth matrix that hold a key of the keys file (the dev key and "no
#: key" have none: their files sit in the watched folder itself).
FILED = ("delegation", "trainer", "reseller", "admin", UNBOUND, "revoked", "expired")


@dataclass(frozen=True)
class Keys:
    """A keys file of one key per role (one revoked since), and the API's ring over it."""

    path: Path
    ids: dict[str, str]
    tokens: dict[str, str]
    ring: KeyRing


@pytest.fixture
def keyfile(tmp_path: Path) -> Keys:
    minted = {
        "delegation": keys.mint("cefac-78", "delegation", departements=[DEPARTEMENT[OWN]],
                                expires_at=NOW + timedelta(days=30)),
        "trainer": keys.mint("alpha", "trainer", trainer_org=ORG[OWN]),
        "reseller": keys.mint(RESELLER[OWN], "reseller", RESELLER[OWN]),
        "admin": keys.mint("ops", "admin"),
        UNBOUND: keys.mint("cefac-legacy", "delegation"),
        "revoked": keys.mint("cefac-78-old", "delegation", departements=[DEPARTEMENT[OWN]]),
        "expired": keys.mint("cefac-78-past", "delegation", departements=[DEPARTEMENT[OWN]],
                             expires_at=NOW - timedelta(seconds=1)),
    }
    path = tmp_path / "keys.json"
    keys.save(path, [key for _token, key in minted.values()])
    assert keys.main(["revoke", "--key-id", minted["revoked"][1].key_id,
                      "--file", str(path)]) == 0
    return Keys(path, {role: key.key_id for role, (_t, key) in minted.items()},
                {role: token for role, (token, _k) in minted.items()} | {"dev": DEV},
                KeyRing(path, DEV, clock=NOW.timestamp))


@pytest.fixture
def checkpoints(tmp_path: Path) -> Iterator[Checkpoints]:
    with Checkpoints(tmp_path / "file-drop.sqlite") as checkpoints:
        yield checkpoints


def drop(inbox: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def report(settled: Path) -> list[tuple[int, str, str]]:
    text = settled.with_name(settled.name + ".report.csv").read_text(encoding="utf-8-sig")
    return [(int(line), field, reason)
            for line, field, reason in list(csv.reader(io.StringIO(text)))[1:]]


@dataclass(frozen=True)
class Row:
    """One cell of the matrix: an event type (or the re-enrolment), and whose data."""

    event_type: str
    tenancy: str
    into_own: bool = False

    def body(self) -> dict[str, Any]:
        body = event(self.event_type, self.tenancy,
                     into=DEPARTEMENT[OWN] if self.into_own else None)
        return {**body, "occurred_at": (NOW - timedelta(hours=1)).isoformat()}


ROWS = [*(Row(t, tenancy) for t in EXAMPLES for tenancy in TENANCIES),
        *(Row("business_enrolled", tenancy, into_own=True) for tenancy in TENANCIES)]


def test_every_row_gets_what_the_key_would_get_over_http_in_the_apis_words(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints,
        capsys: pytest.CaptureFixture[str]) -> None:
    world = World()
    root = tmp_path / "inbox"
    # The API's own accept path (its fake publisher takes a narrower datum than EventWriter
    # says, which only the webhook commands use: none here).
    api = Ingest(publisher=cast("EventWriter", Writer()), readside=world, ack_timeout_s=1.0,
                 store=AcceptedStore(tmp_path / "accepted.sqlite", retention_s=3600))
    cells = produced = refused = 0
    try:
        for role in (*FILED, "dev", "no key"):
            sink = MemorySink()
            inboxes = Inboxes(keyfile.path, None if role == "no key" else DEV,
                              lookups=world, clock=lambda: NOW)
            folder = root / keyfile.ids[role] if role in FILED else root
            bodies = [row.body() for row in ROWS]
            path = drop(folder, f"{role.replace(' ', '-')}.jsonl", bodies)
            watcher = Watcher(root)
            outcome = FileDrop(sink, checkpoints, inboxes=inboxes, options=Options(now=NOW)) \
                .ingest(path, key_id=watcher.key_of(path))
            assert outcome.settled is not None
            # Settled in the partner's own inbox, with its report.
            assert outcome.settled.parent.parent == folder
            lines = {line: (field, reason) for line, field, reason in report(outcome.settled)}
            sent = {str(e.event_id) for e in sink.events}
            caller = keyfile.ring.caller(keyfile.tokens[role]) if role != "no key" else None
            for number, (row, body) in enumerate(zip(ROWS, bodies, strict=True), start=1):
                cells += 1
                want = expected_event(role, row.event_type, row.tenancy)
                cell = f"{role} x {row}"
                if want == 202:
                    produced += 1
                    assert body["event_id"] in sent, cell
                    assert number not in lines, f"{cell}: {lines.get(number)}"
                    continue
                refused += 1
                assert body["event_id"] not in sent, cell
                field, reason = lines[number]
                assert field == (KEY_FIELD if want == 401 else SCOPE_FIELD), cell
                if want == 403:  # the API's refusal of the same event by the same key
                    assert caller is not None
                    problem = api._refusal(caller, EVENT_ADAPTER.validate_python(body))
                    assert problem is not None, cell
                    assert reason == problem["detail"], cell
                else:  # no key, an unknown, revoked or expired one: the API's 401
                    assert caller is None, cell
            if role in ("delegation", "trainer", "reseller"):
                for e in sink.events:
                    assert foreign_write(role, json.loads(e.model_dump_json()), world) is None
    finally:
        api.store.close()
    with capsys.disabled():
        print(f"\nfile drop scopes: {cells} rows ({len(FILED) + 2} inboxes x {len(ROWS)} "
              f"rows): {produced} produced, {refused} refused, as the API answers")
    assert cells == (len(FILED) + 2) * len(ROWS)
    assert produced > 40
    assert refused > 100


def test_the_revoked_expired_and_unknown_inboxes_name_the_reason(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints) -> None:
    root = tmp_path / "inbox"
    inboxes = Inboxes(keyfile.path, None, lookups=World(), clock=lambda: NOW)
    rows = [Row("module_completed", OWN).body(), Row("module_completed", OWN).body()]
    reasons = {}
    for name in ("revoked", "expired", "stranger-0000"):
        key_id = keyfile.ids.get(name, name)
        sink = MemorySink()
        path = drop(root / key_id, "f.jsonl", rows)
        outcome = FileDrop(sink, checkpoints, inboxes=inboxes, options=Options(now=NOW)) \
            .ingest(path, key_id=key_id)
        assert (outcome.status, outcome.produced, outcome.rejected) == ("rejected", 0, 2)
        assert sink.events == []
        lines = report(outcome.settled or path)
        assert [(line, field) for line, field, _ in lines] == [(1, KEY_FIELD), (2, KEY_FIELD)]
        reasons[name] = lines[0][2]
    assert "unknown or revoked" in reasons["revoked"]
    assert keyfile.ids["revoked"] in reasons["revoked"]
    assert "expired at" in reasons["expired"]
    assert "stranger-0000" in reasons["stranger-0000"]
    # The watched folder itself, with no dev key: no partner's inbox.
    path = drop(root, "loose.jsonl", rows)
    outcome = FileDrop(MemorySink(), checkpoints, inboxes=inboxes,
                       options=Options(now=NOW)).ingest(path, key_id=None)
    assert outcome.produced == 0
    assert "no partner's inbox" in report(outcome.settled or path)[0][2]
    # Refused for its key, the file is not remembered: once the operator puts the key
    # right (here: the file dropped in a valid inbox), the same bytes are read.
    sink = MemorySink()
    path = drop(root / keyfile.ids["trainer"], "f.jsonl", rows)
    outcome = FileDrop(sink, checkpoints, inboxes=inboxes, options=Options(now=NOW)) \
        .ingest(path, key_id=keyfile.ids["trainer"])
    assert (outcome.status, outcome.produced) == ("done", 2)


def test_the_other_rows_go_on_and_a_revocation_holds_from_the_next_file(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints) -> None:
    inbox = tmp_path / "inbox" / keyfile.ids["reseller"]
    inboxes = Inboxes(keyfile.path, None, lookups=World(), clock=lambda: NOW)
    mine, theirs = Row("lead_answered", OWN).body(), Row("lead_answered", OTHER).body()
    profile, other_profile = Row("reseller_profile", OWN).body(), \
        Row("reseller_profile", OTHER).body()
    own_id_on_their_lead = {**Row("lead_answered", OWN).body(), "lead_id": LEAD[OTHER]}
    sink = MemorySink()
    path = drop(inbox, "answers.jsonl", [mine, theirs, profile, own_id_on_their_lead,
                                         other_profile])
    outcome = FileDrop(sink, checkpoints, inboxes=inboxes, options=Options(now=NOW)) \
        .ingest(path, key_id=keyfile.ids["reseller"])
    assert (outcome.status, outcome.produced, outcome.rejected) == ("done", 2, 3)
    assert [str(e.event_id) for e in sink.events] == [mine["event_id"], profile["event_id"]]
    lines = report(outcome.settled or path)
    assert [(line, field) for line, field, _ in lines] == [
        (2, SCOPE_FIELD), (4, SCOPE_FIELD), (5, SCOPE_FIELD)]
    assert f"may not speak for reseller {RESELLER[OTHER]}" in lines[0][2]
    assert f"lead {LEAD[OTHER]} is not assigned to reseller {RESELLER[OWN]}" == lines[1][2]

    # Revoked with the keys CLI: the next file is refused, with no restart.
    assert keys.main(["revoke", "--key-id", keyfile.ids["reseller"],
                      "--file", str(keyfile.path)]) == 0
    later = drop(inbox, "more.jsonl", [Row("lead_answered", OWN).body()])
    outcome = FileDrop(sink, checkpoints, inboxes=inboxes, options=Options(now=NOW)) \
        .ingest(later, key_id=keyfile.ids["reseller"])
    assert outcome.produced == 0
    assert len(sink.events) == 2


def test_a_csv_row_of_another_departement_is_refused_by_line(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints) -> None:
    inbox = tmp_path / "inbox" / keyfile.ids["delegation"]
    inbox.mkdir(parents=True)
    path = inbox / "inscriptions.csv"
    path.write_text("SIREN;Raison sociale;Département;Date\n"
                    "732829320;Entreprise Alpha;78;05/03/2009\n"
                    "356000000;La Poste;75;05/03/2009\n"
                    "552100554;Entreprise Bravo;78;05/03/2009\n", encoding="utf-8")
    sink = MemorySink()
    inboxes = Inboxes(keyfile.path, None, lookups=World(), clock=lambda: NOW)
    outcome = FileDrop(sink, checkpoints, inboxes=inboxes, options=Options(now=NOW)) \
        .ingest(path, key_id=keyfile.ids["delegation"])
    assert (outcome.produced, outcome.rejected) == (1, 2)
    assert [e.__dict__["siren"] for e in sink.events] == ["732829320"]
    lines = report(outcome.settled or path)
    assert [(line, field) for line, field, _ in lines] == [(3, SCOPE_FIELD), (4, SCOPE_FIELD)]
    assert "may not enrol a business in département 75" in lines[0][2]
    # Enrolled in 95 already (the read model says): re-enrolling it into 78 would move it.
    assert "may not speak for business 552100554" in lines[1][2]


class Behind(World):
    """A read model still catching up: it knows nothing yet."""

    caught_up = False

    def passport(self, siren: str) -> dict[str, Any] | None:
        return None

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        return False, None


def test_a_read_model_catching_up_leaves_the_file_in_its_inbox(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints) -> None:
    inbox = tmp_path / "inbox" / keyfile.ids["reseller"]
    path = drop(inbox, "answers.jsonl", [Row("lead_answered", OWN).body()])
    sink = MemorySink()
    registry = CollectorRegistry()
    behind = FileDrop(sink, checkpoints, options=Options(now=NOW),
                      metrics=FileDropMetrics.create(registry),
                      inboxes=Inboxes(keyfile.path, None, lookups=Behind(), clock=lambda: NOW))
    with pytest.raises(ScopeUnavailable, match="catching up"):
        behind.ingest(path, key_id=keyfile.ids["reseller"])
    assert path.exists()
    assert sink.events == []
    assert registry.get_sample_value("passport_hub_file_drop_files_total",
                                     {"outcome": "unavailable"}) == 1.0
    # Caught up at the next poll: read, and produced.
    caught = FileDrop(sink, checkpoints, options=Options(now=NOW),
                      inboxes=Inboxes(keyfile.path, None, lookups=World(), clock=lambda: NOW))
    assert caught.ingest(path, key_id=keyfile.ids["reseller"]).produced == 1


class Away(World):
    """A read model whose store cannot be read."""

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        raise StoreError("read model store: disk I/O error")


def test_an_unknown_lead_and_a_read_model_away_get_the_apis_404_and_503(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints) -> None:
    # The file drop and the API ask one function (connectors/api/scopes.py): its 404 is a
    # line of the report in the API's words, its 503 leaves the file in its inbox.
    caller = keyfile.ring.caller(keyfile.tokens["reseller"])
    assert caller is not None
    inbox = tmp_path / "inbox" / keyfile.ids["reseller"]
    for world, name in ((World(), "unknown.jsonl"), (Away(), "away.jsonl")):
        # A body of its own (event_id) per file: the same bytes again would be a duplicate.
        unknown = {**Row("lead_answered", OWN).body(), "lead_id": "lead-nobody-knows"}
        api = Ingest(publisher=cast("EventWriter", Writer()), readside=world, ack_timeout_s=1.0,
                     store=AcceptedStore(tmp_path / f"{name}.sqlite", retention_s=3600))
        try:
            problem = api._refusal(caller, EVENT_ADAPTER.validate_python(unknown))
        finally:
            api.store.close()
        assert problem is not None
        inboxes = Inboxes(keyfile.path, None, lookups=world, clock=lambda: NOW)
        path = drop(inbox, name, [unknown])
        drop_ = FileDrop(MemorySink(), checkpoints, inboxes=inboxes, options=Options(now=NOW))
        if problem["status"] == 404:
            outcome = drop_.ingest(path, key_id=keyfile.ids["reseller"])
            assert report(outcome.settled or path) == [(1, SCOPE_FIELD, problem["detail"])]
            assert problem["detail"] == "no lead lead-nobody-knows"
            continue
        assert problem["status"] == 503
        with pytest.raises(ScopeUnavailable, match="disk I/O error") as raised:
            drop_.ingest(path, key_id=keyfile.ids["reseller"])
        assert str(raised.value).startswith(problem["detail"])
        assert path.exists()


def test_a_trainer_or_admin_file_never_asks_the_read_model(
        tmp_path: Path, keyfile: Keys, checkpoints: Checkpoints) -> None:
    # Behind would make any lookup raise: these rows need none.
    inboxes = Inboxes(keyfile.path, None, lookups=Behind(), clock=lambda: NOW)
    for role, rows in (("trainer", [Row("module_completed", OWN), Row("training_feedback",
                                                                      OWN)]),
                       ("admin", [Row("lead_answered", OTHER), Row("business_enrolled", OTHER)])):
        path = drop(tmp_path / "inbox" / keyfile.ids[role], "f.jsonl",
                    [row.body() for row in rows])
        outcome = FileDrop(MemorySink(), checkpoints, inboxes=inboxes,
                           options=Options(now=NOW)).ingest(path, key_id=keyfile.ids[role])
        assert outcome.produced == 2, role


def test_the_watcher_reads_each_partners_inbox_and_names_its_key(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    for name in ("loose.csv", "cefac-78-1a2b3c4d/a.csv", "alpha-9f8e7d6c/b.jsonl",
                 "done/old.csv", "alpha-9f8e7d6c/done/old.jsonl", ".hidden/x.csv",
                 "cefac-78-1a2b3c4d/a.csv.part"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x\n", encoding="utf-8")
    watcher = Watcher(root, stable_polls=1)
    assert watcher.poll() == []
    ready = watcher.poll()
    assert sorted(str(p.relative_to(root)) for p in ready) == [
        "alpha-9f8e7d6c/b.jsonl", "cefac-78-1a2b3c4d/a.csv", "loose.csv"]
    assert {p.name: watcher.key_of(p) for p in ready} == {
        "b.jsonl": "alpha-9f8e7d6c", "a.csv": "cefac-78-1a2b3c4d", "loose.csv": None}


def test_no_keys_at_all_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PASSPORT_HUB_API_KEYS_FILE"):
        Inboxes(None, None)
    broken = tmp_path / "keys.json"
    broken.write_text("[{}]", encoding="utf-8")
    with pytest.raises(ConfigError, match="invalid API keys file"):
        Inboxes(broken, None)
    # The command says so and exits 2, before it asks the broker (none listens there).
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PASSPORT_HUB_")} | {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9", "PASSPORT_HUB_DATA_DIR": str(tmp_path)}
    (tmp_path / "f.csv").write_text("SIREN;Module;Date\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "connectors.file_drop", "ingest",
                           str(tmp_path / "f.csv")], env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "no API keys to bind its inboxes to" in done.stderr
    assert (tmp_path / "f.csv").exists()
