"""The hub's error hierarchy: one root, a subclass where a caller acts differently.

Contract errors (a record that does not decode, an unknown schema) are raised by
``schemas.errors.ContractError``: ``schemas`` sits beneath ``hub`` in the import
order, so it cannot subclass ``HubError``; callers catch both where both apply.
"""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose."""


class ConfigError(HubError):
    """The configuration is invalid or incomplete."""


class BrokerUnavailable(HubError):
    """The Kafka broker could not be reached or did not acknowledge in time."""


class BrokerStartError(HubError):
    """The embedded broker could not be started."""


class StoreError(HubError):
    """The local state store is unusable (corrupt, wrong owner, wrong version)."""
