"""Dead letters: what cannot be decoded or applied goes to ``pn.dlq.v1``, with its cause.

The record keeps its original key and value bytes; the cause travels in headers
so ops can list, inspect and redrive without guessing (docs/architecture.md, Guarantees).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Stage = Literal["decode", "validate", "apply", "ingest", "expire"]

#: Header names, the contract with ops tooling (``passport-hub dlq``).
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
STAGE = "dlq.stage"
ERROR_CLASS = "dlq.error.class"
ERROR_MESSAGE = "dlq.error.message"
COMPONENT = "dlq.component"

_MAX_MESSAGE = 1000


@dataclass(frozen=True, slots=True)
class Cause:
    """Why and where a record failed."""

    component: str
    stage: Stage
    error: BaseException
    topic: str
    partition: int
    offset: int

    def headers(self) -> list[tuple[str, bytes]]:
        """The cause as Kafka record headers."""
        message = str(self.error)[:_MAX_MESSAGE]
        return [
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
            (STAGE, self.stage.encode()),
            (ERROR_CLASS, type(self.error).__name__.encode()),
            (ERROR_MESSAGE, message.encode()),
            (COMPONENT, self.component.encode()),
        ]
