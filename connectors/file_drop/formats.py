"""Reading dropped files: CSV as spreadsheets export it, and JSON Lines.

CSV comes with ``;`` (French locale exports) or ``,`` as delimiter, in UTF-8
with or without a BOM, in Windows-1252 from older spreadsheets, or in UTF-16
(Excel's "Unicode text", with its BOM or without). The whole file is read and
decoded at once: the encoding can only be decided by trying all of it, and
the checkpoint's sha256 needs every byte anyway.

What is not a clean file gets a precise reason, never a crash, and never a
row read halfway (issue 13, "Hostile input"; docs/operations.md, "File drop"):
a file that mixes UTF-8 with another encoding is refused whole, naming the
first line that is not UTF-8 (read as Windows-1252 it would get in as
mojibake); a record over ``LINE_LIMIT`` characters, a CSV row whose cell count
betrays another delimiter than the header's, and a last CSV row without its
line break (a file cut short: "78" cut to "7" would still be a département)
are reported and skipped, and the lines after them are read.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.errors import HubError

Kind = Literal["csv", "jsonl"]

#: Longest record read, in characters: the API's largest event body (64 KiB), so that a
#: row the API would refuse as too large is not read here either.
LINE_LIMIT = 64 * 1024

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = {b"\xff\xfe": "utf-16-le", b"\xfe\xff": "utf-16-be"}
_DELIMITERS = (";", ",", "\t")
# What a row separated otherwise than its header may be separated by.
_OTHER_DELIMITERS = (*_DELIMITERS, "|")
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
_CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
# A complete UTF-8 multi-byte sequence: in a file that is not UTF-8, the mark of a mix.
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}"
                            rb"|[\xf0-\xf4][\x80-\xbf]{3}")
_SAMPLE = 4096  # bytes looked at to tell UTF-16 without a BOM


class UnreadableFile(HubError):
    """A file that is not CSV or JSON Lines in a known encoding: rejected whole."""


@dataclass(frozen=True, slots=True)
class Line:
    """One record of a file: its line number (the header is line 1 in CSV) and its content."""

    number: int
    cells: list[str] = field(default_factory=list)
    """CSV: the row's cells, in column order."""
    obj: Any = None
    """JSON Lines: the decoded JSON value."""
    error: str | None = None
    """Why the line could not be read: not JSON, too long, cut short, another delimiter
    (after a CSV error of the csv module itself, nothing after it is read)."""


def decode(data: bytes) -> tuple[str, str]:
    """The text of a file and the encoding it was read with."""
    if data.startswith(_BOM):
        try:
            return data[len(_BOM):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"starts with a UTF-8 BOM but is not UTF-8: {exc}") from exc
    utf16 = _utf16(data)
    if utf16 is not None:
        return utf16
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        if _UTF8_SEQUENCE.search(data) is not None:
            line = data.count(b"\n", 0, exc.start) + 1
            raise UnreadableFile(
                f"mixes encodings: line {line} is not UTF-8, other lines are; save the "
                "file again as CSV UTF-8") from exc
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        # The five bytes cp1252 leaves undefined: Latin-1 reads every byte.
        return data.decode("latin-1"), "latin-1"


def _utf16(data: bytes) -> tuple[str, str] | None:
    """The text of a UTF-16 file (by its BOM, else by its NULs every other byte), or None.

    Text never holds NUL, so a file whose bytes alternate NUL / not NUL is
    UTF-16 of mostly Latin text, whatever its lack of a BOM says.
    """
    encoding = _UTF16_BOMS.get(data[:2])
    body = data[2:] if encoding else data
    if encoding is None:
        sample = data[:min(len(data), _SAMPLE) & ~1]  # an odd end is a cut file, told below
        if len(sample) < 4:
            return None
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        half = len(sample) // 2
        if odd >= 0.9 * half and even <= 0.1 * half:
            encoding = "utf-16-le"
        elif even >= 0.9 * half and odd <= 0.1 * half:
            encoding = "utf-16-be"
        else:
            return None
    try:
        return body.decode(encoding), encoding
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"looks like {encoding} but does not decode as it: {exc.reason} "
                             f"at byte {exc.start + len(data) - len(body)} (cut short?)") from exc


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV file from its header row: the most frequent of ``; , TAB``.

    Only the header is looked at: data rows carry decimal commas and free text,
    headers rarely do. A single-column file reads the same with any delimiter.
    (``csv.Sniffer`` was tried in its place: it raises on a single-column header and
    takes ``,`` for ``a;b,c;d``, where the majority says ``;``.)
    """
    counts = {delimiter: _count_unquoted(header_line, delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=lambda delimiter: counts[delimiter])
    return best if counts[best] else ","


def _count_unquoted(line: str, char: str) -> int:
    count, quoted = 0, False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif ch == char and not quoted:
            count += 1
    return count


def _first_record(text: str) -> str:
    """The header row's text: up to the first line break outside quotes (a quoted header
    cell may hold one), at most ``LINE_LIMIT`` characters."""
    quoted = False
    for at, ch in enumerate(text[:LINE_LIMIT]):
        if ch == '"':
            quoted = not quoted
        elif ch in "\r\n" and not quoted:
            return text[:at]
    return text[:LINE_LIMIT]


def kind_of(name: str, text: str) -> Kind:
    """CSV or JSON Lines: by the file's suffix, else by its first character."""
    suffix = name[name.rfind("."):].lower() if "." in name else ""
    if suffix in _JSONL_SUFFIXES:
        return "jsonl"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


