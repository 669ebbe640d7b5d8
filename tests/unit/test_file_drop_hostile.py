"""Mutated files in the file drop: a precise report line each, never a crash, never half a row.

Real files in temporary inboxes, a real SQLite checkpoint, the real reader,
rows and report; the broker is tests/unit/test_file_drop_ingest.py's
in-memory sink (the real one is tests/integration/test_file_drop.py). Each
file is checked whole after it settled (``assert_sound``): every row either
produced, clean, or in the report with its reason, never both; counts that
add up; a report whose every cell a spreadsheet shows as text. Then the same
checks hold over files hypothesis mutates from good ones: cut short,
re-encoded, bytes slipped in, a delimiter swapped, a cell made hostile or huge.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import random
import tempfile
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.file_drop.checkpoint import Checkpoints
from connectors.file_drop.formats import LINE_LIMIT
from connectors.file_drop.inbox import report_path
from connectors.file_drop.ingest import FileDrop, Options, Outcome, row_event_id
from connectors.synthetic.identities import siren
from schemas.fields import formula_safe
from tests.unit.test_fields_hostile import FORMULAS, FUZZ, GOOD_NAMES, assert_clean
from tests.unit.test_file_drop_ingest import MemorySink

NOW = datetime(2009, 6, 1, 12, 0, tzinfo=UTC)
HEADER = "SIREN;Raison sociale;Département;Date;Consentement"
SIRENS = [siren(random.Random(seed)) for seed in range(8)]

#: What the file drop was given and what became of it, for the campaign's figures.
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _figures() -> Iterator[None]:
    yield
    print(f"\n{__name__}: {dict(sorted(TALLY.items()))}")


def enrolments(names: list[str] | None = None, *, end: str = "\n") -> str:
    """A ;-separated enrolment file, one row per name (good names by default)."""
    names = names if names is not None else [f"Entreprise {n}" for n in range(6)]
    rows = [f"{SIRENS[n % len(SIRENS)]};{name};78;05/03/2009;oui" for n, name in enumerate(names)]
    return HEADER + "\n" + "\n".join(rows) + end


def enrolment_lines(count: int = 6, names: list[str] | None = None) -> str:
    """The same enrolments as JSON Lines, API bodies as they are."""
    names = names if names is not None else [f"Entreprise {n}" for n in range(count)]
    return "".join(json.dumps({"type": "business_enrolled", "siren": SIRENS[n % len(SIRENS)],
                               "name": name, "departement": "78",
                               "occurred_at": "2009-03-05T10:00:00+01:00"}) + "\n"
                   for n, name in enumerate(names))


class Dropped:
    """One file read by the file drop: its outcome, what the sink got, its report."""

    def __init__(self, name: str, outcome: Outcome, sink: MemorySink, report: list[list[str]],
                 data: bytes) -> None:
        self.outcome = outcome
        self.sink = sink
        self.report = report
        self.data = data
        self.csv = not name.endswith(".jsonl")

    def reasons(self, line: int) -> list[tuple[str, str]]:
        return [(field, reason) for number, field, reason in self.report[1:]
                if int(number) == line]

    def refused_lines(self) -> set[int]:
        """The rows the report refuses (not line 0, the file, nor a CSV's header notes)."""
        notes = {0, 1} if self.csv else {0}
        return {int(row[0]) for row in self.report[1:]} - notes

    def produced_lines(self) -> set[int]:
        """The rows the sink got, by their derived event ids (file hash and line)."""
        sha = hashlib.sha256(self.data).hexdigest()
        lines = max(len(self.data.splitlines()), self.outcome.rows) + 3
        by_id = {row_event_id(sha, line): line for line in range(1, lines)}
        return {by_id[str(event.event_id)] for event in self.sink.events
                if str(event.event_id) in by_id}


def drop(folder: Path, name: str, data: bytes, checkpoints: Checkpoints | None = None,
         **options: Any) -> Dropped:
    """Read one file as the drop does, in ``folder`` (its inbox), with a fresh checkpoint
    unless one is given (a shared one: opening one costs more than reading a small file)."""
    inbox = folder / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    path = inbox / name
    path.write_bytes(data)
    sink = MemorySink()
    with contextlib.ExitStack() as stack:
        if checkpoints is None:
            checkpoints = stack.enter_context(Checkpoints(folder / "file-drop.sqlite"))
        outcome = FileDrop(sink, checkpoints, options=Options(now=NOW, backoff_s=0, chunk=2,
                                                              **options)).ingest(path)
    assert outcome.settled is not None
    report = report_path(outcome.settled)
    with report.open(encoding="utf-8-sig", newline="") as text:
        rows = list(csv.reader(text))
    TALLY["files"] += 1
    TALLY[f"files {outcome.status}"] += 1
    TALLY["rows"] += outcome.rows
    TALLY["rows produced"] += outcome.produced
    TALLY["rows rejected"] += outcome.rejected
    dropped = Dropped(name, outcome, sink, rows, data)
    assert_sound(dropped)
    return dropped


def assert_sound(dropped: Dropped) -> None:
    """The invariants of any file, however broken: see the module's docstring."""
    outcome, sink, report = dropped.outcome, dropped.sink, dropped.report
    assert outcome.status in {"done", "rejected", "duplicate"}, outcome
    if outcome.status == "duplicate":  # the same bytes again (hypothesis repeats itself)
        assert sink.events == []
        assert report[1][:2] == ["0", "file"]
        return
    assert report[0] == ["line", "field", "reason"]
    for row in report[1:]:
        assert len(row) == 3, row
        assert row[0].isdigit(), row
        for cell in row:
            # Shown as text by a spreadsheet: no formula sign first, nothing unprintable.
            assert formula_safe(cell) == cell, row
            assert cell.isprintable(), row
        assert row[2], row
    assert len(sink.events) == outcome.produced
    for event in sink.events:
        assert_clean(event)
    refused, produced = dropped.refused_lines(), dropped.produced_lines()
    assert len(produced) == outcome.produced
    # A row is produced or refused, never both, and every row read is one or the other.
    assert not produced & refused
    assert len(refused) == outcome.rejected
    assert outcome.produced + outcome.rejected == outcome.rows
    if outcome.status == "rejected":
        assert report[1:], "a file refused says why"


# -- formula injection --------------------------------------------------------------------------

@pytest.mark.parametrize("formula", FORMULAS, ids=ascii)
def test_a_formula_in_a_name_cell_refuses_that_row_alone(tmp_path: Path, formula: str) -> None:
    text = enrolments(["Boulangerie Martin", formula.replace(";", ","), "Crêperie"])
    dropped = drop(tmp_path, "cefac-78.csv", text.encode())
    assert (dropped.outcome.produced, dropped.outcome.rejected) == (2, 1)
    ((field, reason),) = dropped.reasons(3)
    assert field == "name"
    assert "runs as a formula" in reason
    assert {event.name for event in dropped.sink.events} == {"Boulangerie Martin", "Crêperie"}


@pytest.mark.parametrize("cell", ["=1+1", "+732829320", "-732829320", "@SUM(A1)"])
def test_a_formula_in_a_code_cell_is_refused_by_its_own_check(tmp_path: Path, cell: str) -> None:
    text = HEADER + f"\n{cell};Boulangerie;78;05/03/2009;oui\n"
    dropped = drop(tmp_path, "cefac-78.csv", text.encode())
    assert dropped.outcome.status == "rejected"
    assert [field for field, _ in dropped.reasons(2)] == ["siren"]


def test_a_formula_in_free_text_is_kept_as_text(tmp_path: Path) -> None:
    text = ("SIREN;Module;Date;Score;Comment\n"
            f"{SIRENS[0]};website-create;05/03/2009;5;- Très concret\n"
            f"{SIRENS[1]};website-create;05/03/2009;4;=1+1\n")
    dropped = drop(tmp_path, "google.csv", text.encode(), type="training_feedback")
    assert dropped.outcome.produced == 2
    assert [event.__dict__["comment"] for event in dropped.sink.events] == [
        "'- Très concret", "'=1+1"]


def test_hostile_headers_reach_the_report_as_text(tmp_path: Path) -> None:
    header = '"=HYPERLINK(""http://evil.example/"",""x"")";@cmd;\u202eXyz;' + HEADER
    text = header + f"\na;b;c;{SIRENS[0]};Boulangerie;78;05/03/2009;oui\n"
    dropped = drop(tmp_path, "cefac-78.csv", text.encode())
    assert dropped.outcome.produced == 1
    notes = [field for field, _ in dropped.reasons(1)]
    assert notes == ['\'=HYPERLINK("http://evil.example/","x")', "'@cmd", "\\u202eXyz"]


# -- cut short, badly encoded, too long, badly separated ----------------------------------------

def test_a_last_row_without_its_line_break_is_refused(tmp_path: Path) -> None:
    # Cut in the middle of the département, "78" -> "7": a valid code, a wrong business.
    text = enrolments(end="")[:-len("8;05/03/2009;oui")]
    dropped = drop(tmp_path, "cut.csv", text.encode())
    assert (dropped.outcome.produced, dropped.outcome.rejected) == (5, 1)
    ((field, reason),) = dropped.reasons(7)
    assert (field, reason) == ("line", "the file ends in this row, without a line break: "
                                       "cut short? end it with a line break")


def test_a_file_cut_inside_a_quoted_cell_refuses_that_row(tmp_path: Path) -> None:
    text = enrolments() + f'{SIRENS[0]};"Boulangerie Mar'
    dropped = drop(tmp_path, "cut.csv", text.encode())
    assert dropped.outcome.produced == 6
    assert dropped.reasons(8) == [("line", "the file ends inside a quoted cell: cut short, "
                                           "or a quote unclosed")]


def test_an_unclosed_quote_swallows_no_row_silently(tmp_path: Path) -> None:
    lines = enrolments().splitlines(keepends=True)
    lines[2] = lines[2].replace(";Entreprise", ';"Entreprise')
    dropped = drop(tmp_path, "quote.csv", "".join(lines).encode())
    # Rows 3 to 7 are one cell now: refused as one, at the row the quote opened.
    assert dropped.outcome.produced == 1
    assert dropped.reasons(3) == [("line", "the file ends inside a quoted cell: cut short, "
                                           "or a quote unclosed")]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8-sig", "utf-16", "utf-16-le",
                                      "utf-16-be"])
