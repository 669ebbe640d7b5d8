"""Fixtures shared by the API's integration tests: a read model and the API over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.config import Settings
from services.readmodel import ReadModel
from tests.integration.test_api import Api, running


@pytest.fixture
def readmodel(topics: Settings, tmp_path: Path) -> Iterator[ReadModel]:
    model = ReadModel(topics, tmp_path / "readmodel.sqlite", poll_timeout_ms=100)
    model.start()
    yield model
    model.stop()


@pytest.fixture
def api(topics: Settings, readmodel: ReadModel, tmp_path: Path) -> Iterator[Api]:
    with running(topics, readmodel, tmp_path) as api:
        yield api
