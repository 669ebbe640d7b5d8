"""The inbox folder: a report beside each file read, then both settled in done/ or rejected/.

A file is moved only after everything it holds was produced and checkpointed,
so a file still in the inbox is one the drop has not finished with, and the
next run picks it up (and resumes after its checkpoint).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from connectors.file_drop.rows import FieldError

Folder = Literal["done", "rejected"]
#: The folders files are settled in: in every inbox, and never an inbox themselves.
SETTLED: tuple[Folder, ...] = ("done", "rejected")
REPORT_SUFFIX = ".report.csv"
#: Names the watcher never reads: reports, partial uploads, editors' lock files.
_SKIPPED_SUFFIXES = (REPORT_SUFFIX, ".tmp", ".part", ".partial", ".crdownload")
_SKIPPED_PREFIXES = (".", "~$")


def report_path(path: Path) -> Path:
    """Where the report of ``path`` is written: beside it, ``<name>.report.csv``."""
    return path.with_name(path.name + REPORT_SUFFIX)


def write_report(path: Path, errors: Iterable[FieldError]) -> Path:
    """Write the report of ``path``: one line per refused field (line, field, reason).

    UTF-8 with a BOM, so that a spreadsheet opens the accents right; written
    aside and renamed, so a report is never seen half-written.
    """
    target = report_path(path)
    partial = target.with_name(target.name + ".tmp")
    with partial.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["line", "field", "reason"])
        writer.writerows([error.line, error.field, error.reason] for error in errors)
    os.replace(partial, target)
    return target


def settle(path: Path, inbox: Path, folder: Folder) -> Path:
    """Move ``path`` and its report into ``inbox/folder``; return the file's new path.

    A name already taken there (the same export dropped twice) gets a counter.
    The report moves first: a crash in between leaves the file in the inbox,
    to be read again, rather than a file settled without its report.
    """
    destination = inbox / folder
    destination.mkdir(parents=True, exist_ok=True)
    target = destination / path.name
    counter = 1
    while target.exists() or report_path(target).exists():
        counter += 1
        target = destination / f"{path.stem}-{counter}{path.suffix}"
    report = report_path(path)
    if report.exists():
        os.replace(report, report_path(target))
    os.replace(path, target)
    return target


def is_candidate(path: Path) -> bool:
    """Whether a directory entry of the inbox is a dropped file to read."""
    name = path.name
    return (path.is_file() and not name.startswith(_SKIPPED_PREFIXES)
            and not name.endswith(_SKIPPED_SUFFIXES))
