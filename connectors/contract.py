"""The two shapes connectors plug into: a ``Source`` of partner events, a ``Sink`` for them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from schemas.models import EventModel

#: A source yields validated partner events, in the order they should be published.
Source = Iterable[EventModel]


class Sink(Protocol):
    """Where accepted events go; ``connectors.publish.Publisher`` is the Kafka one."""

    def publish(self, event: EventModel) -> None:
        """Write one event; return only once it is durably accepted (else raise)."""

    def publish_many(self, events: Iterable[EventModel]) -> int:
        """Write events in bulk; return their count once every one is accepted."""

    def ready(self) -> bool:
        """Whether a publish is expected to succeed now."""

    def close(self) -> None:
        """Flush and release the connection."""
