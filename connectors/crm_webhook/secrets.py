"""Sealing of webhook signing secrets wherever they are kept (commands topic, store).

A sealed value is ``sealed:v1:`` and the base64 of a random 12-byte nonce and
the AES-256-GCM ciphertext (tag included); without a configured key the value
is kept as ``plain:<secret>`` and says so, so a later key still opens the old
values and the delivery component can warn that they are in clear.

The key is derived from ``PASSPORT_HUB_WEBHOOK_SECRET_KEY`` with HKDF-SHA256
and a fixed context rather than used as is: the operator's string may be of any
length and alphabet, and AES needs exactly 32 uniform bytes; the context
(``info``) binds the derived key to this one use, so the same string reused
elsewhere (another tool, a later format) never yields the same AES key. HKDF
is not a password hash: the setting is meant to be a long random string
(``openssl rand -base64 32``), not a word to guess.

Nothing here logs, and no error message carries a secret, sealed or not.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hub.config import Settings
from hub.errors import HubError

SEALED = "sealed:v1:"
PLAIN = "plain:"
_INFO = b"passport-hub/webhook-secrets/v1"
#: Also bound to the ciphertext, so a value sealed for another purpose with the same
#: key does not open as a webhook secret.
_AAD = b"passport-hub webhook signing secret"
_NONCE = 12
_TAG = 16
_SETTING = "PASSPORT_HUB_WEBHOOK_SECRET_KEY"


class SecretError(HubError):
    """A kept secret cannot be opened: no key, the wrong key, or a damaged value."""


class Sealer:
    """Seals and opens signing secrets with the configured key (or keeps them plain)."""

    def __init__(self, key: str | None) -> None:
        # An empty setting (``PASSPORT_HUB_WEBHOOK_SECRET_KEY=``) means unset, as for
        # every other optional setting: secrets kept plain, and the component says so.
        self._aead = AESGCM(_derive(key)) if key else None

    @classmethod
    def from_settings(cls, settings: Settings) -> Sealer:
        """The sealer of ``webhook_secret_key``."""
        key = settings.webhook_secret_key
        return cls(key.get_secret_value() if key is not None else None)

    @property
    def protected(self) -> bool:
        """Whether ``seal`` encrypts (a key is configured) or keeps values plain."""
        return self._aead is not None

    def seal(self, secret: str) -> str:
        """``secret`` as it may be kept: sealed with the key, or marked plain without one."""
        if self._aead is None:
            return PLAIN + secret
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, secret.encode("utf-8"), _AAD)
        return SEALED + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str) -> str:
        """The secret a kept value holds; ``SecretError`` when it cannot be opened."""
        if sealed.startswith(PLAIN):
            return sealed[len(PLAIN):]
        if not sealed.startswith(SEALED):
            raise SecretError("a kept webhook secret is neither sealed:v1: nor plain:")
        if self._aead is None:
            raise SecretError(f"a webhook secret is sealed but {_SETTING} is not set: "
                              "set it to the key it was sealed with")
        try:
            raw = base64.b64decode(sealed[len(SEALED):], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SecretError("a sealed webhook secret is damaged (not base64)") from exc
        if len(raw) < _NONCE + _TAG:
            raise SecretError("a sealed webhook secret is damaged (too short)")
        try:
            plain = self._aead.decrypt(raw[:_NONCE], raw[_NONCE:], _AAD)
        except InvalidTag as exc:
            raise SecretError(f"a sealed webhook secret does not open with {_SETTING}: "
                              "the key is not the one it was sealed with, or the value "
                              "was altered") from exc
        return plain.decode("utf-8")


def _derive(key: str) -> bytes:
    """The AES-256 key of an operator's string (see the module's docstring for why HKDF)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
        key.encode("utf-8"))
