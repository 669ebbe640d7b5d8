"""Who a dropped file speaks as: each inbox is bound to one API key, and a row may do only
what that key could do over HTTP (issue 13, "Hostile input"; docs/operations.md, "File drop").

The rule is the API's own, the very function its ingest asks (``connectors.api.scopes.
refusal``): whether a key may send an event type, speak for a reseller, answer a lead,
and write for a business, a département or a training organisation, in that order and
in its words. Only the shell differs: a refused row is a line of the file's report
instead of a 403 (or a 404 for an unknown lead), and what the API answers with a 503
(the read model still catching up, or away) makes the file wait in its inbox for the
next poll instead of being decided on a guess.

The key is read from the keys file (``PASSPORT_HUB_API_KEYS_FILE``, the API's) at each
file: a key revoked or expired since the last file binds nothing from the next one on,
with no restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from connectors.api import scopes
from connectors.api.auth import Caller, KeyRing, caller_of, departement_of
from connectors.api.keys import ApiKey, load
from connectors.api.problems import ProblemError
from connectors.file_drop.rows import FieldError
from hub import logs
from hub.errors import ConfigError, HubError, StoreError
from schemas.models import EventModel

#: The report's field for a row refused because of the inbox's key as a whole.
KEY_FIELD = "key"
#: The report's field for a row outside its key's scope (role, reseller, lead, tenant).
SCOPE_FIELD = "scope"


class ScopeUnavailable(HubError):
    """A row cannot be decided now (the read model is catching up or away, the keys file
    cannot be read): the file stays in its inbox, checkpointed, and the next poll tries
    again. Over HTTP the same row would get a 503."""


class Lookups(Protocol):
    """What the scope checks ask the read model (``services.readmodel.ReadModel``)."""

    @property
    def caught_up(self) -> bool: ...

    def passport(self, siren: str) -> dict[str, Any] | None: ...

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]: ...


def row_refusal(caller: Caller, event: EventModel, lookups: Lookups | None) -> str | None:
    """Why ``caller`` may not send ``event``, or None: the API's checks, in its words
    (raises ``ScopeUnavailable`` where it answers 503). ``lookups`` is asked only for the
    rows that need the read model (``connectors.api.scopes.asks_read_model``)."""
    try:
        why = scopes.refusal(
            caller, event,
            holder_of=scopes.holder_of(lambda lead_id: _needed(lookups).lead_holder(lead_id),
                                       lambda: _needed(lookups).caught_up),
            departement_of=departement_of(lambda siren: _needed(lookups).passport(siren),
                                          lambda: _needed(lookups).caught_up))
    except ProblemError as exc:  # the API's 503: the read model is still catching up
        raise ScopeUnavailable(str(exc)) from exc
    except StoreError as exc:
        raise ScopeUnavailable(f"the read model is not available yet: {exc}") from exc
    if why is None:
        return None
    if why.status == 503:  # the API's 503 for this event alone: the same, for the file
        error = why.log.get("error")
        raise ScopeUnavailable(why.detail if error is None else f"{why.detail} ({error})")
    return why.detail


def _needed(lookups: Lookups | None) -> Lookups:
    if lookups is None:
        raise ScopeUnavailable("this row needs the read model, and the file drop has none")
    return lookups


@dataclass(frozen=True, slots=True)
class Scope:
    """What the rows of one file may do: its key's caller, or why none of them may."""

    caller: Caller | None
    refused: str = ""
    """Why every row is refused (``caller`` None): no key, an unknown, revoked or expired
    one."""
    lookups: Lookups | None = None

    def check(self, line: int, event: EventModel) -> EventModel | list[FieldError]:
        """The event, or the report line that refuses it."""
        if self.caller is None:
            return [FieldError(line, KEY_FIELD, self.refused)]
        why = row_refusal(self.caller, event, self.lookups)
        return event if why is None else [FieldError(line, SCOPE_FIELD, why)]


class Inboxes:
    """The keys the inboxes are bound to: the API's keys file, the dev key, or both.

    ``scope(key_id)`` is the scope of a file in the inbox of key ``key_id`` (the
    subfolder of the watched folder named after it, or ``--key-id``); ``scope(None)``
    that of a file bound to no key, which only a dev stack's dev key lets in (with
    every scope, as the API lets the dev key in). Having neither a keys file nor a dev
    key is a configuration error, as for the API.
    """

    def __init__(self, keys_file: Path | None, dev_key: str | None = None, *,
                 lookups: Lookups | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if keys_file is None and not dev_key:
            raise ConfigError(
                "the file drop has no API keys to bind its inboxes to: set "
                "PASSPORT_HUB_API_KEYS_FILE (the API's keys file; each partner's inbox is "
                "<inbox>/<key id>/), or PASSPORT_HUB_DEV_API_KEY for a dev stack")
        self._file = keys_file
        # The dev key's caller as the API makes it (every scope), or None.
        self._dev = KeyRing(None, dev_key).caller(dev_key) if dev_key else None
        self.lookups = lookups
        self._clock = clock
        self._warned: set[str] = set()
        self.log = logs.get().bind(component="file_drop")
        if keys_file is not None:
            try:
                self._keys()  # a missing or invalid keys file fails at start, clearly
            except ScopeUnavailable as exc:
                raise ConfigError(str(exc)) from exc

    def scope(self, key_id: str | None) -> Scope:
        """The scope of a file of ``key_id``'s inbox (None: bound to no key)."""
        if key_id is None:
            if self._dev is not None:
                return Scope(self._dev, lookups=self.lookups)
            return Scope(None, "this file is in no partner's inbox: drop it in the "
                         "folder named after the partner's API key id (<inbox>/<key id>/), "
                         "or give --key-id")
        if self._file is None:
            return Scope(None, f"inbox {key_id}: the file drop has no keys file to find "
                         "its key in (PASSPORT_HUB_API_KEYS_FILE)")
        found = self._keys().get(key_id)
        if found is None:
            return Scope(None, f"inbox {key_id} names no key of the keys file (unknown or "
                         "revoked): nothing of this file was sent")
        if found.expires_at is not None and self._clock() >= found.expires_at:
            return Scope(None, f"key {key_id} expired at {found.expires_at.isoformat()}: "
                         "nothing of this file was sent")
        self._warn_unbound(found)
        return Scope(caller_of(found), lookups=self.lookups)

    def _keys(self) -> dict[str, ApiKey]:
        assert self._file is not None
        try:
            return {key.key_id: key for key in load(self._file)}
        except ValueError as exc:
            raise ScopeUnavailable(str(exc)) from exc

    def _warn_unbound(self, key: ApiKey) -> None:
        if key.key_id in self._warned:
            return
        self._warned.add(key.key_id)
        for role in key.unbound():  # unrestricted within its role, as the API lets it be
            self.log.warning("file_drop.key_unbound", key_id=key.key_id, role=role,
                             hint="bind it: python -m connectors.api.keys bind")
