"""Reading dropped files: encodings, delimiters, line numbers, JSON Lines."""

from __future__ import annotations

import csv

import pytest

from connectors.file_drop.formats import Reader, UnreadableFile, decode, kind_of, sniff_delimiter


@pytest.mark.parametrize(("header", "delimiter"), [
    ("SIREN;Raison sociale;Département", ";"),
    ("SIREN,Raison sociale,Département", ","),
    ("SIREN\tNom\tDept", "\t"),
    # Quoted delimiters do not count: a header with a comma inside quotes is still ;-separated.
    ('SIREN;"Nom, prénom";Dept', ";"),
    ('"a;b",c,d', ","),
    ("SIREN", ","),
])
def test_the_delimiter_is_sniffed_from_the_header(header: str, delimiter: str) -> None:
    assert sniff_delimiter(header) == delimiter


def test_utf8_with_and_without_bom() -> None:
    assert decode("Département".encode()) == ("Département", "utf-8")
    assert decode(b"\xef\xbb\xbf" + "Département".encode()) == ("Département", "utf-8-sig")


def test_not_utf8_falls_back_to_windows_1252() -> None:
    # Excel's "CSV (séparateur: point-virgule)" on Windows: cp1252, € is 0x80.
    text, encoding = decode("Département;Prix €".encode("cp1252"))
    assert (text, encoding) == ("Département;Prix €", "cp1252")


def test_bytes_undefined_in_1252_read_as_latin_1() -> None:
    assert decode(b"caf\xe9 \x81") == ("café \x81", "latin-1")


def test_a_bom_on_a_file_that_is_not_utf8_is_unreadable() -> None:
    with pytest.raises(UnreadableFile, match="BOM"):
        decode(b"\xef\xbb\xbfcaf\xe9")


def test_csv_rows_carry_spreadsheet_line_numbers_and_skip_blank_rows() -> None:
    data = b'SIREN;Nom\n732829320;"Martin\net fils"\n;\n\n552100554;Dupont\n'
    reader = Reader("x.csv", data)
    assert reader.header == ["SIREN", "Nom"]
    assert reader.delimiter == ";"
    lines = [(line.number, line.cells) for line in reader]
    # Record numbers as a spreadsheet shows them (header = 1), blank rows skipped.
    assert lines == [(2, ["732829320", "Martin\net fils"]), (5, ["552100554", "Dupont"])]
    assert reader.fraction() == 1.0


def test_crlf_and_latin1_csv() -> None:
    data = "SIREN;Raison sociale\r\n732829320;Crêperie\r\n".encode("cp1252")
    reader = Reader("x.csv", data)
    assert reader.encoding == "cp1252"
    assert [line.cells for line in reader] == [["732829320", "Crêperie"]]


def test_json_lines_report_the_lines_that_are_not_json() -> None:
    data = b'{"a": 1}\n\n{not json}\n[1, 2]\n'
    reader = Reader("x.jsonl", data)
    lines = list(reader)
    assert [(line.number, line.obj) for line in lines] == [(1, {"a": 1}), (3, None), (4, [1, 2])]
    assert lines[1].error is not None
    assert lines[1].error.startswith("not JSON")


def test_kind_by_suffix_then_by_content() -> None:
    assert kind_of("a.jsonl", "x") == "jsonl"
    assert kind_of("a.CSV", "{") == "csv"
    assert kind_of("export", '{"type": 1}') == "jsonl"
    assert kind_of("export", "SIREN;Nom") == "csv"


@pytest.mark.parametrize(("data", "why"), [
    (b"\n\nSIREN\n", "no header"),
    (b"PK\x03\x04\x00\x00", "NUL"),
])
def test_unreadable_files(data: bytes, why: str) -> None:
    with pytest.raises(UnreadableFile, match=why):
        Reader("x.csv", data)


def test_a_row_csv_cannot_read_ends_the_file_there() -> None:
    limit = csv.field_size_limit(20)  # a runaway quoted field, in small
    try:
        reader = Reader("x.csv", b'a;b\n1;2\n3;"' + b"x" * 30 + b'\n4;5\n')
        lines = list(reader)
    finally:
        csv.field_size_limit(limit)
    assert [(line.number, line.cells) for line in lines] == [(2, ["1", "2"]), (3, [])]
    assert lines[1].error is not None
    assert lines[1].error.startswith("not CSV from here on: field larger than field limit")
