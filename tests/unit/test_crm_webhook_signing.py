"""Signatures of webhook deliveries, verified as a CRM would: standardwebhooks and Svix."""

from __future__ import annotations

import base64
import time

import pytest
import standardwebhooks.webhooks as std
import svix.webhooks as svix

from connectors.crm_webhook.signing import fingerprint, new_secret, sign_headers

BODY = b'{"id":"msg_1","type":"lead.assigned","timestamp":"2025-03-03T10:00:00.000Z","data":{}}'


def headers(*secrets: str, body: bytes = BODY) -> dict[str, str]:
    return sign_headers("msg_1", int(time.time()), body, secrets)


def verifies(secret: str, signed: dict[str, str], body: bytes = BODY) -> tuple[bool, bool]:
    """Whether standardwebhooks and Svix each accept ``signed`` with ``secret``."""
    results = []
    for verify in (std.Webhook(secret).verify, svix.Webhook(secret).verify):
        try:
            verify(body, signed)
        except std.WebhookVerificationError:
            results.append(False)
        else:
            results.append(True)
    return results[0], results[1]


def test_a_new_secret_is_whsec_and_24_random_bytes() -> None:
    secrets = {new_secret() for _ in range(20)}
    assert len(secrets) == 20
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 24


def test_a_fingerprint_names_a_secret_without_showing_it() -> None:
    secret = new_secret()
    assert fingerprint(secret) == fingerprint(secret)
    assert len(fingerprint(secret)) == 12
    assert int(fingerprint(secret), 16) >= 0
    assert fingerprint(secret) not in secret
    assert fingerprint(secret) != fingerprint(new_secret())


def test_the_headers_are_the_standard_webhooks_ones() -> None:
    signed = sign_headers("msg_abc", 1_741_000_000, BODY, [new_secret()])
    assert set(signed) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert signed["webhook-id"] == "msg_abc"
    assert signed["webhook-timestamp"] == "1741000000"
    assert signed["webhook-signature"].startswith("v1,")


def test_one_secret_verifies_with_both_libraries() -> None:
    secret = new_secret()
    assert verifies(secret, headers(secret)) == (True, True)


def test_during_an_overlap_each_secret_verifies_alone() -> None:
    old, new = new_secret(), new_secret()
    signed = headers(new, old)
    assert len(signed["webhook-signature"].split(" ")) == 2
    assert verifies(old, signed) == (True, True)
    assert verifies(new, signed) == (True, True)


def test_a_wrong_secret_fails_with_both_libraries() -> None:
    assert verifies(new_secret(), headers(new_secret())) == (False, False)
    assert verifies(new_secret(), headers(new_secret(), new_secret())) == (False, False)


def test_an_altered_body_fails() -> None:
    secret = new_secret()
    assert verifies(secret, headers(secret), BODY.replace(b"msg_1", b"msg_2")) == (False, False)


def test_a_secret_given_twice_signs_once() -> None:
    secret = new_secret()
    assert len(headers(secret, secret)["webhook-signature"].split(" ")) == 1


def test_no_secret_signs_nothing() -> None:
    with pytest.raises(ValueError, match="at least one"):
        sign_headers("msg_1", 0, BODY, [])
