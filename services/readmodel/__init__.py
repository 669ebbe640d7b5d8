"""The query side: the state, webhook and delivery topics materialised into SQLite, read-only."""

from services.readmodel.consistency import Token
from services.readmodel.materialiser import TOPICS, ReadModel

__all__ = ["TOPICS", "ReadModel", "Token"]
