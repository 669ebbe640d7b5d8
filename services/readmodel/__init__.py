"""The query side: the passports and leads topics materialised into SQLite, read-only queries."""

from services.readmodel.materialiser import TOPICS, ReadModel

__all__ = ["TOPICS", "ReadModel"]
