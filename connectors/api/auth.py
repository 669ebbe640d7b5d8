"""Who is calling: bearer tokens checked against the keys file (or the dev key), scopes and
tenants.

Tokens are looked up by their SHA-256 and then compared with
``hmac.compare_digest``: the lookup's timing can only reveal bits of a hash,
from which no token can be recovered. The keys file is re-read when it
changes (checked at most every ``RELOAD_EVERY_S``), so a key added or revoked
with ``python -m connectors.api.keys`` takes effect without a restart; a file
that fails to load keeps the keys already loaded. A key past its
``expires_at`` is refused like an unknown one. Neither tokens nor hashes are
ever logged: only key ids and partners.

A ``Caller`` carries its key's tenant (``connectors/api/keys.py``): the
routes ask it whether it ``covers`` a département, ``speaks_for`` a reseller,
and ``refusal`` says why it may not write one event for another tenant's
business, organisation or reseller (connectors/api/scopes.py asks these in
their order, for the API's ingest and the file drop alike).
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.api import problems
from connectors.api.keys import ADMIN, PASSPORTS_READ, ROLES, ApiKey, load, token_hash
from connectors.api.problems import ProblemError
from hub import logs
from hub.errors import ConfigError
from schemas.models import BusinessEnrolled, EventModel

#: How often, at most, the keys file's modification time is checked.
RELOAD_EVERY_S = 2.0
#: The key id the dev key logs as.
DEV_KEY_ID = "dev"
#: The events about a business a delegation writes: what its départements bind.
DELEGATION_EVENTS = frozenset(ROLES["delegation"]) - {PASSPORTS_READ}
#: The training events: what a trainer key's organisation binds.
TRAINING_EVENTS = frozenset(ROLES["trainer"])

#: The département a business has in the read model: its code, "" while it awaits its
#: enrolment, None when the read model does not know it (``departement_of``).
DepartementOf = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: which key, whose, what it may do, and for which tenant.

    ``departements`` and ``trainer_org`` are None for a key bound to none: an admin
    key, the dev key, or a key from before the binding (unrestricted, as it was).
    """

    key_id: str
    partner: str
    scopes: frozenset[str]
    reseller_id: str | None = None
    departements: frozenset[str] | None = None
    trainer_org: str | None = None
    rate_limited: bool = True
    """False for the dev key only (connectors/api/ratelimit.py)."""

    @property
    def admin(self) -> bool:
        return ADMIN in self.scopes

    def may_send(self, event_type: str) -> bool:
        return self.admin or event_type in self.scopes

    def speaks_for(self, reseller_id: str) -> bool:
        """Whether this caller may act for ``reseller_id`` (its own, or any as admin)."""
        return self.admin or self.reseller_id == reseller_id

    @property
    def reads_passports(self) -> bool:
        return self.admin or PASSPORTS_READ in self.scopes

    def covers(self, departement: str | None) -> bool:
        """Whether this caller may see and write the businesses of ``departement`` (None or
        "": a business with no known département, which only an unbound key sees)."""
        if self.admin or self.departements is None:
            return True
        return departement in self.departements

    def looks_up(self, event: EventModel) -> bool:
        """Whether ``refusal`` asks the read model about ``event``'s business (a file read)."""
        return self.departements is not None and not self.admin and \
            event.__dict__.get("type") in DELEGATION_EVENTS

    def refusal(self, event: EventModel, departement_of: DepartementOf) -> str | None:
        """Why this caller may not write ``event`` for its tenant, or None (the scope and the
        reseller are ``Ingest``'s checks; this is the département and the organisation).

        A delegation writes only for a business of its départements: an enrolment's own
        département must be one, and so must the one the read model knows for the
        business (an enrolment in 78 of a business enrolled in 95 would move it). A
        business the read model does not know has no département to check but the
        enrolment's (``departement_of`` raises the 503 ``ProblemError`` of a read model
        that cannot tell yet). A trainer key reports only under its own organisation (an
        event naming none is attributed to none, and allowed).
        """
        if self.admin:
            return None
        fields = event.__dict__  # pydantic's own: no getattr() on a field a model lacks
        kind = fields.get("type")
        if self.looks_up(event):
            return self._departement_refusal(event, departement_of)
        if self.trainer_org is not None and kind in TRAINING_EVENTS:
            named = fields.get("trainer_org")
            if named is not None and named != self.trainer_org:
                return f"key {self.key_id} reports training for {self.trainer_org} only"
        return None

    def _departement_refusal(self, event: EventModel,
                             departement_of: DepartementOf) -> str | None:
        siren = str(event.__dict__["siren"])
        if isinstance(event, BusinessEnrolled) and not self.covers(event.departement):
            return (f"key {self.key_id} may not enrol a business in département "
                    f"{event.departement}")
        known = departement_of(siren)
        if known and not self.covers(known):
            return f"key {self.key_id} may not speak for business {siren}"
        return None


