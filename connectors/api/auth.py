"""Who is calling: bearer tokens checked against the keys file (or the dev key), and scopes.

Tokens are looked up by their SHA-256 and then compared with
``hmac.compare_digest``: the lookup's timing can only reveal bits of a hash,
from which no token can be recovered. The keys file is re-read when it
changes (checked at most every ``RELOAD_EVERY_S``), so a key added or revoked
with ``python -m connectors.api.keys`` takes effect without a restart; a file
that fails to load keeps the keys already loaded. Neither tokens nor hashes
are ever logged: only key ids and partners.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from connectors.api.keys import ADMIN, PASSPORTS_READ, ApiKey, load, token_hash
from hub import logs
from hub.errors import ConfigError

#: How often, at most, the keys file's modification time is checked.
RELOAD_EVERY_S = 2.0
#: The key id the dev key logs as.
DEV_KEY_ID = "dev"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller: which key, whose, and what it may do."""

    key_id: str
    partner: str
    scopes: frozenset[str]
    reseller_id: str | None = None

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


def _caller(key: ApiKey) -> Caller:
    return Caller(key.key_id, key.partner, frozenset(key.scopes), key.reseller_id)


class KeyRing:
    """The keys the API accepts: a keys file, a dev key, or both."""

    def __init__(self, keys_file: Path | None, dev_key: str | None = None) -> None:
        if keys_file is None and not dev_key:
            raise ConfigError(
                "the API has no keys: set PASSPORT_HUB_API_KEYS_FILE (make one with "
                "`python -m connectors.api.keys add`), or PASSPORT_HUB_DEV_API_KEY for a dev stack")
        self.log = logs.get().bind(component="auth")
        self._file = keys_file
        self._dev = dev_key.encode("utf-8") if dev_key else None
        self._lock = threading.Lock()
        self._by_hash: dict[str, tuple[str, Caller]] = {}
        self._stamp: tuple[int, int] | None = None
        self._checked = 0.0
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
        self._by_hash = {key.sha256: (key.sha256, _caller(key)) for key in keys}
        self._stamp = stamp
        self.log.info("auth.keys_loaded", keys=len(keys), file=str(path))

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
        """The caller a token belongs to, or None."""
        raw = token.encode("utf-8")
        if self._dev is not None and hmac.compare_digest(raw, self._dev):
            return Caller(DEV_KEY_ID, "dev", frozenset({ADMIN}))
        self._maybe_reload()
        digest = token_hash(token)
        found = self._by_hash.get(digest)
        # The dict finds a candidate by hash; the constant-time comparison is the check.
        if found is None or not hmac.compare_digest(found[0], digest):
            return None
        return found[1]


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size
