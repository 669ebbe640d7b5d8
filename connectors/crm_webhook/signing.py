"""Standard Webhooks signatures: the secrets a reseller verifies our deliveries with.

Signing is the maintained ``standardwebhooks`` library's, not ours: a CRM
verifies with that library, Svix's, or any of the spec's ports, and a
signature of our own making would be one more thing to get subtly wrong.
During a rotation overlap the old and the new secret both sign, and the
``webhook-signature`` header carries both signatures, space-separated (the
spec's way): a CRM still on the old secret and one already on the new one both
verify.
"""

from __future__ import annotations

import base64
import hashlib
import secrets as random
from collections.abc import Sequence
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook

PREFIX = "whsec_"
#: 24 random bytes (192 bits): Svix's size, within the 24-64 bytes the spec recommends.
_SECRET_BYTES = 24


def new_secret() -> str:
    """A fresh signing secret, ``whsec_`` and the base64 of 24 random bytes."""
    return PREFIX + base64.b64encode(random.token_bytes(_SECRET_BYTES)).decode("ascii")


def fingerprint(secret: str) -> str:
    """Who a secret is without what it is: the first 12 hex digits of its SHA-256.

    Stored and shown (the endpoints topic, the API) so that an operator and a
    reseller can tell which secret signs without either seeing it.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()[:12]


def sign_headers(message_id: str, timestamp_s: int, body: bytes,
                 secrets: Sequence[str]) -> dict[str, str]:
    """The three Standard Webhooks headers of one attempt, signed by each of ``secrets``.

    ``timestamp_s`` is the attempt's time (epoch seconds): a retry is signed
    anew, or a receiver's five-minute tolerance would refuse it.
    """
    if not secrets:
        raise ValueError("a delivery needs at least one signing secret")
    at = datetime.fromtimestamp(timestamp_s, UTC)
    unique = dict.fromkeys(secrets)  # the same secret twice would only repeat its signature
    signatures = [Webhook(secret).sign(message_id, at, body) for secret in unique]
    return {"webhook-id": message_id, "webhook-timestamp": str(int(timestamp_s)),
            "webhook-signature": " ".join(signatures)}