class Reader:
    """The records of one decoded file, with how far through it the iteration is."""

    def __init__(self, name: str, data: bytes) -> None:
        self.text, self.encoding = decode(data)
        if "\x00" in self.text:
            raise UnreadableFile("contains NUL bytes: not a text file (a spreadsheet's "
                                 "native format? export it as CSV)")
        self.kind = kind_of(name, self.text)
        self._stream = io.StringIO(self.text, newline="")
        self.delimiter: str | None = None
        self.header: list[str] = []
        # The CSV record being read: its length so far, its quotes, how it ended.
        self._record = _Record()
        if self.kind == "csv":
            self._read_header()
        elif not self.text.strip():
            raise UnreadableFile("empty: no line to read")

    def _read_header(self) -> None:
        self.delimiter = sniff_delimiter(_first_record(self.text))
        self._csv = csv.reader(self._physical_lines(), delimiter=self.delimiter)
        try:
            self.header = next(self._csv, [])
        except csv.Error as exc:
            raise UnreadableFile(f"header row is not CSV: {exc}") from exc
        if self._record.overlong:
            raise UnreadableFile(f"the header row is over {LINE_LIMIT} characters")
        if not any(cell.strip() for cell in self.header):
            raise UnreadableFile("no header row (the first line is empty)")
        if len(self.header) == 1 and "|" in self.header[0]:
            raise UnreadableFile("the header is one column holding '|': separate columns "
                                 "with ';', ',' or a tab")
        # Said here, as the file's reason: a file cut right after its header has no row to
        # carry one, and an empty report would say nothing.
        if not self.text[self._stream.tell():].strip(f' \t\r\n"{self.delimiter}'):
            raise UnreadableFile("no row after the header")
        self._record = _Record()

    def fraction(self) -> float:
        """How much of the text has been read, 0 to 1."""
        return self._stream.tell() / len(self.text) if self.text else 1.0

    def __iter__(self) -> Iterator[Line]:
        return self._csv_lines() if self.kind == "csv" else self._json_lines()

    def _physical_lines(self) -> Iterator[str]:
        """The text's lines for the csv module, a record's lines past ``LINE_LIMIT`` blanked.

        A blank line inside a record is harmless (the record is refused whole);
        a 100 MB line never reaches the csv module's field buffer.
        """
        for raw in self._stream:
            record = self._record
            record.chars += len(raw)
            record.quotes += raw.count('"')
            record.ended = raw.endswith(("\n", "\r"))
            if record.chars > LINE_LIMIT:
                record.overlong = True
                yield "\n"
            else:
                yield raw
        self._record.eof = True  # the record the csv module returns now ends with the text

    def _csv_lines(self) -> Iterator[Line]:
        number = 1  # the header
        while True:
            try:
                cells = next(self._csv, None)
            except csv.Error as exc:
                # The csv module cannot resume after an error: the rest is unread.
                yield Line(number + 1, error=f"not CSV from here on: {exc}")
                return
            if cells is None:
                return
            number += 1
            record, self._record = self._record, _Record()
            error = self._row_error(cells, record)
            if error is not None:
                yield Line(number, error=error)
            # Spreadsheets export trailing blank rows; they are no one's data.
            elif any(cell.strip() for cell in cells):
                yield Line(number, cells=cells)

    def _row_error(self, cells: list[str], record: _Record) -> str | None:
        """Why a CSV row is not read as it stands, or None."""
        if record.overlong:
            return (f"over {LINE_LIMIT} characters, not read (an unclosed quote runs "
                    "on to here?)" if record.quotes % 2 else
                    f"over {LINE_LIMIT} characters, not read")
        if record.eof and record.quotes % 2:
            return "the file ends inside a quoted cell: cut short, or a quote unclosed"
        if not record.ended and any(cell.strip() for cell in cells):
            return ("the file ends in this row, without a line break: cut short? end it "
                    "with a line break")
        width = len(self.header)
        if width > 1 and len(cells) == 1 and not record.quotes:
            other = next((d for d in _OTHER_DELIMITERS
                          if d != self.delimiter and d in cells[0]), None)
            if other is not None:
                return (f"one cell where the header has {width}: this row is separated "
                        f"by {other!r}, the header by {self.delimiter!r}")
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            return (f"{len(cells)} cells where the header has {width}: a "
                    f"{self.delimiter!r} inside a cell? quote that cell")
        return None

    def _json_lines(self) -> Iterator[Line]:
        for number, raw in enumerate(self._stream, start=1):
            if len(raw) > LINE_LIMIT:
                yield Line(number, error=f"over {LINE_LIMIT} characters, not read")
                continue
            text = raw.strip()
            if not text:
                continue
            try:
                yield Line(number, obj=json.loads(text))
            except json.JSONDecodeError as exc:
                yield Line(number, error=f"not JSON: {exc.msg} at column {exc.colno}")
            except RecursionError:
                yield Line(number, error="not an event: JSON nested too deeply")
            except ValueError:  # json's only other one: an integer of thousands of digits
                yield Line(number, error="not an event: a number thousands of digits long")


@dataclass(slots=True)
class _Record:
    """What the csv module was fed for the record it is reading."""

    chars: int = 0
    quotes: int = 0
    ended: bool = True
    """Whether its last line ended with a line break."""
    eof: bool = False
    """Whether the text ended while it was read (an open quote then runs to the end)."""
    overlong: bool = False
