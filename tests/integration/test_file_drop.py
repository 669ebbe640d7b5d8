"""The file drop on a real broker: rows on their topics, reports, moves, crash and resume."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from connectors.file_drop.checkpoint import Checkpoints, checkpoint_path
from connectors.file_drop.ingest import FileDrop, Options, row_event_id
from connectors.publish import Publisher
from connectors.synthetic.identities import siren
from hub.config import Settings
from hub.processor import Inbound
from hub.reader import TopicReader
from schemas import catalog
from schemas.models import EventModel

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def read_topic(settings: Settings, topic: str) -> list[Inbound]:
    """Every record of a topic, decoded, read without a group."""
    reader = TopicReader(settings, [topic])
    reader.start()
    records: list[Inbound] = []
    try:
        reader.catch_up(records.extend, timeout_s=20)
    finally:
        reader.close()
    return records


@pytest.fixture
def publisher(topics: Settings) -> Iterator[Publisher]:
    publisher = Publisher(topics)
    yield publisher
    publisher.close()


@pytest.fixture
def checkpoints(topics: Settings) -> Iterator[Checkpoints]:
    with Checkpoints(checkpoint_path(topics)) as checkpoints:
        yield checkpoints


def _report(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_csv_of_good_and_bad_rows(topics: Settings, publisher: Publisher,
                                    checkpoints: Checkpoints, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    path = inbox / "cefac-78.csv"
    # As a spreadsheet saves "CSV UTF-8": a BOM, commas, quoted cells, CRLF.
    path.write_bytes(b"\xef\xbb\xbf" + (
        "SIREN,Raison sociale,Département,Code NAF,Effectif,Courriel,Consentement,Date\r\n"
        '732829320,"Boulangerie Martin, père et fils",78,47.11D,3,contact@martin.fr,oui,'
        "05/03/2009 14:30\r\n"
        "552100554,Garage Dupont,1,,12,,non,2009-03-06T09:00:00Z\r\n"
        "123456789,Nulle part,99,,,jean@@martin,peut-être,31/02/2009\r\n"
        "356000000,La Poste,75,,,,x,06/03/2009\r\n"
    ).encode())
    outcome = FileDrop(publisher, checkpoints).ingest(path)
    assert (outcome.status, outcome.rows, outcome.produced, outcome.rejected) == ("done", 4, 3, 1)

    records = read_topic(topics, catalog.ENROLMENTS)
    assert sorted(r.key for r in records if r.key) == [b"356000000", b"552100554", b"732829320"]
    by_siren = {r.datum["siren"]: r.datum for r in records}
    martin = by_siren["732829320"]
    assert martin["name"] == "Boulangerie Martin, père et fils"
    assert (martin["departement"], martin["naf"], martin["employees"]) == ("78", "47.11D", 3)
    assert martin["contact_email"] == "contact@martin.fr"
    assert martin["consent_share_with_resellers"] is True
    assert martin["occurred_at"] == datetime(2009, 3, 5, 13, 30, tzinfo=UTC)  # Paris, winter
    assert martin["source"] == "cefac-78"
    sha = _sha(inbox / "done" / "cefac-78.csv")
    assert martin["event_id"] == row_event_id(sha, 2)
    assert by_siren["552100554"]["departement"] == "01"
    assert by_siren["552100554"]["consent_share_with_resellers"] is False
    assert by_siren["356000000"]["consent_share_with_resellers"] is True

    assert not path.exists()
    report = _report(inbox / "done" / "cefac-78.csv.report.csv")
    assert report[0] == ["line", "field", "reason"]
    assert {(line, field) for line, field, _ in report[1:]} == {
        ("4", "siren"), ("4", "departement"), ("4", "contact_email"),
        ("4", "consent_share_with_resellers"), ("4", "occurred_at")}
    text = (inbox / "done" / "cefac-78.csv.report.csv").read_text(encoding="utf-8-sig")
    assert "jean@@martin" not in text  # never a contact value


def test_a_latin_1_semicolon_file(topics: Settings, publisher: Publisher,
                                  checkpoints: Checkpoints, tmp_path: Path) -> None:
    path = tmp_path / "export délégation.csv"
    path.write_bytes(("SIREN;Raison sociale;Dépt;Salariés;Date;Catégorie\n"
                      "732829320;Crêperie Bréhat;22;2;05/03/2009;\n").encode("cp1252"))
    outcome = FileDrop(publisher, checkpoints, options=Options(source="cefac-22")).ingest(path)
    assert (outcome.status, outcome.produced) == ("done", 1)
    (record,) = read_topic(topics, catalog.ENROLMENTS)
    assert record.datum["name"] == "Crêperie Bréhat"
    assert record.datum["source"] == "cefac-22"
    assert (tmp_path / "done" / "export délégation.csv").exists()


def test_a_json_lines_file_of_several_types(topics: Settings, publisher: Publisher,
                                            checkpoints: Checkpoints, tmp_path: Path) -> None:
    at = "2009-03-05T10:00:00+01:00"
    path = tmp_path / "google.jsonl"
    path.write_text("\n".join([
        f'{{"type": "business_enrolled", "siren": "732829320", "name": "Martin",'
        f' "departement": "78", "occurred_at": "{at}", "source": "cefac-78"}}',
        f'{{"type": "module_completed", "siren": "732829320", "module_id": "website-create",'
        f' "occurred_at": "{at}"}}',
        f'{{"type": "offer_requested", "siren": "732829320", "category": "nope",'
        f' "occurred_at": "{at}"}}',
    ]) + "\n", encoding="utf-8")
    outcome = FileDrop(publisher, checkpoints).ingest(path)
    assert (outcome.rows, outcome.produced, outcome.rejected) == (3, 2, 1)
    (enrolled,) = read_topic(topics, catalog.ENROLMENTS)
    (module,) = read_topic(topics, catalog.TRAINING)
    assert (enrolled.datum["source"], module.datum["source"]) == ("cefac-78", "google")
    assert module.datum["occurred_at"] == datetime(2009, 3, 5, 9, 0, tzinfo=UTC)
    assert read_topic(topics, catalog.OFFER_REQUESTS) == []
    assert _report(tmp_path / "done" / "google.jsonl.report.csv")[1][:2] == ["3", "category"]


class Crash(Exception):
    """The process dies."""


class CrashingSink:
    """The real Publisher; the process "dies" once ``crash_after`` chunks were acknowledged.

    The crash comes after the broker's ack and before the file drop checkpoints
    the chunk: the worst moment, the one that makes a chunk go twice.
    """

    def __init__(self, inner: Publisher, crash_after: int | None = None) -> None:
        self.inner = inner
        self.crash_after = crash_after
        self.chunks: list[list[str]] = []

    def publish(self, event: EventModel) -> None:
        self.publish_many([event])

    def publish_many(self, events: Iterable[EventModel]) -> int:
        chunk = list(events)
        count = self.inner.publish_many(chunk)
        self.chunks.append([str(event.event_id) for event in chunk])
        if len(self.chunks) == self.crash_after:
            raise Crash
        return count

    def ready(self) -> bool:
        return self.inner.ready()

    def close(self) -> None:
        self.inner.close()


def _enrolments(count: int, *, bad_every: int, seed: int = 11) -> tuple[str, list[int]]:
    rng = random.Random(seed)
    lines, good = ["SIREN;Raison sociale;Département;Date\n"], []
    for index in range(count):
        bad = index % bad_every == bad_every - 1
        lines.append(f"{'000000001' if bad else siren(rng)};Entreprise {index};"
                     f"{rng.choice(['75', '78', '2A', '971'])};05/03/2009\n")
        if not bad:
            good.append(index + 2)
    return "".join(lines), good


@pytest.mark.timeout(90)
def test_a_crash_mid_file_then_a_restart_produces_every_good_row_once(
        topics: Settings, tmp_path: Path) -> None:
    text, good = _enrolments(2000, bad_every=9)
    path = tmp_path / "gros-fichier.csv"
    path.write_text(text, encoding="utf-8")
    sha = _sha(path)
    options = Options(chunk=200)

    first = CrashingSink(Publisher(topics), crash_after=4)
    with Checkpoints(checkpoint_path(topics)) as checkpoints, pytest.raises(Crash):
        FileDrop(first, checkpoints, options=options).ingest(path)
    first.close()
    assert path.exists()

    second = CrashingSink(Publisher(topics))
    with Checkpoints(checkpoint_path(topics)) as checkpoints:
        outcome = FileDrop(second, checkpoints, options=options).ingest(path)
    second.close()
    assert (outcome.status, outcome.produced, outcome.rejected) == ("done", len(good), 2000 // 9)
    # Resumed after the checkpoint: the chunk in flight at the crash went again, no other.
    assert outcome.resumed_after == good[3 * 200 - 1]
    assert second.chunks[0] == first.chunks[-1]
    resent = {i for chunk in second.chunks for i in chunk}
    assert not resent & {i for chunk in first.chunks[:-1] for i in chunk}

    records = read_topic(topics, catalog.ENROLMENTS)
    ids = [str(r.datum["event_id"]) for r in records]
    assert set(ids) == {row_event_id(sha, line) for line in good}
    assert len(ids) == len(good) + 200  # the one chunk sent twice, same ids: readers drop it

    # The same bytes dropped again, under another name: a duplicate, nothing produced.
    again = tmp_path / "gros-fichier (copie).csv"
    again.write_bytes((tmp_path / "done" / "gros-fichier.csv").read_bytes())
    publisher = Publisher(topics)
    try:
        with Checkpoints(checkpoint_path(topics)) as checkpoints:
            duplicate = FileDrop(publisher, checkpoints, options=options).ingest(again)
    finally:
        publisher.close()
    assert duplicate.status == "duplicate"
    assert (tmp_path / "rejected" / "gros-fichier (copie).csv").exists()
    assert len(read_topic(topics, catalog.ENROLMENTS)) == len(ids)


def cli_env(settings: Settings, *, dev_key: bool = True) -> dict[str, str]:
    """The command's environment; ``dev_key``: a dev stack's, which lets in the files of no
    partner's inbox (tests/integration/test_file_drop_scopes.py binds them to keys)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("PASSPORT_HUB_") and key != "KAFKA_BOOTSTRAP_SERVERS"}
    return env | {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap,
                  "PASSPORT_HUB_TOPIC_PREFIX": settings.topic_prefix,
                  "PASSPORT_HUB_DATA_DIR": str(settings.data_dir),
                  "PASSPORT_HUB_LOG_FORMAT": "json"} | (
                      {"PASSPORT_HUB_DEV_API_KEY": "file-drop-dev-key"} if dev_key else {})


