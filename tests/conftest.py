"""Shared fixtures: one real broker per test session, fresh topics and groups per test.

The broker is the embedded one unless ``KAFKA_BOOTSTRAP_SERVERS`` names another
(CI's Apache Kafka). A broker that cannot be reached fails the tests that need it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hub import kafka
from hub.broker import EmbeddedBroker, without_transactions
from hub.config import Settings


@contextmanager
def broker_for_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The configured broker, or an embedded one started (and stopped) here."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        yield configured
        return
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with without_transactions(), EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of the session's broker (started here if none is configured)."""
    with broker_for_tests(tmp_path_factory) as address:
        yield address


@pytest.fixture
def settings(bootstrap: str, tmp_path: Path) -> Settings:
    """Settings of one test: its own topic prefix, groups and data directory."""
    tag = uuid.uuid4().hex[:10]
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=f"t{tag}.",
        group_prefix=f"g{tag}",
        data_dir=tmp_path / "data",
        replication_factor=int(os.environ.get("PASSPORT_HUB_REPLICATION_FACTOR", "1")),
        log_format="console",
    )


@pytest.fixture
def topics(settings: Settings) -> Settings:
    """Settings whose catalog topics exist on the broker."""
    kafka.ensure_topics(settings)
    return settings
