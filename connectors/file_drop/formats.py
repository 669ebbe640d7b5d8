"""Reading dropped files: CSV as spreadsheets export it, and JSON Lines.

CSV comes with ``;`` (French locale exports) or ``,`` as delimiter, in UTF-8
with or without a BOM, or in Windows-1252 from older spreadsheets. The whole
file is read and decoded at once: the encoding can only be decided by trying
all of it, and the checkpoint's sha256 needs every byte anyway.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from hub.errors import HubError

Kind = Literal["csv", "jsonl"]

_BOM = b"\xef\xbb\xbf"
_DELIMITERS = (";", ",", "\t")
_JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
_CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})


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
    """Why the line could not be read (not JSON; for CSV, nothing after it is read)."""


def decode(data: bytes) -> tuple[str, str]:
    """The text of a file and the encoding it was read with."""
    if data.startswith(_BOM):
        try:
            return data[len(_BOM):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"starts with a UTF-8 BOM but is not UTF-8: {exc}") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        # The five bytes cp1252 leaves undefined: Latin-1 reads every byte.
        return data.decode("latin-1"), "latin-1"


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV file from its header row: the most frequent of ``; , TAB``.

    Only the header is looked at: data rows carry decimal commas and free text,
    headers rarely do. A single-column file reads the same with any delimiter.
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
        if self.kind == "csv":
            first = self.text.split("\n", 1)[0]
            self.delimiter = sniff_delimiter(first)
            self._csv = csv.reader(self._stream, delimiter=self.delimiter)
            try:
                self.header = next(self._csv, [])
            except csv.Error as exc:
                raise UnreadableFile(f"header row is not CSV: {exc}") from exc
            if not any(cell.strip() for cell in self.header):
                raise UnreadableFile("no header row (the first line is empty)")

    def fraction(self) -> float:
        """How much of the text has been read, 0 to 1."""
        return self._stream.tell() / len(self.text) if self.text else 1.0

    def __iter__(self) -> Iterator[Line]:
        return self._csv_lines() if self.kind == "csv" else self._json_lines()

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
            # Spreadsheets export trailing blank rows; they are no one's data.
            if any(cell.strip() for cell in cells):
                yield Line(number, cells=cells)

    def _json_lines(self) -> Iterator[Line]:
        for number, raw in enumerate(self._stream, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                yield Line(number, obj=json.loads(text))
            except json.JSONDecodeError as exc:
                yield Line(number, error=f"not JSON: {exc.msg} at column {exc.colno}")
