"""One file end to end against a sink of our own: chunks, checkpoint, report, settling, resume.

Real files in tmp_path and a real SQLite checkpoint; the broker is replaced by
an in-memory sink (the real one is in tests/integration/test_file_drop.py).
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.file_drop.checkpoint import Checkpoints
from connectors.file_drop.ingest import FileDrop, Options, row_event_id
from connectors.file_drop.watch import Watcher
from connectors.synthetic.identities import siren
from hub.errors import BrokerUnavailable
from schemas.models import EventModel

NOW = datetime(2009, 6, 1, 12, 0, tzinfo=UTC)
HEADER = "SIREN;Raison sociale;Département;Date;Consentement\n"


class MemorySink:
    """Keeps what it is given; can refuse (broker away) or crash after some chunks."""

    def __init__(self, *, crash_after: int | None = None, unavailable: int = 0) -> None:
        self.chunks: list[list[EventModel]] = []
        self.crash_after = crash_after
        self.unavailable = unavailable

    def publish(self, event: EventModel) -> None:
        self.publish_many([event])

    def publish_many(self, events: Iterable[EventModel]) -> int:
        if self.unavailable:
            self.unavailable -= 1
            raise BrokerUnavailable("not now")
        chunk = list(events)
        self.chunks.append(chunk)
        if self.crash_after is not None and len(self.chunks) == self.crash_after:
            raise Crash  # acknowledged, not yet checkpointed
        return len(chunk)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass

    @property
    def events(self) -> list[EventModel]:
        return [event for chunk in self.chunks for event in chunk]


class Crash(Exception):
    """The process dies."""


def _rows(count: int, bad_every: int = 0, seed: int = 3) -> tuple[str, set[int]]:
    """A ;-separated enrolment file; every ``bad_every``-th row has a bad SIREN."""
    rng = random.Random(seed)
    lines, good = [HEADER], set()
    for index in range(count):
        line = index + 2
        bad = bad_every and index % bad_every == bad_every - 1
        lines.append(f"{'123' if bad else siren(rng)};Entreprise {index};78;05/03/2009;oui\n")
        if not bad:
            good.add(line)
    return "".join(lines), good


def _drop(sink: MemorySink, checkpoints: Checkpoints, **options: Any) -> FileDrop:
    return FileDrop(sink, checkpoints, options=Options(now=NOW, backoff_s=0, **options))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def checkpoints(tmp_path: Path) -> Checkpoints:
    return Checkpoints(tmp_path / "data" / "file-drop.sqlite")


def _report(path: Path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def test_good_rows_are_produced_in_chunks_and_bad_ones_reported(
        tmp_path: Path, checkpoints: Checkpoints) -> None:
    text, good = _rows(10, bad_every=4)
    path = tmp_path / "inbox" / "cefac-78.csv"
    path.parent.mkdir()
    # A column of the partner's own, which no event has.
    path.write_text("".join(f"{'Commentaire' if n == 0 else 'rappeler'};{line}"
                            for n, line in enumerate(text.splitlines(keepends=True))),
                    encoding="utf-8")
    sink = MemorySink()
    outcome = _drop(sink, checkpoints, chunk=3).ingest(path)
    assert (outcome.status, outcome.rows, outcome.produced, outcome.rejected) == ("done", 10, 8, 2)
    assert [len(chunk) for chunk in sink.chunks] == [3, 3, 2]
    settled = tmp_path / "inbox" / "done" / "cefac-78.csv"
    sha = _sha(settled)
    assert [str(e.event_id) for e in sink.events] == [row_event_id(sha, n) for n in sorted(good)]
    assert {e.source for e in sink.events} == {"cefac-78"}
    settled = tmp_path / "inbox" / "done" / "cefac-78.csv"
    assert outcome.settled == settled
    assert not path.exists()
    assert _report(settled.with_name("cefac-78.csv.report.csv")) == [
        ["line", "field", "reason"],
        ["1", "Commentaire", "unknown column, ignored"],
        ["5", "siren", "SIREN '123' must be exactly 9 digits"],
        ["9", "siren", "SIREN '123' must be exactly 9 digits"],
    ]
    assert outcome.summary().startswith("cefac-78.csv: 10 rows, 8 produced, 2 rejected, ")
    assert outcome.summary().endswith(" → done/cefac-78.csv")


def test_a_file_without_a_good_row_is_rejected(tmp_path: Path, checkpoints: Checkpoints) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "123;X;78;05/03/2009;oui\n", encoding="utf-8")
    sink = MemorySink()
    outcome = _drop(sink, checkpoints).ingest(path)
    assert (outcome.status, outcome.produced, outcome.rejected) == ("rejected", 0, 1)
    assert outcome.settled == tmp_path / "rejected" / "bad.csv"
    assert (tmp_path / "rejected" / "bad.csv.report.csv").exists()
    assert sink.chunks == []


def test_an_unreadable_file_is_rejected_whole(tmp_path: Path, checkpoints: Checkpoints) -> None:
    path = tmp_path / "classeur.xlsx"
    path.write_bytes(b"PK\x03\x04\x14\x00\x00\x00")
    outcome = _drop(MemorySink(), checkpoints).ingest(path)
    assert outcome.status == "rejected"
    report = _report(tmp_path / "rejected" / "classeur.xlsx.report.csv")
    assert report[1][:2] == ["0", "file"]
    assert report[1][2].startswith("unreadable: contains NUL bytes")


def test_headers_that_tell_no_type_reject_the_file(tmp_path: Path,
                                                   checkpoints: Checkpoints) -> None:
    path = tmp_path / "sirens.csv"
    path.write_text("SIREN;Date\n732829320;05/03/2009\n", encoding="utf-8")
    assert _drop(MemorySink(), checkpoints).ingest(path).status == "rejected"
    report = _report(tmp_path / "rejected" / "sirens.csv.report.csv")
    assert report[1][:2] == ["1", "type"]
    assert "--type" in report[1][2]
    # The same rows with --type are fine (and the file is new: it was never finished).
    path = tmp_path / "sirens-2.csv"
    path.write_text("SIREN;Date\n732829320;05/03/2009\n", encoding="utf-8")
    sink = MemorySink()
    options = {"type": "consent_withdrawn"}
    assert _drop(sink, checkpoints, **options).ingest(path).status == "done"
    assert [e.RECORD for e in sink.events] == ["ConsentWithdrawn"]


def test_the_same_content_again_is_a_duplicate_whatever_its_name(
        tmp_path: Path, checkpoints: Checkpoints) -> None:
    text, _ = _rows(5)
    (tmp_path / "a.csv").write_text(text, encoding="utf-8")
    sink = MemorySink()
    drop = _drop(sink, checkpoints)
    assert drop.ingest(tmp_path / "a.csv").status == "done"
    (tmp_path / "b.csv").write_text(text, encoding="utf-8")
    again = drop.ingest(tmp_path / "b.csv")
    assert again.status == "duplicate"
    assert "same content as a.csv" in again.summary()
    assert len(sink.events) == 5
    assert again.settled == tmp_path / "rejected" / "b.csv"
    assert "duplicate" in _report(tmp_path / "rejected" / "b.csv.report.csv")[1][2]


def test_names_already_settled_get_a_counter(tmp_path: Path, checkpoints: Checkpoints) -> None:
    drop = _drop(MemorySink(), checkpoints)
    for seed in (1, 2):
        text, _ = _rows(2, seed=seed)
        (tmp_path / "export.csv").write_text(text, encoding="utf-8")
        drop.ingest(tmp_path / "export.csv")
    assert sorted(p.name for p in (tmp_path / "done").iterdir()) == [
        "export-2.csv", "export-2.csv.report.csv", "export.csv", "export.csv.report.csv"]


@pytest.mark.parametrize("crash_after", [1, 3])
def test_a_crash_resumes_after_the_checkpoint_resending_only_the_chunk_in_flight(
        tmp_path: Path, checkpoints: Checkpoints, crash_after: int) -> None:
    text, good = _rows(25, bad_every=6)
    path = tmp_path / "big.csv"
    path.write_text(text, encoding="utf-8")
    first = MemorySink(crash_after=crash_after)
    with pytest.raises(Crash):
        _drop(first, checkpoints, chunk=4).ingest(path)
    assert path.exists()  # not settled: the next run takes it up
    second = MemorySink()
    outcome = _drop(second, checkpoints, chunk=4).ingest(path)
    assert outcome.status == "done"
    assert outcome.produced == len(good)
    # The chunk in flight at the crash is sent again, and nothing before it.
    assert [str(e.event_id) for e in second.chunks[0]] == \
        [str(e.event_id) for e in first.chunks[-1]]
    ids = [str(e.event_id) for e in first.events + second.events]
    assert len(ids) == len(good) + len(first.chunks[-1])
    sha = _sha(tmp_path / "done" / "big.csv")
    assert set(ids) == {row_event_id(sha, line) for line in good}
    # The checkpoint: the line of the last row of the last chunk acknowledged AND recorded.
    recorded = 4 * (crash_after - 1)
    assert outcome.resumed_after == (sorted(good)[recorded - 1] if recorded else 0)
    assert outcome.sent == len(good) - 4 * (crash_after - 1)


def test_a_stop_between_chunks_leaves_the_file_to_resume(tmp_path: Path,
                                                         checkpoints: Checkpoints) -> None:
    text, good = _rows(12)
    path = tmp_path / "f.csv"
    path.write_text(text, encoding="utf-8")
    stop = threading.Event()

    class StoppingSink(MemorySink):
        def publish_many(self, events: Iterable[EventModel]) -> int:
            count = super().publish_many(events)
            stop.set()  # SIGTERM arrives while the first chunk is acknowledged
            return count

    sink = StoppingSink()
    drop = FileDrop(sink, checkpoints, options=Options(now=NOW, chunk=5), stop=stop)
    outcome = drop.ingest(path)
    assert (outcome.status, outcome.resumed_after) == ("interrupted", 6)
    assert "interrupted at line 6" in outcome.summary()
    assert path.exists()
    rest = MemorySink()
    assert _drop(rest, checkpoints, chunk=5).ingest(path).status == "done"
    assert len(sink.events) + len(rest.events) == len(good)  # a clean stop re-sends nothing


def test_a_broker_away_for_a_while_is_retried(tmp_path: Path, checkpoints: Checkpoints) -> None:
    text, _ = _rows(3)
    (tmp_path / "f.csv").write_text(text, encoding="utf-8")
    sink = MemorySink(unavailable=2)
    assert _drop(sink, checkpoints, attempts=3).ingest(tmp_path / "f.csv").status == "done"
    assert len(sink.events) == 3
    (tmp_path / "g.csv").write_text(_rows(3, seed=9)[0], encoding="utf-8")
    with pytest.raises(BrokerUnavailable):
        _drop(MemorySink(unavailable=3), checkpoints, attempts=3).ingest(tmp_path / "g.csv")
    assert (tmp_path / "g.csv").exists()


def test_json_lines_file(tmp_path: Path, checkpoints: Checkpoints) -> None:
    path = tmp_path / "google.jsonl"
    path.write_text(
        '{"type": "module_completed", "siren": "732829320", "module_id": "website-create",'
        ' "occurred_at": "2009-03-05T10:00:00Z"}\n'
        "\n"
        '{"type": "module_completed", "siren": "732829320", "module_id": "nope",'
        ' "occurred_at": "2009-03-05T10:00:00Z"}\n'
        "oops\n", encoding="utf-8")
    sink = MemorySink()
    outcome = _drop(sink, checkpoints).ingest(path)
    assert (outcome.rows, outcome.produced, outcome.rejected) == (3, 1, 2)
    assert sink.events[0].source == "google"
    report = _report(tmp_path / "done" / "google.jsonl.report.csv")
    assert [row[:2] for row in report[1:]] == [["3", "module_id"], ["4", "line"]]


def test_watcher_waits_for_a_file_to_stop_growing(tmp_path: Path) -> None:
    watcher = Watcher(tmp_path, stable_polls=2)
    path = tmp_path / "export.csv"
    path.write_text("SIREN", encoding="utf-8")
    (tmp_path / "export.csv.report.csv").write_text("x", encoding="utf-8")
    (tmp_path / "~$export.xlsx").write_text("lock", encoding="utf-8")
    (tmp_path / "empty.csv").touch()
    (tmp_path / "done").mkdir()
    assert watcher.poll() == []
    assert watcher.poll() == []
    with path.open("a", encoding="utf-8") as out:
        out.write(";Nom\n")  # still being written
    assert watcher.poll() == []
    assert watcher.poll() == []
    assert watcher.poll() == [path]
    assert watcher.poll() == [path]  # until it leaves the inbox
    path.unlink()
    assert watcher.poll() == []


def test_derived_ids_depend_on_content_and_line() -> None:
    assert row_event_id("ab", 2) == row_event_id("ab", 2)
    assert len({row_event_id("ab", 2), row_event_id("ab", 3), row_event_id("ac", 2)}) == 3
