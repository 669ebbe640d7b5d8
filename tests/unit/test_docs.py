"""The operator doc lists every topic of the catalog, as the catalog defines it."""

from __future__ import annotations

from pathlib import Path

from schemas.catalog import CATALOG

DOC = Path(__file__).parents[2] / "docs" / "operations.md"


def test_every_catalog_topic_is_documented_with_its_layout() -> None:
    text = DOC.read_text(encoding="utf-8")
    for topic in CATALOG:
        row = f"| `{topic.name}` | {topic.key} | {topic.partitions} | " \
              f"{'yes' if topic.compacted else 'no'} |"
        assert row in text, f"docs/operations.md lacks or misstates {topic.name}"
