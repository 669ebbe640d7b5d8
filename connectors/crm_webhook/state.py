"""The delivery component's pure core: endpoints, messages, pending deliveries, outcomes.

No I/O and no clock of its own: the processor (connectors/crm_webhook/processor.py)
keeps these values in its store and hands in the time. What is decided here:

- the endpoint fold: register / rotate (secrets newest first, a rotated-out one
  signing until ``expires_at``), disabling (by its owner, 410 gone, failing for
  too long, refused by the SSRF guard for too long) and ``failing_since``;
- an attempt's outcome (``attempted``): delivered, retrying on the schedule or
  after ``Retry-After``, failed (no attempt left), refused (the guard said no:
  tried again on the schedule, since DNS answers change);
- which pending deliveries go now (``Deliveries.due``): due ones, at most
  ``per_endpoint`` in flight to one reseller and ``max_in_flight`` in all, and
  per (reseller, lead) only the OLDEST pending message: a lead's ``withdrawn``
  never overtakes its ``assigned``, whatever retries the first one needs.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Container, Iterable, Mapping
from typing import Any, Literal

from connectors.crm_webhook.schedule import RetryPolicy, classify
from hub.errors import HubError
from hub.ids import derive
from schemas.frozen import frozen
from schemas.webhooks import LeadEvent

SOURCE = "crm_webhook"
#: A test or replay command applied later than this after it was issued is ignored: a
#: store rebuilt from the start of the (retained) command log must not ping and replay
#: the whole history again.
STALE_COMMAND_MS = 3_600_000

Outcome = Literal["delivered", "retrying", "failed", "skipped", "refused"]
Effect = Literal["success", "failure", "gone"]


class CommandError(HubError):
    """A webhook command that cannot be applied (it is dead-lettered, stage "validate")."""


# -- endpoints --------------------------------------------------------------------------------


@frozen
class Secret:
    """One signing secret of an endpoint, as kept: sealed (connectors/crm_webhook/secrets.py)."""

    sealed: str
    fingerprint: str
    created_at: int
    expires_at: int | None = None
    """When a rotated-out secret stops signing (None: current)."""

    def live(self, now: int) -> bool:
        return self.expires_at is None or self.expires_at > now


@frozen
class Endpoint:
    """A reseller's webhook endpoint."""

    reseller_id: str
    url: str
    enabled: bool
    secrets: tuple[Secret, ...]
    """Newest first."""
    version: int = 1
    disabled_reason: str | None = None
    failing_since: int | None = None
    """First failure since the last success (None while healthy)."""

    def signing(self, now: int) -> tuple[Secret, ...]:
        """The secrets that sign an attempt made at ``now``, newest first."""
        return tuple(s for s in self.secrets if s.live(now))

    def next_expiry(self) -> int | None:
        return min((s.expires_at for s in self.secrets if s.expires_at is not None), default=None)


def _changed(endpoint: Endpoint, **changes: Any) -> Endpoint:
    return dataclasses.replace(endpoint, version=endpoint.version + 1, **changes)


def register(current: Endpoint | None, *, reseller_id: str, url: str | None,
             enabled: bool | None, secret: Secret | None) -> Endpoint:
    """The endpoint after a register command.

    The first registration needs a URL and a secret; a later one keeps what it
    does not name. A new secret given again replaces the secrets (no overlap:
    that is what rotate is for). ``enabled`` None keeps the current state (a
    first registration is enabled); enabling clears the reason and the failures,
    so a re-registered endpoint starts afresh.
    """
    if current is None:
        if not url or secret is None:
            raise CommandError("a first registration needs a url and a secret")
        on = enabled is not False
        return Endpoint(reseller_id, url, on, (secret,), 1,
                        None if on else "by_owner", None)
    changes: dict[str, Any] = {"url": url or current.url}
    if secret is not None:
        changes["secrets"] = (secret,)
    if enabled is True:
        changes.update(enabled=True, disabled_reason=None, failing_since=None)
    elif enabled is False:
        changes.update(enabled=False, disabled_reason="by_owner")
    return _changed(current, **changes)


def rotate(current: Endpoint | None, *, secret: Secret, overlap_ms: int) -> Endpoint:
    """The endpoint after a rotation: ``secret`` first, the others expiring after the overlap."""
    if current is None:
        raise CommandError("no endpoint is registered: register before rotating")
    at = secret.created_at
    ends = at + max(0, overlap_ms)
    ending = (dataclasses.replace(s, expires_at=ends if s.expires_at is None
                                  else min(s.expires_at, ends)) for s in current.secrets)
    return _changed(current, secrets=(secret, *(s for s in ending if s.live(at))))


def prune(endpoint: Endpoint, now: int) -> Endpoint | None:
    """The endpoint without its expired secrets; None when none expired."""
    live = endpoint.signing(now)
    return None if len(live) == len(endpoint.secrets) else _changed(endpoint, secrets=live)


def succeeded(endpoint: Endpoint) -> Endpoint | None:
    """After a delivery: healthy again (None when it already was)."""
    return None if endpoint.failing_since is None else _changed(endpoint, failing_since=None)