def test_the_encodings_spreadsheets_write_are_read(tmp_path: Path, encoding: str) -> None:
    text = enrolments(["Crêperie de l'Été", "Boulangerie Müller"])
    dropped = drop(tmp_path, "export.csv", text.encode(encoding))
    assert dropped.outcome.produced == 2
    assert [event.name for event in dropped.sink.events] == ["Crêperie de l'Été",
                                                              "Boulangerie Müller"]


def test_a_latin1_control_byte_refuses_its_row_by_field(tmp_path: Path) -> None:
    # 0x81 is undefined in Windows-1252: the file reads as Latin-1, where it is a C1 control.
    data = enrolments(["Boulangerie", "Caf\xe9 \x81"]).encode("latin-1")
    dropped = drop(tmp_path, "old.csv", data)
    assert dropped.outcome.produced == 1
    ((field, reason),) = dropped.reasons(3)
    assert field == "name"
    assert "U+0081" in reason


def test_a_file_mixing_utf8_and_latin1_is_refused_naming_the_line(tmp_path: Path) -> None:
    data = enrolments(["Crêperie", "Café"]).encode() + f"{SIRENS[2]};Caf\xe9;78;05/03/2009;oui\n" \
        .encode("latin-1")
    dropped = drop(tmp_path, "mixed.csv", data)
    assert dropped.outcome.status == "rejected"
    assert dropped.sink.events == []
    ((field, reason),) = dropped.reasons(0)
    assert field == "file"
    assert "line 4 is not UTF-8" in reason


