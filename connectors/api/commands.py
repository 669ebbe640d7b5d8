"""The webhook commands the API publishes, the secrets it issues, and what each should show.

A command is not a partner event: no pydantic model, no idempotency by event
id (a reseller that repeats a registration registers again, which changes
nothing). It is an Avro ``WebhookCommand`` built here and published through
the ingest's way (``Ingest.publish``): 202 once the broker acknowledged it,
503 with Retry-After when it did not.

A signing secret is issued by the API, shown once in its 202 and never again:
the command carries it sealed (``connectors.crm_webhook.secrets``), the
delivery component opens it, and the endpoint state the read model serves
holds only fingerprints.

Reading a webhook endpoint ``after`` a command's token cannot compare offsets
as passports and leads do: the endpoint record the delivery component writes
does not say which command it reflects. So the API remembers, for the tokens
it issued lately (``Expectations``, in memory), what the endpoint should show
once the command is applied (the URL and enabled flag registered, the new
secret's fingerprint); a token it does not know (another API instance, a
restart) only waits for the endpoint to exist.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from connectors.api.auth import Caller
from connectors.api.ingest import Ingest
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.signing import fingerprint, new_secret
from hub import logs
from schemas import catalog
from schemas.frozen import frozen
from services.readmodel.consistency import Token

#: Every command the delivery component knows.
COMMANDS = ("register", "rotate", "test", "replay")
#: Tokens whose expected endpoint state is remembered (the oldest are forgotten first).
REMEMBERED = 10_000
#: Why an endpoint may stay disabled whatever its owner registered.
_NOT_THE_OWNERS = frozenset({"gone", "failing", "refused"})

Check = Callable[[Mapping[str, Any]], bool]


@frozen
class Issued:
    """A signing secret just issued: the secret (shown once), sealed, and its fingerprint."""

    secret: str
    sealed: str
    fingerprint: str


@frozen
class Sent:
    """A command the broker acknowledged."""

    event_id: str
    at: int
    """Its ``occurred_at`` (epoch ms): when a rotation's overlap starts."""
    token: str | None


class Commands:
    """Builds, publishes and remembers the webhook commands."""

    def __init__(self, ingest: Ingest, sealer: Sealer, clock: Callable[[], int]) -> None:
        self.ingest = ingest
        self.sealer = sealer
        self.clock = clock
        self.expectations = Expectations()
        self.log = logs.get().bind(component="webhooks")

    def issue(self) -> Issued:
        """A new signing secret."""
        secret = new_secret()
        return Issued(secret, self.sealer.seal(secret), fingerprint(secret))

    async def send(self, who: Caller, reseller_id: str, command: str, *,
                   expect: Check | None = None, **fields: Any) -> Sent:
        """Publish one command (``fields``: url, enabled, secret, overlap_ms, since, until);
        ``expect`` is what the endpoint should show once it is applied."""
        assert command in COMMANDS, command
        event_id, at = str(uuid.uuid4()), self.clock()
        datum = {"event_id": event_id, "occurred_at": at, "source": who.partner,
                 "schema_version": 1, "reseller_id": reseller_id, "command": command,
                 "url": None, "enabled": None, "secret": None, "overlap_ms": None,
                 "since": None, "until": None, **fields}
        record = self.ingest.publisher.datum_record(catalog.WEBHOOK_COMMANDS, reseller_id,
                                                    "WebhookCommand", datum)
        written = await self.ingest.publish(record)
        token = self.ingest.token(record, written)
        if token is not None and expect is not None:
            self.expectations.expect(token, expect)
        # Neither the URL (it may carry a token of the CRM's) nor the secret is logged.
        self.log.info("webhook.command", command=command, reseller_id=reseller_id,
                      key_id=who.key_id, event_id=event_id)
        return Sent(event_id, at, token)


def registered(url: str, enabled: bool, issued: str | None) -> Check:
    """A registration is shown: its URL, its secret (when one was issued), and its enabled
    flag, unless the delivery component holds the endpoint disabled for its own reason."""
    def check(view: Mapping[str, Any]) -> bool:
        if view.get("url") != url:
            return False
        if issued is not None and not signs_with(view, issued):
            return False
        return bool(view.get("enabled")) == enabled or view.get("disabled_reason") in \
            _NOT_THE_OWNERS
    return check


def rotated(issued: str) -> Check:
    """A rotation is shown once the new secret signs."""
    return lambda view: signs_with(view, issued)


def signs_with(view: Mapping[str, Any], secret_fingerprint: str) -> bool:
    return any(s.get("fingerprint") == secret_fingerprint for s in view.get("secrets") or ())


class Expectations:
    """What the endpoint should show after each recent command token (see the module doc)."""

    def __init__(self, capacity: int = REMEMBERED) -> None:
        self._capacity = capacity
        self._checks: OrderedDict[tuple[str, int, int], Check] = OrderedDict()
        self._lock = threading.Lock()  # written from the event loop, read from worker threads

    def expect(self, token: str, check: Check) -> None:
        key = _place(Token.decode(token))
        with self._lock:
            self._checks[key] = check
            while len(self._checks) > self._capacity:
                self._checks.popitem(last=False)

    def reflected(self, token: Token, view: Mapping[str, Any] | None) -> bool:
        """Whether the endpoint ``view`` (None: none known) reflects the command of ``token``."""
        if view is None:
            return False
        with self._lock:
            check = self._checks.get(_place(token))
        return True if check is None else check(view)


def _place(token: Token) -> tuple[str, int, int]:
    return token.topic, token.partition, token.offset