def test_the_ingest_command(topics: Settings, tmp_path: Path) -> None:
    path = tmp_path / "modules.csv"
    path.write_text("SIREN;Module;Date\n732829320;website-create;05/03/2009\n"
                    "732829320;nope;05/03/2009\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "hub.cli", "ingest", str(path)],
                          env=cli_env(topics), capture_output=True, text=True, timeout=45,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("modules.csv: 2 rows, 1 produced, 1 rejected, ")
    assert done.stdout.rstrip().endswith(" → done/modules.csv")
    assert len(read_topic(topics, catalog.TRAINING)) == 1

    env = cli_env(topics)
    del env["KAFKA_BOOTSTRAP_SERVERS"]
    unset = subprocess.run([sys.executable, "-m", "hub.cli", "ingest", str(path)], env=env,
                           capture_output=True, text=True, timeout=45, check=False)
    assert unset.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS is not set" in unset.stderr


@pytest.mark.timeout(90)
def test_the_watched_inbox(topics: Settings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    log = (tmp_path / "watch.log").open("w+", encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "ingest", "--watch", str(inbox), "--type", "offre"],
        env=cli_env(topics), stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        # A file written in two steps: only the whole file is read. A file is ready no
        # sooner than 2 s (two 1 s polls) after it is first seen, so 1.5 s between the
        # steps leaves the first half unread however the polls fall.
        path = inbox / "offres.csv"
        with path.open("w", encoding="utf-8") as out:
            out.write("SIREN;Catégorie;Date\n732829320;website-hosting;05/03/2009\n")
            out.flush()
            time.sleep(1.5)
            out.write("552100554;e-commerce;05/03/2009\n")
        deadline = time.monotonic() + 30
        while not (inbox / "done" / "offres.csv").exists():
            assert time.monotonic() < deadline, (tmp_path / "watch.log").read_text()
            assert process.poll() is None, (tmp_path / "watch.log").read_text()
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    output = (tmp_path / "watch.log").read_text()
    assert code == 0, output
    assert "offres.csv: 2 rows, 2 produced, 0 rejected" in output
    records = read_topic(topics, catalog.OFFER_REQUESTS)
    assert sorted(r.datum["category"] for r in records) == ["e-commerce", "website-hosting"]


def _probes_port(log: Path, process: subprocess.Popen[str]) -> int:
    """The port the watcher logged it serves its probes on."""
    deadline = time.monotonic() + 30
    while True:
        for line in log.read_text().splitlines():
            if '"probes.serving"' in line:
                return int(json.loads(line)["port"])
        assert time.monotonic() < deadline, log.read_text()
        assert process.poll() is None, log.read_text()
        time.sleep(0.1)


@pytest.mark.timeout(90)
def test_the_watcher_serves_its_metrics_and_probes(topics: Settings, tmp_path: Path) -> None:
    inbox = tmp_path / "data" / "inbox"
    log_path = tmp_path / "watch.log"
    log = log_path.open("w+", encoding="utf-8")
    env = cli_env(topics) | {"PASSPORT_HUB_DATA_DIR": str(tmp_path / "data"),
                             "PASSPORT_HUB_METRICS_PORT": "0"}
    process = subprocess.Popen([sys.executable, "-m", "connectors.file_drop"], env=env,
                               stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{_probes_port(log_path, process)}"
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
        ready = httpx.get(f"{base}/readyz", timeout=5)
        assert ready.json() == {"status": "ready", "checks": {"broker": True, "inbox": True}}
        (inbox / "modules.csv").write_text("SIREN;Module;Date\n732829320;website-create;"
                                           "05/03/2009\n732829320;nope;05/03/2009\n",
                                           encoding="utf-8")
        deadline = time.monotonic() + 30
        while not (inbox / "done" / "modules.csv").exists():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.2)
        text = httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        log.close()
    assert code == 0, log_path.read_text()
    assert 'passport_hub_file_drop_files_total{outcome="done"} 1.0' in text
    assert 'passport_hub_file_drop_rows_total{outcome="rejected"} 1.0' in text
    assert ('passport_hub_events_ingested_total{channel="file_drop",outcome="accepted",'
            'partner="trainer",type="module_completed"} 1.0') in text
    assert 'passport_hub_ready{component="file_drop"} 1.0' in text