def test_a_cut_utf16_file_is_refused_whole(tmp_path: Path) -> None:
    dropped = drop(tmp_path, "cut.csv", enrolments().encode("utf-16-le")[:-1])
    ((_, reason),) = dropped.reasons(0)
    assert "utf-16-le" in reason
    assert "cut short" in reason


def test_a_row_over_the_line_limit_is_refused_and_the_rest_read(tmp_path: Path) -> None:
    names = [f"Entreprise {n}" for n in range(6)]
    names[2] = "x" * (LINE_LIMIT + 10)
    dropped = drop(tmp_path, "huge.csv", enrolments(names).encode())
    assert (dropped.outcome.produced, dropped.outcome.rejected) == (5, 1)
    assert dropped.reasons(4) == [("line", f"over {LINE_LIMIT} characters, not read")]


def test_a_json_line_over_the_limit_is_refused_and_the_rest_read(tmp_path: Path) -> None:
    lines = enrolment_lines(4).splitlines(keepends=True)
    lines[1] = json.dumps({"type": "business_enrolled", "name": "x" * LINE_LIMIT}) + "\n"
    dropped = drop(tmp_path, "huge.jsonl", "".join(lines).encode())
    assert (dropped.outcome.produced, dropped.outcome.rejected) == (3, 1)
    assert dropped.reasons(2) == [("line", f"over {LINE_LIMIT} characters, not read")]


