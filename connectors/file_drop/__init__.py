"""File drop: partners' CSV and JSON Lines files, validated like the API, produced exactly once."""

from connectors.file_drop.ingest import FileDrop, Options, Outcome

__all__ = ["FileDrop", "Options", "Outcome"]