def failed(endpoint: Endpoint, now: int, policy: RetryPolicy, *,
           refused: bool = False) -> Endpoint | None:
    """After a failed attempt: failing since the first failure, disabled once failing for
    ``policy.disable_after_ms`` (reason "refused" when the guard refused the last attempt,
    else "failing"). None when nothing changed."""
    since = endpoint.failing_since if endpoint.failing_since is not None else now
    if endpoint.enabled and policy.should_disable(since, now):
        return _changed(endpoint, enabled=False, failing_since=since,
                        disabled_reason="refused" if refused else "failing")
    return None if since == endpoint.failing_since else _changed(endpoint, failing_since=since)


def gone(endpoint: Endpoint) -> Endpoint | None:
    """After a 410: disabled until its owner registers it again (None if already disabled)."""
    if not endpoint.enabled:
        return None
    return _changed(endpoint, enabled=False, disabled_reason="gone")


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {**dataclasses.asdict(endpoint), "secrets": [dataclasses.asdict(s)
                                                        for s in endpoint.secrets]}


def endpoint_of_json(value: Mapping[str, Any]) -> Endpoint:
    return Endpoint(**{**value, "secrets": tuple(Secret(**s) for s in value["secrets"])})


def endpoint_datum(endpoint: Endpoint, now: int) -> dict[str, Any]:
    """The ``WebhookEndpoint`` record of an endpoint's version: fingerprints, never secrets."""
    return {"event_id": derive(endpoint.reseller_id, f"webhook-endpoint-v{endpoint.version}"),
            "occurred_at": now, "source": SOURCE, "schema_version": 1,
            "reseller_id": endpoint.reseller_id, "url": endpoint.url,
            "enabled": endpoint.enabled, "disabled_reason": endpoint.disabled_reason,
            "failing_since": endpoint.failing_since,
            "secrets": [{"fingerprint": s.fingerprint, "created_at": s.created_at,
                         "expires_at": s.expires_at} for s in endpoint.secrets],
            "version": endpoint.version}


# -- messages and their deliveries ------------------------------------------------------------


@frozen
class Message:
    """One event for one reseller, kept for retries and replays under ``ref``."""

    ref: str
    """``<reseller>|<arrival seq, 12 digits>``: a reseller's refs sort in arrival order."""
    event: LeadEvent
    replays: int = 0
    """How many replays re-sent it: the generation of its latest delivery."""


def ref(reseller_id: str, seq: int) -> str:
    return f"{reseller_id}|{seq:012d}"


def message_json(message: Message) -> list[Any]:
    e = message.event
    return [e.type, e.message_id, e.lead_id, e.occurred_at, e.data, message.replays]


def message_of_json(message_ref: str, value: list[Any]) -> Message:
    kind, message_id, lead_id, at, data, replays = value
    reseller = message_ref.rpartition("|")[0]
    return Message(message_ref, LeadEvent(reseller, kind, message_id, lead_id, at, data), replays)


@frozen
class Pending:
    """A message still to be delivered, and how far its attempts went."""

    ref: str
    reseller_id: str
    lead_id: str | None
    attempts: int
    """Attempts done (and answered) in this generation."""
    due: int
    """When the next attempt may be made (epoch ms)."""
    replay: bool = False
    generation: int = 0


def pending_json(pending: Pending) -> list[Any]:
    return [pending.lead_id, pending.attempts, pending.due, pending.replay, pending.generation]


def pending_of_json(pending_ref: str, value: list[Any]) -> Pending:
    lead_id, attempts, due, replay, generation = value
    return Pending(pending_ref, pending_ref.rpartition("|")[0], lead_id, attempts, due,
                   replay, generation)


@frozen
class Attempt:
    """What one answered attempt comes to."""

    outcome: Outcome
    number: int
    """1-based, within the generation."""
    pending: Pending | None
    """What stays pending (None: done with, delivered or failed)."""
    next_attempt_at: int | None
    effect: Effect
    """What it says of the endpoint."""
    error: str | None


def attempted(pending: Pending, *, status: int | None, error: str | None,
              retry_after: str | None, refused: bool, policy: RetryPolicy, now: int) -> Attempt:
    """The outcome of ``pending``'s attempt number ``attempts + 1`` and what stays pending.

    A 410 fails the attempt and disables the endpoint; the message stays pending
    (when it has attempts left) and is resumed if its owner registers it again.
    """
    number = pending.attempts + 1
    why: str | None
    if refused:
        kind, wait, why = "retry", None, error or "refused by the URL guard"
    else:
        verdict = classify(status, error, retry_after, now)
        kind, wait, why = verdict.kind, verdict.retry_after_ms, verdict.error
    if kind == "delivered":
        return Attempt("delivered", number, None, None, "success", None)
    nxt = policy.next_attempt_at(number, now, wait)
    stays = None if nxt is None else dataclasses.replace(pending, attempts=number, due=nxt)
    if kind == "gone":
        return Attempt("failed", number, stays, None, "gone", why)
    if stays is None:
        return Attempt("failed", number, None, None, "failure", why)
    return Attempt("refused" if refused else "retrying", number, stays, nxt, "failure", why)