def test_a_row_separated_by_commas_in_a_semicolon_file_is_told_so(tmp_path: Path) -> None:
    lines = enrolments().splitlines(keepends=True)
    lines[3] = lines[3].replace(";", ",")
    dropped = drop(tmp_path, "mixed.csv", "".join(lines).encode())
    assert dropped.outcome.produced == 5
    assert dropped.reasons(4) == [("line", "one cell where the header has 5: this row is "
                                           "separated by ',', the header by ';'")]


def test_a_row_with_more_cells_than_the_header_is_refused(tmp_path: Path) -> None:
    lines = enrolments().splitlines(keepends=True)
    lines[1] = lines[1].replace("Entreprise 0", "Martin; fils")
    dropped = drop(tmp_path, "shifted.csv", "".join(lines).encode())
    assert dropped.outcome.produced == 5
    assert dropped.reasons(2) == [("line", "6 cells where the header has 5: a ';' inside a "
                                           "cell? quote that cell")]


def test_tab_separated_files_are_read_and_pipe_separated_ones_told(tmp_path: Path) -> None:
    tabs = drop(tmp_path / "a", "export.tsv", enrolments().replace(";", "\t").encode())
    assert tabs.outcome.produced == 6
    pipes = drop(tmp_path / "b", "export.csv", enrolments().replace(";", "|").encode())
    assert pipes.outcome.status == "rejected"
    assert pipes.reasons(0) == [("file", "unreadable: the header is one column holding '|': "
                                         "separate columns with ';', ',' or a tab")]


