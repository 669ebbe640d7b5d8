"""The code cites its design in the repository, and what it cites is there."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
_SOURCES = [path for folder in ("schemas", "hub", "connectors", "services", "bench")
            for path in (ROOT / folder).rglob("*.py")]
_CITED = re.compile(r"docs/architecture\.md, ([A-Z][a-z]+(?: [a-z]+)*)")


def test_no_source_cites_a_design_note_outside_the_repository() -> None:
    outside = [str(path.relative_to(ROOT)) for path in _SOURCES
               if re.search(r"\b(DESIGN|DOMAIN|CONVENTIONS)\.md\b", path.read_text("utf-8"))]
    assert outside == []


def test_every_section_the_code_cites_exists() -> None:
    headings = {line.lstrip("#").strip() for line in DOC.read_text("utf-8").splitlines()
                if line.startswith("#")}
    cited = {match.group(1) for path in _SOURCES
             for match in _CITED.finditer(path.read_text("utf-8").replace("\n", " "))}
    assert cited, "the code cites docs/architecture.md"
    assert cited <= headings, cited - headings
