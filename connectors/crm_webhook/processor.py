"""The delivery component's processor: lead changes and webhook commands in, attempts out.

Its inputs are ``pn.leads.v1`` and ``pn.webhook-commands.v1`` (one partition
each, both retained). ``apply`` turns a lead change into messages for the
resellers (``schemas.webhooks.lead_events``) and folds the commands into the
endpoints; every message is kept, with a pending delivery when its reseller's
endpoint is enabled (else a ``skipped`` record: a replay sends it later).

As a ``Deferring`` processor it does its HTTP in ``flush``, which the loop
calls inside a store transaction after every batch and whenever it is idle: it
records the answers the ``Sender`` has for it (a ``WebhookDelivery`` per
attempt, endpoint changes as ``WebhookEndpoint``), then submits what is due
(state.Deliveries.due). The pending deliveries are in the store, committed
with what caused them, so a SIGKILL loses nothing: after a restart what was
in flight is attempted again, with the same webhook-id and attempt number.

State namespaces (JSON values, partition 0): ``crm-endpoint`` by reseller (sealed
secrets only), ``crm-message/<reseller>`` by ref (every message, for replays),
``crm-message-id`` (message id -> ref: a re-emitted change creates nothing new),
``crm-lead`` (lead -> refs: erasure), ``crm-pending`` by ref, ``crm-command``
(command ids applied) and ``crm-meta`` (the arrival sequence).
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import orjson
from prometheus_client import CollectorRegistry

from connectors.crm_webhook import state as core
from connectors.crm_webhook.metrics import DeliveryMetrics
from connectors.crm_webhook.schedule import RetryPolicy
from connectors.crm_webhook.secrets import SEALED, Sealer, SecretError
from connectors.crm_webhook.sender import Request, Result
from connectors.crm_webhook.signing import PREFIX, fingerprint, sign_headers
from connectors.crm_webhook.state import CommandError, Endpoint, Message, Pending
from hub import logs
from hub.processor import Emit, Inbound, Outbound, Rejected
from hub.store import Txn
from schemas import catalog
from schemas.frozen import frozen
from schemas.webhooks import LeadEvent, lead_events, millis, ping, without_contact

ENDPOINTS_NS = "crm-endpoint"
MESSAGES_NS = "crm-message/"
IDS_NS = "crm-message-id"
LEADS_NS = "crm-lead"
PENDING_NS = "crm-pending"
COMMANDS_NS = "crm-command"
META_NS = "crm-meta"
PARTITION = 0
#: The statuses in which a lead's holder may still contact the business: then, and only
#: then, its kept messages carry the contact e-mail (schemas.webhooks).
OPEN = frozenset({"assigned", "accepted", "queued"})


class Transport(Protocol):
    """What the processor needs of connectors/crm_webhook/sender.Sender."""

    def submit(self, request: Request) -> None: ...

    def results(self) -> list[Result]: ...


@frozen
class _Sent:
    """An attempt in flight: what its answer is recorded against."""

    message: Message
    generation: int
    url: str


class DeliveryProcessor:
    """Delivers every lead event to its reseller's CRM; see the module's docstring."""

    name = "crm_webhook"
    inputs: tuple[str, ...] = (catalog.LEADS, catalog.WEBHOOK_COMMANDS)

    def __init__(self, *, sender: Transport, sealer: Sealer, policy: RetryPolicy,
                 per_endpoint: int = 4, max_in_flight: int = 500,
                 rotation_overlap_ms: int = 86_400_000,
                 clock: Callable[[], int] | None = None,
                 metrics: DeliveryMetrics | None = None) -> None:
        self.sender = sender
        self.sealer = sealer
        self.policy = policy
        self.per_endpoint = per_endpoint
        self.max_in_flight = max_in_flight
        self.rotation_overlap_ms = rotation_overlap_ms
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.metrics = metrics or DeliveryMetrics.create(CollectorRegistry())
        # A message older than its whole retry schedule when it arrives (a store rebuilt
        # from the start of pn.leads.v1) is kept and skipped, not pushed: a replay sends it.
        self.horizon_ms = max(sum(policy.delays_ms), core.STALE_COMMAND_MS)
        self.log = logs.get().bind(component=self.name)
        self._endpoints: dict[str, Endpoint] | None = None
        self._deliveries = core.Deliveries(per_endpoint=per_endpoint,
                                           max_in_flight=max_in_flight)
        self._seq = 0
        self._sent: dict[str, _Sent] = {}
        """Attempts submitted and not answered: survives a rolled-back transaction."""
        self._opened: dict[str, str] = {}
        self._unusable: set[str] = set()

    # -- the processor contract --------------------------------------------------------------

    def apply(self, state: Txn, batch: Sequence[Inbound]) -> list[Emit]:
        endpoints = self._loaded(state)
        out: list[Emit] = []
        try:
            now, seq = self.clock(), self._seq
            for inbound in batch:
                try:
                    out.extend(self._one(state, endpoints, inbound, now))
                except (CommandError, SecretError) as exc:
                    out.append(Rejected(inbound, exc, "validate"))
                    self.log.warning("webhook.input_refused", topic=inbound.topic,
                                     offset=inbound.offset, error=str(exc))
            if self._seq != seq:
                state.put(META_NS, "seq", self._seq, partition=PARTITION)
        except BaseException:
            self._endpoints = None  # the transaction rolls back: so does the state in memory
            raise
        return out

    def flush(self, state: Txn, partitions: frozenset[int], *,
              caught_up: bool = True) -> Iterable[Emit]:
        """Record the answers in hand, then send what is due (standbys send nothing)."""
        del caught_up  # a delivery is due whether or not the inputs are behind
        if PARTITION not in partitions:
            return []
        endpoints = self._loaded(state)
        try:
            now = self.clock()
            out = self._answers(state, endpoints, now)
            for endpoint in list(endpoints.values()):
                expiry = endpoint.next_expiry()
                pruned = core.prune(endpoint, now) if expiry is not None and expiry <= now \
                    else None
                if pruned is not None:
                    out.extend(self._changed(state, endpoints, pruned, now))
            self._dispatch(state, endpoints, now)
        except BaseException:
            self._endpoints = None
            raise
        self.metrics.pending.set(len(self._deliveries.pending))
        self.metrics.in_flight.set(len(self._deliveries.in_flight))
        return out

    # -- inputs ------------------------------------------------------------------------------

    def _one(self, state: Txn, endpoints: dict[str, Endpoint], inbound: Inbound,
             now: int) -> list[Emit]:
        if inbound.topic == catalog.LEADS and inbound.record == "LeadAssigned":
            datum = inbound.datum
            # Kept messages carry the contact e-mail only for the holder of an open lead:
            # a lead that closed, was withdrawn (consent, erasure) or moved on leaves none
            # behind, so no replay re-sends it and an erased business has none here.
            holder = datum.get("reseller_id") if datum.get("status") in OPEN else None
            self._scrub(state, str(datum["lead_id"]), keep=holder)
            out: list[Emit] = []
            for event in lead_events(datum):
                out.extend(self._message(state, endpoints, event, now))
            return out
        if inbound.topic == catalog.WEBHOOK_COMMANDS and inbound.record == "WebhookCommand":
            return self._command(state, endpoints, inbound.datum, now)
        raise CommandError(f"{inbound.topic} carries no {inbound.record or 'such'} records")

    def _message(self, state: Txn, endpoints: dict[str, Endpoint], event: LeadEvent,
                 now: int) -> list[Emit]:
        """Keep a new message; a pending delivery if its endpoint is enabled, else skipped."""
        if state.get(IDS_NS, event.message_id) is not None:
            return []  # a re-emitted change: the message exists, under its one id
        self._seq += 1
        message = Message(core.ref(event.reseller_id, self._seq), event)
        state.put(MESSAGES_NS + event.reseller_id, message.ref, core.message_json(message),
                  partition=PARTITION)
        state.put(IDS_NS, event.message_id, message.ref, partition=PARTITION)
        if event.lead_id is not None:
            refs = state.get(LEADS_NS, event.lead_id) or []
            state.put(LEADS_NS, event.lead_id, [*refs, message.ref], partition=PARTITION)
        endpoint = endpoints.get(event.reseller_id)
        if endpoint is None or not endpoint.enabled:
            return [self._skipped(message, endpoint, generation=0, now=now)]
        if now - event.occurred_at > self.horizon_ms:
            return [self._skipped(message, endpoint, generation=0, now=now,
                                  why="older than the retry schedule when it arrived")]
        self._pend(state, Pending(message.ref, event.reseller_id, event.lead_id, 0, now))
        return []

    def _scrub(self, state: Txn, lead_id: str, *, keep: str | None) -> None:
        """Remove the contact e-mail from the kept messages of a lead, but ``keep``'s."""
        for message_ref in state.get(LEADS_NS, lead_id) or []:
            reseller = message_ref.rpartition("|")[0]
            if reseller == keep:
                continue
            ns = MESSAGES_NS + reseller
            value = state.get(ns, message_ref)
            if value is None:
                continue
            message = core.message_of_json(message_ref, value)
            data = without_contact(message.event.data)
            if data != message.event.data:
                scrubbed = dataclasses.replace(message.event, data=data)
                state.put(ns, message_ref,
                          core.message_json(dataclasses.replace(message, event=scrubbed)),
                          partition=PARTITION)

    def _command(self, state: Txn, endpoints: dict[str, Endpoint], datum: dict[str, Any],
                 now: int) -> list[Emit]:
        """Apply one command (once per event id; a stale test or replay is ignored)."""
        event_id, command = str(datum["event_id"]), str(datum["command"])
        reseller, at = str(datum["reseller_id"]), millis(datum["occurred_at"]) or 0
        if state.get(COMMANDS_NS, event_id) is not None:
            return []
        out: list[Emit] = []
        current = endpoints.get(reseller)
        if command in ("test", "replay") and now - at > core.STALE_COMMAND_MS:
            state.put(COMMANDS_NS, event_id, command, partition=PARTITION)
            self.log.info("webhook.command_stale", reseller_id=reseller, command=command,
                          event_id=event_id)
            return []
        if command == "register":
            secret = self._secret(datum["secret"], at) if datum.get("secret") else None
            endpoint = core.register(current, reseller_id=reseller, url=datum.get("url"),
                                     enabled=datum.get("enabled"), secret=secret)
            out = self._changed(state, endpoints, endpoint, now)
            if endpoint.enabled and (current is None or not current.enabled
                                     or current.url != endpoint.url):
                for pending in self._deliveries.of(reseller):  # resumed now, not hours later
                    if pending.due > now:
                        self._pend(state, dataclasses.replace(pending, due=now))
        elif command == "rotate":
            if not datum.get("secret"):
                raise CommandError("a rotation needs the new secret")
            overlap = datum.get("overlap_ms")
            endpoint = core.rotate(current, secret=self._secret(datum["secret"], at),
                                   overlap_ms=self.rotation_overlap_ms if overlap is None
                                   else int(overlap))
            out = self._changed(state, endpoints, endpoint, now)
        elif command == "test":
            out = self._message(state, endpoints, ping(reseller, event_id, at), now)
        elif command == "replay":
            out = self._replay(state, endpoints, reseller, since=millis(datum.get("since")) or 0,
                               until=millis(datum.get("until")), now=now)
        else:
            raise CommandError(f"unknown webhook command {command!r}")
        state.put(COMMANDS_NS, event_id, command, partition=PARTITION)
        self.log.info("webhook.command_applied", reseller_id=reseller, command=command,
                      event_id=event_id)
        return out

    def _secret(self, sealed: str, at: int) -> core.Secret:
        """The kept form of a command's secret (sealed with our key when we have one)."""
        plain = self.sealer.open(sealed)
        try:  # the library decodes leniently: any text would "sign", and no CRM verify
            valid = plain.startswith(PREFIX) and bool(
                base64.b64decode(plain[len(PREFIX):], validate=True))
        except ValueError:
            valid = False
        if not valid:
            raise CommandError("the secret is not whsec_ and base64")
        kept = sealed if sealed.startswith(SEALED) else self.sealer.seal(plain)
        self._opened[kept] = plain
        return core.Secret(kept, fingerprint(plain), at)

    def _replay(self, state: Txn, endpoints: dict[str, Endpoint], reseller: str, *,
                since: int, until: int | None, now: int) -> list[Emit]:
        """A new generation for every message of [since, until) not pending already."""
        endpoint = endpoints.get(reseller)
        out: list[Emit] = []
        count = 0
        for message_ref, value in state.items(MESSAGES_NS + reseller):
            message = core.message_of_json(message_ref, value)
            at = message.event.occurred_at
            if at < since or (until is not None and at >= until) \
                    or message_ref in self._deliveries.pending:
                continue
            count += 1
            message = dataclasses.replace(message, replays=message.replays + 1)
            state.put(MESSAGES_NS + reseller, message_ref, core.message_json(message),
                      partition=PARTITION)
            if endpoint is None or not endpoint.enabled:
                out.append(self._skipped(message, endpoint, generation=message.replays,
                                         now=now, replay=True))
            else:
                self._pend(state, Pending(message_ref, reseller, message.event.lead_id, 0, now,
                                          True, message.replays))
        self.log.info("webhook.replay", reseller_id=reseller, messages=count)
        return out

    # -- deliveries --------------------------------------------------------------------------

    def _answers(self, state: Txn, endpoints: dict[str, Endpoint], now: int) -> list[Emit]:
        """Record every answered attempt: its outcome, what stays pending, the endpoint."""
        out: list[Emit] = []
        for result in self.sender.results():
            sent = self._sent.pop(result.key, None)
            pending = self._deliveries.pending.get(result.key)
            if sent is None or not self._deliveries.answered(result.key) or pending is None:
                continue  # its transaction rolled back: it is attempted again
            attempt = core.attempted(pending, status=result.status, error=result.error,
                                     retry_after=result.retry_after, refused=result.refused,
                                     policy=self.policy, now=now)
            out.append(Outbound(catalog.DELIVERIES, pending.reseller_id, "WebhookDelivery",
                                core.delivery_datum(
                                    sent.message, attempt=attempt.number,
                                    generation=sent.generation, replay=pending.replay,
                                    url=sent.url, outcome=attempt.outcome, now=now,
                                    http_status=result.status, latency_ms=result.latency_ms,
                                    error=attempt.error,
                                    next_attempt_at=attempt.next_attempt_at)))
            self.metrics.deliveries.labels(attempt.outcome).inc()
            self.metrics.latency.observe(result.latency_ms / 1000)
            if attempt.outcome == "delivered" and sent.generation == 0:
                self.metrics.delivered(sent.message, pending.replay, now)
            elif attempt.outcome == "failed":
                # The metric has no reseller label (650 of them): the log says whose it was,
                # for the runbook's replay (docs/operations.md, Alert sections).
                self.log.warning("webhook.delivery_failed", reseller_id=pending.reseller_id,
                                 message_id=sent.message.event.message_id,
                                 attempt=attempt.number, error=attempt.error)
            if attempt.pending is None:
                self._deliveries.remove(pending.ref)
                state.delete(PENDING_NS, pending.ref)
            else:
                self._pend(state, attempt.pending)
            endpoint = endpoints.get(pending.reseller_id)
            if endpoint is None or endpoint.url != sent.url:
                continue  # re-registered elsewhere since: the old URL's answer says nothing
            changed = (core.succeeded(endpoint) if attempt.effect == "success"
                       else core.gone(endpoint) if attempt.effect == "gone"
                       else core.failed(endpoint, now, self.policy, refused=result.refused))
            if changed is not None:
                out.extend(self._changed(state, endpoints, changed, now))
        return out

    def _dispatch(self, state: Txn, endpoints: dict[str, Endpoint], now: int) -> None:
        """Sign and submit every delivery due now (state.Deliveries.due says which)."""
        enabled = {r for r, e in endpoints.items() if e.enabled and r not in self._unusable}
        due = self._deliveries.due(now, enabled)
        kept: dict[str, Any] = {}
        for reseller in {pending.reseller_id for pending in due}:
            kept.update(state.get_many(MESSAGES_NS + reseller,
                                       [p.ref for p in due if p.reseller_id == reseller]))
        for pending in due:
            endpoint = endpoints[pending.reseller_id]
            message = core.message_of_json(pending.ref, kept[pending.ref])
            try:
                secrets = [self._open(s.sealed) for s in endpoint.signing(now)]
            except SecretError as exc:
                self._unusable.add(pending.reseller_id)
                self.log.error("webhook.secret_unusable", reseller_id=pending.reseller_id,
                               error=str(exc))
                continue
            body = orjson.dumps(message.event.body())
            headers = sign_headers(message.event.message_id, now // 1000, body, secrets)
            self.sender.submit(Request(pending.ref, endpoint.url, headers, body))
            self._deliveries.sent(pending.ref)
            self._sent[pending.ref] = _Sent(message, pending.generation, endpoint.url)

    def _open(self, sealed: str) -> str:
        plain = self._opened.get(sealed)
        if plain is None:
            plain = self._opened[sealed] = self.sealer.open(sealed)
        return plain

    def _pend(self, state: Txn, pending: Pending) -> None:
        state.put(PENDING_NS, pending.ref, core.pending_json(pending), partition=PARTITION)
        self._deliveries.put(pending)

    def _skipped(self, message: Message, endpoint: Endpoint | None, *, generation: int,
                 now: int, replay: bool = False, why: str | None = None) -> Emit:
        reason = why or ("no endpoint registered" if endpoint is None
                         else f"endpoint disabled ({endpoint.disabled_reason})")
        self.metrics.deliveries.labels("skipped").inc()
        return Outbound(catalog.DELIVERIES, message.event.reseller_id, "WebhookDelivery",
                        core.delivery_datum(message, attempt=0, generation=generation,
                                            replay=replay, url=endpoint.url if endpoint else "",
                                            outcome="skipped", now=now, error=reason))

    def _changed(self, state: Txn, endpoints: dict[str, Endpoint], endpoint: Endpoint,
                 now: int) -> list[Emit]:
        """Keep an endpoint's new version and say so on pn.webhook-endpoints.v1."""
        reseller = endpoint.reseller_id
        before = endpoints.get(reseller)
        endpoints[reseller] = endpoint
        if before is None or before.enabled != endpoint.enabled:
            self.metrics.count_endpoints(endpoints.values())
        state.put(ENDPOINTS_NS, reseller, core.endpoint_json(endpoint), partition=PARTITION)
        self._unusable.discard(reseller)
        self._deliveries.touch(reseller)
        if not endpoint.enabled and endpoint.disabled_reason != "by_owner" \
                and (before is None or before.enabled):
            self.metrics.disabled.labels(endpoint.disabled_reason or "unknown").inc()
            self.log.warning("webhook.endpoint_disabled", reseller_id=reseller,
                             reason=endpoint.disabled_reason)
        return [Outbound(catalog.WEBHOOK_ENDPOINTS, reseller, "WebhookEndpoint",
                         core.endpoint_datum(endpoint, now))]

    # -- state -------------------------------------------------------------------------------

    def _loaded(self, state: Txn) -> dict[str, Endpoint]:
        """The endpoints, pending deliveries and sequence, read from the store on first use
        (and after a rolled-back transaction); attempts still in flight stay in flight."""
        if self._endpoints is not None:
            return self._endpoints
        endpoints = {k: core.endpoint_of_json(v) for k, v in state.items(ENDPOINTS_NS)}
        deliveries = core.Deliveries(per_endpoint=self.per_endpoint,
                                     max_in_flight=self.max_in_flight)
        deliveries.load(core.pending_of_json(k, v) for k, v in state.items(PENDING_NS))
        for sent_ref in list(self._sent):
            if sent_ref in deliveries.pending:
                deliveries.sent(sent_ref)
            else:
                del self._sent[sent_ref]
        self._deliveries, self._endpoints = deliveries, endpoints
        self.metrics.count_endpoints(endpoints.values())
        self._seq = int(state.get(META_NS, "seq") or 0)
        self.log.info("webhook.state_loaded", endpoints=len(endpoints),
                      pending=len(deliveries.pending))
        return endpoints

    @property
    def deliveries(self) -> core.Deliveries:
        """The pending deliveries in memory (tests, metrics)."""
        return self._deliveries
