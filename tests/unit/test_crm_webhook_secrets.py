"""Sealing of webhook secrets: AES-256-GCM with the configured key, or plain without one."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from connectors.crm_webhook.secrets import Sealer, SecretError
from connectors.crm_webhook.signing import new_secret
from hub.config import Settings
from hub.errors import HubError

KEY = "k3y-0f-th3-0p3r4t0r-0123456789abcdef"


def test_sealed_with_a_key_opens_with_it() -> None:
    sealer, secret = Sealer(KEY), new_secret()
    sealed = sealer.seal(secret)
    assert sealer.protected
    assert sealed.startswith("sealed:v1:")
    assert secret not in sealed
    assert secret.removeprefix("whsec_") not in sealed
    assert sealer.open(sealed) == secret
    assert Sealer(KEY).open(sealed) == secret  # the key, not the instance, opens it


def test_each_seal_has_its_own_nonce() -> None:
    sealer, secret = Sealer(KEY), new_secret()
    first, second = sealer.seal(secret), sealer.seal(secret)
    assert first != second
    nonce = base64.b64decode(first.removeprefix("sealed:v1:"))[:12]
    assert nonce != base64.b64decode(second.removeprefix("sealed:v1:"))[:12]


def test_without_a_key_secrets_are_kept_plain_and_say_so() -> None:
    sealer, secret = Sealer(None), new_secret()
    assert not sealer.protected
    assert sealer.seal(secret) == f"plain:{secret}"
    assert sealer.open(f"plain:{secret}") == secret
    assert Sealer(KEY).open(f"plain:{secret}") == secret  # a key added later still opens them


def test_an_empty_key_is_no_key() -> None:
    assert not Sealer("").protected


def test_a_sealed_secret_without_the_key_is_a_clear_error() -> None:
    sealed = Sealer(KEY).seal(new_secret())
    with pytest.raises(SecretError, match="PASSPORT_HUB_WEBHOOK_SECRET_KEY is not set"):
        Sealer(None).open(sealed)


def test_the_wrong_key_is_a_clear_error() -> None:
    secret = new_secret()
    sealed = Sealer(KEY).seal(secret)
    with pytest.raises(SecretError, match="not the one it was sealed with") as caught:
        Sealer(KEY + "x").open(sealed)
    assert secret not in str(caught.value)
    assert isinstance(caught.value, HubError)


def test_an_altered_value_does_not_open() -> None:
    raw = bytearray(base64.b64decode(Sealer(KEY).seal(new_secret()).removeprefix("sealed:v1:")))
    raw[-1] ^= 1
    with pytest.raises(SecretError, match="altered"):
        Sealer(KEY).open("sealed:v1:" + base64.b64encode(bytes(raw)).decode())


@pytest.mark.parametrize(("value", "why"), [
    ("sealed:v1:not base64!", "not base64"),
    ("sealed:v1:" + base64.b64encode(b"short").decode(), "too short"),
    ("whsec_abc", "neither sealed:v1: nor plain:"),
    ("sealed:v2:abc", "neither sealed:v1: nor plain:"),
])
def test_damaged_values_are_clear_errors_without_the_value(value: str, why: str) -> None:
    with pytest.raises(SecretError, match=why) as caught:
        Sealer(KEY).open(value)
    assert value not in str(caught.value)


def test_from_settings_uses_the_configured_key() -> None:
    secret = new_secret()
    keyed = Sealer.from_settings(Settings(webhook_secret_key=SecretStr(KEY)))
    assert keyed.protected
    assert Sealer(KEY).open(keyed.seal(secret)) == secret
    assert not Sealer.from_settings(Settings(webhook_secret_key=None)).protected