def delivery_datum(message: Message, *, attempt: int, generation: int, replay: bool, url: str,
                   outcome: Outcome, now: int, http_status: int | None = None,
                   latency_ms: int | None = None, error: str | None = None,
                   next_attempt_at: int | None = None) -> dict[str, Any]:
    """The ``WebhookDelivery`` record of one attempt (``attempt`` 0: skipped, none made).

    Its id is the message's, the generation's and the attempt's: the record of
    an attempt re-made after a crash (its answer was never recorded) is the first.
    """
    e = message.event
    purpose = f"delivery/{generation}/{attempt if outcome != 'skipped' else 'skipped'}"
    return {"event_id": derive(e.message_id, purpose), "occurred_at": now, "source": SOURCE,
            "schema_version": 1, "reseller_id": e.reseller_id, "message_id": e.message_id,
            "type": e.type, "lead_id": e.lead_id, "attempt": attempt, "url": url,
            "outcome": outcome, "http_status": http_status, "latency_ms": latency_ms,
            "error": error, "next_attempt_at": next_attempt_at, "replay": replay}


class Deliveries:
    """The pending deliveries in memory, and those in flight, indexed for ``due``."""

    def __init__(self, *, per_endpoint: int, max_in_flight: int) -> None:
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.pending: dict[str, Pending] = {}
        self.in_flight: set[str] = set()
        self._by_reseller: dict[str, list[str]] = {}
        self._busy: dict[str, int] = {}
        # When a reseller's scan found nothing yet due: skip it until then (or a change).
        self._wake: dict[str, int] = {}
        self._turn = 0

    def load(self, pendings: Iterable[Pending]) -> None:
        for pending in pendings:
            self.put(pending)

    def put(self, pending: Pending) -> None:
        if pending.ref not in self.pending:
            bisect.insort(self._by_reseller.setdefault(pending.reseller_id, []), pending.ref)
        self.pending[pending.ref] = pending
        self._wake.pop(pending.reseller_id, None)

    def remove(self, pending_ref: str) -> None:
        pending = self.pending.pop(pending_ref, None)
        if pending is None:
            return
        refs = self._by_reseller[pending.reseller_id]
        del refs[bisect.bisect_left(refs, pending_ref)]
        if not refs:
            del self._by_reseller[pending.reseller_id]
        self._wake.pop(pending.reseller_id, None)

    def of(self, reseller_id: str) -> list[Pending]:
        return [self.pending[r] for r in self._by_reseller.get(reseller_id, ())]

    def sent(self, pending_ref: str) -> None:
        reseller = pending_ref.rpartition("|")[0]
        self.in_flight.add(pending_ref)
        self._busy[reseller] = self._busy.get(reseller, 0) + 1

    def answered(self, pending_ref: str) -> bool:
        """Forget an attempt in flight; False if it was not (a stale answer)."""
        if pending_ref not in self.in_flight:
            return False
        self.in_flight.discard(pending_ref)
        reseller = pending_ref.rpartition("|")[0]
        self._busy[reseller] -= 1
        self._wake.pop(reseller, None)
        return True

    def touch(self, reseller_id: str) -> None:
        """Look at the reseller again at the next ``due`` (its endpoint changed)."""
        self._wake.pop(reseller_id, None)

    def due(self, now: int, enabled: Container[str]) -> list[Pending]:
        """The deliveries to attempt now, in arrival order per reseller (see the module)."""
        budget = self.max_in_flight - len(self.in_flight)
        resellers = list(self._by_reseller)
        if budget <= 0 or not resellers:
            return []
        self._turn = (self._turn + 1) % len(resellers)  # no reseller always served first
        out: list[Pending] = []
        for reseller in resellers[self._turn:] + resellers[:self._turn]:
            room = min(self.per_endpoint - self._busy.get(reseller, 0), budget)
            if room <= 0 or reseller not in enabled or self._wake.get(reseller, 0) > now:
                continue
            chosen = self._scan(reseller, now, room)
            out.extend(chosen)
            budget -= len(chosen)
            if budget <= 0:
                break
        return out

    def _scan(self, reseller: str, now: int, room: int) -> list[Pending]:
        heads: set[str] = set()
        soonest: int | None = None
        chosen: list[Pending] = []
        for pending_ref in self._by_reseller[reseller]:
            pending = self.pending[pending_ref]
            if pending.lead_id is not None:
                if pending.lead_id in heads:
                    continue  # an older message of this lead goes first
                heads.add(pending.lead_id)
            if pending_ref in self.in_flight:
                continue
            if pending.due > now:
                soonest = pending.due if soonest is None else min(soonest, pending.due)
                continue
            chosen.append(pending)
            if len(chosen) >= room:
                return chosen  # cut short: look again next time
        if not chosen:
            self._wake[reseller] = soonest if soonest is not None else 2**62
        return chosen
