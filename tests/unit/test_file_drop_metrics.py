"""The file drop's metrics on real files and a real registry: files and rows by outcome, the
events ingested on channel file_drop, and a resumed file counted once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connectors.file_drop.checkpoint import Checkpoints
from connectors.file_drop.ingest import FileDrop, Options
from connectors.file_drop.metrics import FileDropMetrics
from hub.errors import BrokerUnavailable
from tests.unit.test_file_drop_ingest import NOW, Crash, MemorySink, _rows


class Counts:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = FileDropMetrics.create(self.registry)

    def drop(self, sink: MemorySink, checkpoints: Checkpoints, **options: Any) -> FileDrop:
        return FileDrop(sink, checkpoints, options=Options(now=NOW, backoff_s=0, **options),
                        metrics=self.metrics)

    def files(self, outcome: str) -> float:
        return self.registry.get_sample_value("passport_hub_file_drop_files_total",
                                              {"outcome": outcome}) or 0.0

    def rows(self, outcome: str) -> float:
        return self.registry.get_sample_value("passport_hub_file_drop_rows_total",
                                              {"outcome": outcome}) or 0.0

    def events(self, partner: str, event_type: str, outcome: str) -> float:
        return self.registry.get_sample_value("passport_hub_events_ingested_total", {
            "channel": "file_drop", "partner": partner, "type": event_type,
            "outcome": outcome}) or 0.0


@pytest.fixture
def checkpoints(tmp_path: Path) -> Checkpoints:
    return Checkpoints(tmp_path / "data" / "file-drop.sqlite")


@pytest.fixture
def counts() -> Counts:
    return Counts()


def test_files_rows_and_events_are_counted_by_outcome(tmp_path: Path, checkpoints: Checkpoints,
                                                      counts: Counts) -> None:
    text, good = _rows(10, bad_every=4)
    (tmp_path / "cefac-78.csv").write_text(text, encoding="utf-8")
    (tmp_path / "copie.csv").write_text(text, encoding="utf-8")
    (tmp_path / "empty.csv").write_text(_rows(2, bad_every=1)[0], encoding="utf-8")
    drop = counts.drop(MemorySink(), checkpoints, chunk=3)
    assert drop.ingest(tmp_path / "cefac-78.csv").status == "done"
    assert drop.ingest(tmp_path / "copie.csv").status == "duplicate"
    assert drop.ingest(tmp_path / "empty.csv").status == "rejected"
    assert (counts.files("done"), counts.files("duplicate"), counts.files("rejected")) == (1, 1, 1)
    assert (counts.rows("produced"), counts.rows("rejected")) == (len(good), 2 + 2)
    assert counts.events("delegation", "business_enrolled", "accepted") == len(good)
    assert counts.events("delegation", "business_enrolled", "rejected") == 4


def test_a_json_lines_file_counts_each_row_by_the_type_it_claims(
        tmp_path: Path, checkpoints: Checkpoints, counts: Counts) -> None:
    path = tmp_path / "google.jsonl"
    path.write_text(
        '{"type": "module_completed", "siren": "732829320", "module_id": "website-create",'
        ' "occurred_at": "2009-03-05T10:00:00Z"}\n'
        '{"type": "module_completed", "siren": "732829320", "module_id": "nope",'
        ' "occurred_at": "2009-03-05T10:00:00Z"}\n'
        '{"type": "lead_answered", "lead_id": "L1"}\n'
        "oops\n", encoding="utf-8")
    assert counts.drop(MemorySink(), checkpoints).ingest(path).status == "done"
    assert counts.events("trainer", "module_completed", "accepted") == 1
    assert counts.events("trainer", "module_completed", "rejected") == 1
    assert counts.events("reseller", "lead_answered", "rejected") == 1
    assert counts.events("other", "unknown", "rejected") == 1


def test_a_file_resumed_after_a_crash_counts_each_row_once(
        tmp_path: Path, checkpoints: Checkpoints, counts: Counts) -> None:
    text, good = _rows(25, bad_every=6)
    path = tmp_path / "big.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(Crash):  # the third chunk acknowledged, not checkpointed
        counts.drop(MemorySink(crash_after=3), checkpoints, chunk=4).ingest(path)
    assert counts.rows("produced") == 8
    assert counts.drop(MemorySink(), checkpoints, chunk=4).ingest(path).status == "done"
    assert (counts.rows("produced"), counts.rows("rejected")) == (len(good), 25 - len(good))
    assert counts.files("done") == 1


def test_a_broker_away_leaves_the_file_counted_unavailable(
        tmp_path: Path, checkpoints: Checkpoints, counts: Counts) -> None:
    (tmp_path / "f.csv").write_text(_rows(3)[0], encoding="utf-8")
    with pytest.raises(BrokerUnavailable):
        counts.drop(MemorySink(unavailable=3), checkpoints, attempts=3).ingest(tmp_path / "f.csv")
    assert (counts.files("unavailable"), counts.rows("produced")) == (1, 0)
