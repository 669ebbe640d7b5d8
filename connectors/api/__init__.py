"""The HTTP API: ingest of partner events, passport and lead queries, health and metrics."""

from connectors.api.app import create_app
from connectors.api.readside import ModelReadSide, ReadSide

__all__ = ["ModelReadSide", "ReadSide", "create_app"]