@pytest.mark.parametrize(("line", "why"), [
    ('{"type": "business_enrolled", "\\ud800": 1}', "not text (a lone surrogate)"),
    ('{"type": "business_enrolled", "name": "\\ud800"}', "valid string"),
    ('{"type": "business_enrolled", "name": "a\\u0000b"}', "U+0000"),
    ('{"type": "business_enrolled", "name": "=cmd|\' /C calc\'!A0"}', "runs as a formula"),
    ('{"type": "business_enrolled", "employees": NaN}', "employees"),
    ('{"type": "business_enrolled", "employees": ' + "9" * 5000 + "}", "thousands of digits"),
    ("[" * 100_000 + "]" * 100_000, "over"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('\ufeff{"type": "business_enrolled"}', "BOM"),
    ('"business_enrolled"', "not a JSON object"),
    ('{"type": {"$ne": null}}', "type"),
])
def test_hostile_json_lines_are_refused_one_by_one(tmp_path: Path, line: str, why: str) -> None:
    data = (enrolment_lines(2) + line + "\n" + enrolment_lines(1)).encode("utf-8", "surrogatepass")
    dropped = drop(tmp_path, "partner.jsonl", data)
    assert dropped.outcome.produced == 3
    reasons = dropped.reasons(3)
    assert reasons
    assert any(why in f"{field}: {reason}" for field, reason in reasons), reasons


def test_an_instant_before_the_first_utc_one_refuses_its_row_without_a_crash(
        tmp_path: Path) -> None:
    # schemas/envelope.py raised OverflowError on it, out of the file drop: the file stayed in
    # the inbox, and every poll read it, and crashed, again.
    early = json.dumps({"type": "business_enrolled", "siren": SIRENS[0], "name": "B",
                        "departement": "78", "occurred_at": "0001-01-01T00:30:00+01:00"})
    dropped = drop(tmp_path, "early.jsonl", (early + "\n" + enrolment_lines(1)).encode())
    assert dropped.outcome.produced == 1
    ((field, reason),) = dropped.reasons(1)
    assert field == "occurred_at"
    assert "out of the range" in reason or "year 1" in reason


def test_a_file_with_nul_bytes_is_refused_whole(tmp_path: Path) -> None:
    dropped = drop(tmp_path, "x.csv", enrolments().encode() + b"\x00\x01")
    assert dropped.outcome.status == "rejected"
    assert "NUL" in dropped.reasons(0)[0][1]


# -- mutated files --------------------------------------------------------------------------

_HOSTILE_BYTES = st.sampled_from([b"\x00", b"\xff", b"\xfe\xff", b"\xef\xbb\xbf", b"\xe9", b"\x81",
                                  b"\r", b"\n", b'"', b";", b",", b"\t", b"|", b"\x1b[2J",
                                  b"\xe2\x80\xae", b"\xed\xa0\x80", b"\xc3", b"=cmd|' /C calc'!A0",
                                  b"\\ud800", b"{", b"}", b"\xf0\x9f\x98"])
_CELLS = st.sampled_from([*FORMULAS, "", " ", '"', '""', "\u202eevil", "\u200b", "x" * 70_000,
                          "Bo\u0443langerie", "a;b", '"a;b"', "1e309", "oui", "32/13/2009"])


@st.composite
def mutated_file(draw: st.DrawFn) -> tuple[str, bytes]:
    """A good enrolment file (CSV or JSON Lines) with one thing done to it."""
    jsonl = draw(st.booleans())
    # Good files of their own (so that two mutations rarely make the same bytes).
    names = [f"Entreprise {n} {good}" for n, good in enumerate(draw(
        st.lists(st.sampled_from(GOOD_NAMES), min_size=1, max_size=8)))]
    name, text = (("partner.jsonl", enrolment_lines(names=names)) if jsonl
                  else ("cefac-78.csv", enrolments(names)))
    data = text.encode()
    how = draw(st.sampled_from(["cut", "insert", "cell", "encode", "delimiter", "newlines",
                                "delete"]))
    at = draw(st.integers(0, len(data)))
    if how == "cut":
        data = data[:at]
    elif how == "insert":
        data = data[:at] + draw(_HOSTILE_BYTES) + data[at:]
    elif how == "delete":
        data = data[:at] + data[at + draw(st.integers(1, 40)):]
    elif how == "cell":
        lines = text.splitlines(keepends=True)
        index = draw(st.integers(0, len(lines) - 1))
        cell = draw(_CELLS)
        lines[index] = (lines[index].replace("Entreprise", json.dumps(cell)[1:-1], 1) if jsonl
                        else lines[index].replace(f"Entreprise {index - 1}", cell, 1))
        data = "".join(lines).encode("utf-8", "surrogatepass")
    elif how == "encode":
        encoding = draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be",
                                         "utf-8-sig", "utf-32"]))
        data = text.replace("Entreprise", "Crêperie").encode(encoding, "replace")
    elif how == "delimiter":
        lines = text.splitlines(keepends=True)
        index = draw(st.integers(0, len(lines) - 1))
        lines[index] = lines[index].replace(";", draw(st.sampled_from([",", "\t", "|", ";;"])))
        data = "".join(lines).encode()
    else:
        data = data.replace(b"\n", draw(st.sampled_from([b"\r", b"\r\n", b"\n\n", b"\x85"])))
    return name, data


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Checkpoints]]:
    folder = tmp_path_factory.mktemp("mutated")
    with Checkpoints(folder / "file-drop.sqlite") as checkpoints:
        yield folder, checkpoints


@settings(FUZZ, max_examples=800)
@given(case=mutated_file())
def test_any_mutated_file_is_reported_precisely_and_never_half_produced(
        case: tuple[str, bytes], shared: tuple[Path, Checkpoints]) -> None:
    name, data = case
    folder, checkpoints = shared
    # assert_sound holds, whatever was done to the file.
    drop(Path(tempfile.mkdtemp(dir=folder)), name, data, checkpoints)


def test_a_report_is_read_back_by_the_csv_module_as_written(tmp_path: Path) -> None:
    # The report of the worst header of the lot, parsed back: three cells a row, all text.
    header = '"=1\n\r+1";' + HEADER
    dropped = drop(tmp_path, "x.csv", (header + f"\n;{SIRENS[0]};B;78;05/03/2009;oui\n").encode())
    assert dropped.outcome.produced == 1
    assert dropped.reasons(1) == [("'=1\\n\\r+1", "unknown column, ignored")]


@pytest.mark.parametrize(("name", "data", "why"), [
    ("x.csv", HEADER.encode() + b"\n", "no row after the header"),
    ("x.csv", HEADER.encode() + b"\n;;;;\n\n", "no row after the header"),
    ("x.jsonl", b"\n \n", "empty"),
    ("x.csv", b"", "no header"),
])
def test_a_file_without_a_row_says_so(tmp_path: Path, name: str, data: bytes, why: str) -> None:
    dropped = drop(tmp_path, name, data)
    ((field, reason),) = dropped.reasons(0)
    assert field == "file"
    assert why in reason