def caller_of(key: ApiKey) -> Caller:
    """The caller a key of the keys file speaks as (the API's, and the file drop's for a
    file in that key's inbox). It does not check the key's expiry: its reader does."""
    return Caller(key.key_id, key.partner, frozenset(key.scopes), key.reseller_id,
                  frozenset(key.departements) or None, key.trainer_org)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A loaded key: its hash (for the constant-time check), caller, and end (epoch s)."""

    digest: str
    caller: Caller
    expires_at: float | None


class KeyRing:
    """The keys the API accepts: a keys file, a dev key, or both (``clock``: epoch seconds,
    for the keys' expiry)."""

    def __init__(self, keys_file: Path | None, dev_key: str | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        if keys_file is None and not dev_key:
            raise ConfigError(
                "the API has no keys: set PASSPORT_HUB_API_KEYS_FILE (make one with "
                "`python -m connectors.api.keys add`), or PASSPORT_HUB_DEV_API_KEY for a dev stack")
        self.log = logs.get().bind(component="auth")
        self._file = keys_file
        self._dev = dev_key.encode("utf-8") if dev_key else None
        self._clock = clock
        self._lock = threading.Lock()
        self._by_hash: dict[str, _Entry] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
        self._expired_logged: set[str] = set()
        if keys_file is not None:
            try:
                self._load(keys_file)
            except ValueError as exc:
                raise ConfigError(str(exc)) from exc

    @property
    def dev_key_enabled(self) -> bool:
        return self._dev is not None

    def __len__(self) -> int:
        return len(self._by_hash)

    def _load(self, path: Path) -> None:
        try:
            stamp = _stamp(path)  # before reading: a change while reading is seen next time
        except OSError as exc:
            raise ValueError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
        keys = load(path)
        self._by_hash = {key.sha256: _Entry(key.sha256, caller_of(key), _epoch(key))
                         for key in keys}
        self._stamp = stamp
        self.log.info("auth.keys_loaded", keys=len(keys), file=str(path))
        for key in keys:
            for role in key.unbound():
                # Loaded and unrestricted within its role, as before the binding existed.
                self.log.warning("auth.key_unbound", key_id=key.key_id, role=role,
                                 hint="bind it: python -m connectors.api.keys bind")

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._file is None or now - self._checked < RELOAD_EVERY_S:
            return
        with self._lock:
            if now - self._checked < RELOAD_EVERY_S:
                return
            self._checked = now
            try:
                if _stamp(self._file) != self._stamp:
                    self._load(self._file)
            except (OSError, ValueError) as exc:
                self.log.error("auth.keys_reload_failed", error=str(exc))

    def caller(self, token: str) -> Caller | None:
        """The caller a token belongs to, or None (unknown, revoked or expired)."""
        raw = token.encode("utf-8")
        if self._dev is not None and hmac.compare_digest(raw, self._dev):
            return Caller(DEV_KEY_ID, "dev", frozenset({ADMIN}), rate_limited=False)
        self._maybe_reload()
        digest = token_hash(token)
        found = self._by_hash.get(digest)
        # The dict finds a candidate by hash; the constant-time comparison is the check.
        if found is None or not hmac.compare_digest(found.digest, digest):
            return None
        if found.expires_at is not None and self._clock() >= found.expires_at:
            self._log_expired(found.caller.key_id)
            return None
        return found.caller

    def _log_expired(self, key_id: str) -> None:
        if key_id not in self._expired_logged:  # once per key and process, not per request
            self._expired_logged.add(key_id)
            self.log.warning("auth.key_expired", key_id=key_id)


def _epoch(key: ApiKey) -> float | None:
    return None if key.expires_at is None else key.expires_at.timestamp()


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def departement_of(passport: Callable[[str], dict[str, Any] | None],
                   caught_up: Callable[[], bool]) -> DepartementOf:
    """The ``DepartementOf`` of a read side (its ``passport`` query and ``caught_up``).

    A business it does not know while it is still catching up may be one it has not
    read yet: that is a 503 ``ProblemError`` (retry), never a guess. The API is not
    ready (``/readyz``) until the read model has caught up, so this only answers the
    few requests that reach it before.
    """
    def lookup(siren: str) -> str | None:
        found = passport(siren)
        if found is None:
            if not caught_up():
                raise ProblemError(problems.unavailable_body(
                    "the read model is still catching up; retry"))
            return None
        return str(found.get("departement") or "")
    return lookup
