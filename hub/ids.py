"""Deterministic event ids: an emitted event's id is derived from its cause.

A record re-emitted after a crash carries the same id as the first time, so
readers recognise it as the same event and drop it (DESIGN.md, Effectively once).
"""

from __future__ import annotations

import uuid

#: Fixed namespace of the hub's derived ids; changing it would change every id.
NAMESPACE = uuid.UUID("5b0e6c2e-2f7c-4d3e-9a51-6f1e3c9d8a10")


def derive(cause: str | uuid.UUID, purpose: str) -> str:
    """The id of the event that ``cause`` produces for ``purpose`` (UUIDv5, as text)."""
    return str(uuid.uuid5(NAMESPACE, f"{cause}/{purpose}"))
