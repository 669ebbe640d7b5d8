"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.readmodel.queries import Queries
from services.readmodel.store import Writer


@pytest.fixture
def model(tmp_path: Path) -> Iterator[tuple[Writer, Queries]]:
    """A read-model file on disk: its writer, and queries over it."""
    path = tmp_path / "rm.sqlite"
    writer = Writer(path)
    yield writer, Queries(path)
    writer.close()
