"""Derived ids are what makes a re-emitted event the same event."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from hub.ids import NAMESPACE, derive


def test_same_cause_same_id_and_purposes_differ() -> None:
    cause = uuid.UUID("6f1c4e0a-6d1e-4d5a-9a0b-3f0f5e1d2c3b")
    assert derive(cause, "lead") == derive(str(cause), "lead")
    assert derive(cause, "lead") != derive(cause, "lead-requested")
    assert uuid.UUID(derive(cause, "lead")).version == 5


@given(st.one_of(st.uuids(), st.text()), st.text())
def test_derive_is_the_standard_uuid5_of_cause_and_purpose(cause: uuid.UUID | str,
                                                           purpose: str) -> None:
    assert derive(cause, purpose) == str(uuid.uuid5(NAMESPACE, f"{cause}/{purpose}"))


def test_a_derived_id_is_stable_across_releases() -> None:
    # Written down once: every lead and snapshot id on the topics depends on it.
    assert derive("732829320@pn.training.v1/2/0", "snapshot") == \
        str(uuid.uuid5(NAMESPACE, "732829320@pn.training.v1/2/0/snapshot"))
    assert derive("x", "y") == "251f0d28-beb9-5011-9441-f21296d63493"
