"""Settings for every process, from the environment and an optional env file.

``KAFKA_BOOTSTRAP_SERVERS`` keeps its conventional, unprefixed name; everything
else is ``PASSPORT_HUB_*``. Unset bootstrap servers mean: start the embedded
broker (only ``passport-hub up``, ``demo`` and ``broker`` do that; a single
component run alone needs a broker to be named).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub.errors import ConfigError
from schemas.catalog import qualified


class Settings(BaseSettings):
    """Configuration shared by the supervisor and every component."""

    model_config = SettingsConfigDict(
        env_prefix="PASSPORT_HUB_",
        env_file="passport-hub.env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    kafka_bootstrap_servers: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "KAFKA_BOOTSTRAP_SERVERS", "PASSPORT_HUB_KAFKA_BOOTSTRAP_SERVERS"),
    )
    topic_prefix: str = ""
    """Prepended to every catalog topic name (tests, side-by-side deployments)."""
    group_prefix: str = "passport-hub"
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Path(".passport-hub")
    """Where each component keeps its SQLite state."""
    store_max_mb: int = Field(default=0, ge=0)
    """The most each SQLite file of a component may grow to, in MiB (0: no cap; its
    write-ahead log adds up to a batch's pages beside it), so that it stops before it
    fills a disk it shares with the broker. At the cap a processor stops with
    ``store.full`` (exit code 75) and resumes where it stopped once restarted with a
    higher cap; the API answers new events 503 until its file takes writes again."""

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    """Port of a processor's /metrics, /livez and /readyz (the API serves them on its own
    port); 0 picks a free port (logged at start)."""
    metrics_port_base: int = Field(default=0, ge=0, le=65535)
    """``passport-hub up``: the first component's probes port, the next ones following in
    order (passport, routing, crm_webhook, ...); 0 gives each a free port. Either way
    ``up`` lists them, and writes them to ``hub.json`` and ``prometheus-targets.json`` in
    its run directory (docs/operations.md, Probes)."""

    # Group timeouts: the embedded broker's first join waits for the rebalance
    # timeout, so short values make groups form in seconds (docs/architecture.md, Brokers).
    max_poll_interval_ms: int = Field(default=6000, ge=1000)
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    transactions: bool | None = None
    """Relay the outbox of a service that restores from its own topics (passport,
    routing) inside broker transactions fenced by the consumer group (KIP-447), and read
    committed: an instance that lost its partitions without knowing it cannot publish
    after their new owner (docs/architecture.md, Zombie fencing). On unless false; the
    stack turns it off for the embedded broker, which takes transactions but fences
    nothing."""
    poll_max_records: int = Field(default=1000, ge=1)
    batch_max_records: int = Field(default=10_000, ge=1)
    """Most records a processor applies in one batch (one store transaction). Large
    batches amortise the commit and coalesce more snapshots while catching up; live
    traffic makes small ones anyway. A batch must finish within max_poll_interval_ms,
    and holds ~6 MB per 1,000 records (the passport service: records, the businesses
    they touch, their snapshots); past 10,000 the gain is a few per cent."""
    request_timeout_ms: int = Field(default=10000, ge=1000)
    produce_timeout_s: float = Field(default=10.0, gt=0)
    """How long the ingest API waits for the broker's acknowledgement before a 503."""

    api_keys_file: Path | None = None
    """The API's keys file (``python -m connectors.api.keys``): hashes and scopes, no tokens."""
    dev_api_key: SecretStr | None = None
    """A literal token accepted with every scope: for dev and demo stacks only, never production."""
    kpi_public: bool = True
    """Whether the programme's KPI page (``GET /kpi``) and its data are served without an
    API key: they hold aggregates only (no SIREN, no contact), but name resellers and their
    figures. False asks for a delegation's or an admin key (a proxy in front adds it)."""
    api_idempotency_days: float = Field(default=7.0, gt=0)
    """How long the API remembers an accepted event id (a retry after that is published again)."""
    api_rate_per_s: float = Field(default=50.0, ge=0)
    """Requests a second each API key may make, steadily: a token bucket per key and per API
    process, so N API processes allow N times this (connectors/api/ratelimit.py). Over it,
    a 429 with Retry-After. 0: no limit. Never limited: the probes, /metrics, /kpi, the
    documents and the dev key."""
    api_rate_burst: int = Field(default=100, ge=1)
    """Requests a key may make at once above its steady rate (the size of its bucket)."""

    parked_ttl_hours: float = Field(default=14 * 24.0, gt=0)
    """How long a training or offer event waits for its business's enrolment before
    the passport service dead-letters it (stage ``expire``)."""

    passport_snapshot_window_s: float = Field(default=5.0, ge=0)
    """While catching up, how long the passport service may hold a partition's snapshots
    back, to send one per business however many batches changed it (0: one per batch).
    Caught up, it sends them after every batch (services/passport/window.py)."""

    routing_national_queue: str = "cefac-national"
    """Where a lead waits, visibly, when no reseller may take it (CEFAC's own queue, or a
    reseller id)."""
    routing_max_hops: int = Field(default=5, ge=1)
    """Resellers a lead may be given to before it goes to the national queue instead."""
    routing_sla_business_days: int = Field(default=2, ge=1)
    """Business days a reseller has to accept or reject a lead (docs/routing.md, The SLA)."""
    routing_clock_speed: float = Field(default=1.0, gt=0)
    """How fast the router's clock runs against the wall clock: 1 in production; a demo
    sets thousands, so that two business days pass in a minute or two."""
    routing_clock_origin_ms: int | None = None
    """Where a sped-up clock starts (epoch ms): one value for every router process of a
    stack, so a restarted router keeps the same time."""

    webhook_secret_key: SecretStr | None = None
    """Seals the webhook signing secrets wherever they are kept (the commands topic, the
    delivery component's store): a leaked file or topic alone then reveals none. Unset,
    they are kept in clear and the delivery component says so at start."""
    webhook_allow_hosts: str = ""
    """Hosts or networks (comma-separated: ``127.0.0.1,localhost,10.1.0.0/16``) a webhook
    may point at although they are private or loopback, and over plain http: the
    operator's exceptions to the SSRF guard (connectors/crm_webhook/ssrf.py)."""
    webhook_retry_schedule_s: str = "0,5,300,1800,7200,18000,36000,36000"
    """Delay before each attempt of a message, in seconds, the first one included (Svix's
    schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h)."""
    webhook_timeout_s: float = Field(default=15.0, gt=0)
    """An attempt succeeds with a 2xx within this time; later is a failure."""
    webhook_disable_after_s: float = Field(default=5 * 86_400.0, gt=0)
    """An endpoint failing this long without a success is disabled."""
    webhook_rotation_overlap_s: float = Field(default=86_400.0, ge=0)
    """After a rotation, how long the previous secret keeps signing beside the new one."""
    webhook_max_in_flight: int = Field(default=500, ge=1)
    """Deliveries in flight at once, all endpoints together (one process)."""
    webhook_per_endpoint: int = Field(default=4, ge=1)
    """Deliveries in flight at once to one endpoint: a slow one holds no more than this."""

    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def topic(self, name: str) -> str:
        """Physical name of a catalog topic."""
        return qualified(name, self.topic_prefix)

    def group(self, component: str) -> str:
        """Consumer group id of a component."""
        return f"{self.group_prefix}.{component}"

    @property
    def transactional(self) -> bool:
        """Whether relays that restore from their topics use broker transactions."""
        return self.transactions is not False

    @property
    def bootstrap(self) -> str:
        """The bootstrap servers, or a clear error when none is configured."""
        if not self.kafka_bootstrap_servers:
            raise ConfigError(
                "KAFKA_BOOTSTRAP_SERVERS is not set; run `passport-hub up` to start "
                "the embedded broker, or point it at a Kafka cluster"
            )
        return self.kafka_bootstrap_servers
