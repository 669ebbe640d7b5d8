"""Restores run in slices between polls, and stop when their partition is revoked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.restoring import Restorations, restore_all
from hub.store import Store


class FakeTask:
    """A restore that needs ``steps`` slices (hub.restoring.RestoreTask)."""

    def __init__(self, partition: int, steps: int, log: list[str]) -> None:
        self.partition, self.left, self.log = partition, steps, log
        self.abandoned = False

    def step(self, deadline: float) -> bool:
        self.log.append(f"step {self.partition} until {deadline}")
        self.left -= 1
        return self.left == 0

    def abandon(self) -> None:
        self.abandoned = True


class FakeRestorer:
    """Partitions 0 and 2 need restoring; the others are current (hub.restoring.Restorer)."""

    checkpoints = ("passports",)

    def __init__(self) -> None:
        self.log: list[str] = []
        self.tasks: dict[int, FakeTask] = {}

    def begin(self, store: Store, partition: int) -> FakeTask | None:
        if partition not in (0, 2):
            return None
        self.tasks[partition] = FakeTask(partition, 2, self.log)
        return self.tasks[partition]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.sqlite") as opened:
        yield opened


def test_only_partitions_that_need_it_are_restored_a_slice_at_a_time_in_turn(
        store: Store) -> None:
    restorer = FakeRestorer()
    restorations = Restorations(restorer, store, slice_s=1.0, clock=lambda: 100.0)
    assert restorations.begin([0, 1, 2]) == {0, 2}
    assert restorations.step() == []
    assert restorations.step() == []
    assert restorations.step() == [0]
    assert restorations.partitions == {2}
    assert restorations.step() == [2]
    assert restorations.step() == []
    assert restorer.log == [f"step {p} until 101.0" for p in (0, 2, 0, 2)]


def test_a_revoked_partition_s_restore_is_abandoned(store: Store) -> None:
    restorer = FakeRestorer()
    restorations = Restorations(restorer, store)
    restorations.begin([0, 2])
    restorations.step()
    restorations.abandon([0, 5])
    assert restorer.tasks[0].abandoned
    assert not restorer.tasks[2].abandoned
    assert restorations.partitions == {2}
    # Assigned again later, it is begun anew.
    assert restorations.begin([0]) == {0, 2}
    assert not restorer.tasks[0].abandoned


def test_restore_all_runs_each_to_completion(store: Store) -> None:
    restorer = FakeRestorer()
    restore_all(restorer, store, [0, 1, 2])
    assert [line.split(" until ")[0] for line in restorer.log] == [
        "step 0", "step 0", "step 2", "step 2"]
