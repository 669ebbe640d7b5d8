"""Derived ids are what makes a re-emitted event the same event."""

from __future__ import annotations

import uuid

from hub.ids import derive


def test_same_cause_same_id_and_purposes_differ() -> None:
    cause = uuid.UUID("6f1c4e0a-6d1e-4d5a-9a0b-3f0f5e1d2c3b")
    assert derive(cause, "lead") == derive(str(cause), "lead")
    assert derive(cause, "lead") != derive(cause, "lead-requested")
    assert uuid.UUID(derive(cause, "lead")).version == 5
