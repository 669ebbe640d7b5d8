"""What the delivery component records (docs/operations.md, Metrics): attempts and their
outcomes, what waits, the endpoints by state, and how long a lead takes from the
business's request to its reseller's CRM.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from connectors.crm_webhook.state import Endpoint, Message

#: Buckets of the lead delivery latency: a lead decided and pushed at once takes
#: seconds; one whose CRM was away waits for the retries, hours to days.
LEAD_LATENCY_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200,
                        86400, 259200)


@dataclasses.dataclass(frozen=True, slots=True)
class DeliveryMetrics:
    """What the delivery component records, on the process's registry.

    ``lead_latency``: from the business's request for the offer (the lead's
    ``requested_at``, the time of the ``offer_requested`` event that caused it) to the
    first 2xx answer to the ``lead.assigned`` message of the lead's first decision
    (version 1), replays aside: the whole way through the hub, as the business waits
    for it (an offer reported late, in a file of last week's, counts its age too). An
    attempt in flight at a crash is made again, and its 2xx observed again
    by the next process, as any replay after a crash.
    ``endpoints``: the endpoints known now, by state (enabled, disabled), set when the
    store is read and as they change; only by the instance that owns the inputs (a
    standby reads no store: it has no such series).
    """

    deliveries: Counter
    latency: Histogram
    pending: Gauge
    in_flight: Gauge
    disabled: Counter
    endpoints: Gauge
    lead_latency: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry) -> DeliveryMetrics:
        return cls(
            Counter("passport_hub_webhook_deliveries", "Webhook attempts (and skipped "
                    "messages), by outcome.", ["outcome"], registry=registry),
            Histogram("passport_hub_webhook_attempt_duration_seconds",
                      "Time from sending a webhook to its answer or failure.", registry=registry,
                      buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30)),
            Gauge("passport_hub_webhook_pending_deliveries",
                  "Messages waiting for a delivery (in flight included).", registry=registry),
            Gauge("passport_hub_webhook_in_flight_deliveries",
                  "Webhook attempts sent and not answered yet.", registry=registry),
            Counter("passport_hub_webhook_endpoints_disabled", "Webhook endpoints the hub "
                    "disabled, by reason.", ["reason"], registry=registry),
            Gauge("passport_hub_webhook_endpoints", "Webhook endpoints registered, by state "
                  "(enabled, disabled).", ["state"], registry=registry),
            Histogram("passport_hub_lead_delivery_latency_seconds",
                      "From a business's offer request to the first 2xx delivery of its "
                      "lead's first assignment to the reseller's CRM.", registry=registry,
                      buckets=LEAD_LATENCY_BUCKETS))

    def count_endpoints(self, endpoints: Iterable[Endpoint]) -> None:
        """Set the endpoints gauge from all the endpoints (a few hundred: on change only)."""
        enabled = disabled = 0
        for endpoint in endpoints:
            if endpoint.enabled:
                enabled += 1
            else:
                disabled += 1
        self.endpoints.labels("enabled").set(enabled)
        self.endpoints.labels("disabled").set(disabled)

    def delivered(self, message: Message, replay: bool, now: int) -> None:
        """Observe the lead delivery latency if ``message`` is the first assignment's."""
        event = message.event
        if replay or event.type != "lead.assigned" or event.data.get("version") != 1:
            return
        requested = event.data.get("requested_at")
        at = _epoch_ms(requested) if isinstance(requested, str) else event.occurred_at
        self.lead_latency.observe(max(0.0, (now - at) / 1000))


def _epoch_ms(iso: str) -> int:
    """Epoch ms of an RFC 3339 time as the bodies write it (``…Z``)."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
