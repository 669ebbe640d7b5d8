"""The process wiring's garbage-collector tuning is scoped: what it changes, it gives back."""

from __future__ import annotations

import gc

from hub.service import tuned_gc


def test_tuned_gc_freezes_start_up_and_restores_the_defaults() -> None:
    before = gc.get_threshold()
    kept = [object() for _ in range(10)]  # something alive before the tuning
    with tuned_gc():
        assert gc.get_threshold() == (20_000, 20, 20)
        assert gc.get_freeze_count() >= len(kept)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
