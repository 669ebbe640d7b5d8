"""Undecodable records of the reseller topic: the table keeps its profiles, and the router
dead-letters them at stage "decode", with their bytes, once per store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.config import Settings
from hub.processor import Inbound, Rejected
from hub.store import Store
from schemas import catalog
from schemas.errors import MalformedRecordError, UnknownSchemaError
from services.routing.processor import RoutingProcessor
from services.routing.table import ResellerTable
from tests.unit.test_routing_processor import Clock, Feed, flush


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "routing.db") as opened:
        yield opened


def _raw(offset: int, value: bytes) -> Inbound:
    """An undecodable record as the reader hands it on (hub/reader.py)."""
    return Inbound(catalog.RESELLERS, 1, offset, b"a", "", {"__raw__": value}, 0)


def test_undecodable_profiles_are_dead_lettered_with_their_bytes_once(store: Store) -> None:
    table = ResellerTable(Settings())  # its reader is never started: no broker here
    table.apply([Feed().profile(reseller_id="a", name="A", departements=["78"],
                                categories=["e-commerce"], capacity=5, weight=1)])
    table.undecodable(_raw(7, b"\x00junk"), MalformedRecordError("bad marker"))
    table.undecodable(_raw(8, b"\xc3\x01\xde\xad"), UnknownSchemaError("no schema deadbeef"))
    assert sorted(table.registry) == ["a"]  # the profile in force stays
    processor = RoutingProcessor(table.registry, clock=Clock(), table=table)
    dead = flush(processor, store, frozenset({0}))
    assert all(isinstance(d, Rejected) for d in dead)
    assert [(d.stage, d.inbound.offset, d.inbound.datum["__raw__"], type(d.error))
            for d in dead if isinstance(d, Rejected)] == [
        ("decode", 7, b"\x00junk", MalformedRecordError),
        ("decode", 8, b"\xc3\x01\xde\xad", UnknownSchemaError)]
    # The next start reads the topic from the beginning and meets them again: no new letter.
    table.undecodable(_raw(7, b"\x00junk"), MalformedRecordError("bad marker"))
    assert flush(processor, store, frozenset({0})) == []
