"""Errors of the contract layer: one root, and a subclass per way a caller reacts."""

from __future__ import annotations

__all__ = ["ContractError", "MalformedRecordError", "UnknownSchemaError"]


class ContractError(ValueError):
    """Root of every contract failure; a ValueError so generic input handlers catch it too."""


class UnknownSchemaError(ContractError):
    """A fingerprint or record name that no schema in the registry carries.

    Often a newer writer than this reader: redeploying with its schemas fixes it,
    so a consumer may retry these later rather than treat the bytes as garbage.
    """


class MalformedRecordError(ContractError):
    """Bytes that are not a single-object record, or a datum that does not fit its schema."""
