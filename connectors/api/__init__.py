"""The HTTP API: ingest of partner events, passport and lead queries, health and metrics."""

from connectors.api.app import ReadSide, create_app

__all__ = ["ReadSide", "create_app"]
