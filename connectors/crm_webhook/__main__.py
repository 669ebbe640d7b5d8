"""Entry point: ``python -m connectors.crm_webhook`` delivers leads to the CRMs until SIGTERM."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from connectors.crm_webhook.metrics import DeliveryMetrics
from connectors.crm_webhook.processor import DeliveryProcessor
from connectors.crm_webhook.schedule import RetryPolicy
from connectors.crm_webhook.secrets import Sealer
from connectors.crm_webhook.sender import Sender
from connectors.crm_webhook.ssrf import Guard
from hub import logs
from hub.config import Settings
from hub.service import Wiring, run_processor


def build(settings: Settings) -> Wiring:
    """The processor over a started ``Sender``, which the wiring closes after the loop.

    Both inputs have one partition, in one group: the range assignor gives both to
    one member, so one instance delivers and the others stand by (their ``flush``
    sends nothing).
    """
    policy = RetryPolicy.from_settings(settings)  # a bad schedule fails here, before any I/O
    sealer = Sealer.from_settings(settings)
    if not sealer.protected:
        logs.get().warning("webhook.secrets_unprotected",
                           hint="set PASSPORT_HUB_WEBHOOK_SECRET_KEY to seal the signing "
                                "secrets kept on the commands topic and in the store")
    registry = CollectorRegistry()
    sender = Sender(Guard.from_settings(settings), max_in_flight=settings.webhook_max_in_flight,
                    timeout_s=settings.webhook_timeout_s)
    sender.start()
    processor = DeliveryProcessor(
        sender=sender, sealer=sealer, policy=policy, per_endpoint=settings.webhook_per_endpoint,
        max_in_flight=settings.webhook_max_in_flight,
        rotation_overlap_ms=round(settings.webhook_rotation_overlap_s * 1000),
        metrics=DeliveryMetrics.create(registry))
    # 50 ms: the sender's answers are recorded, and what is due sent, within 50 ms of
    # landing (a 500 ms poll held one endpoint to per_endpoint deliveries per half second).
    return Wiring(processor, close=sender.close, millis_timestamps=True, registry=registry,
                  idle_poll_ms=50)


def main() -> None:
    run_processor(build)


if __name__ == "__main__":
    main()
