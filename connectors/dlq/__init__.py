"""Dead letters for ops: list, show, and redrive the records the hub refused."""

from connectors.dlq.letters import DeadLetter, read_all
from connectors.dlq.redrive import NotRedrivable, Result, redrive, revalidate

__all__ = ["DeadLetter", "NotRedrivable", "Result", "read_all", "redrive", "revalidate"]
