"""The topic catalog: every topic the hub reads or writes, with its key and layout.

This module is the single source of truth for topic names, partition counts and
compaction. The three partner-input topics keyed by SIREN are co-partitioned
(same partition count, same default partitioner), so one business's enrolment,
training and offer events land in the same partition number of each topic and
one passport instance owns all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

ENROLMENTS = "pn.enrolments.v1"
TRAINING = "pn.training.v1"
OFFER_REQUESTS = "pn.offer-requests.v1"
PASSPORTS = "pn.passports.v1"
LEAD_REQUESTS = "pn.lead-requests.v1"
RESELLERS = "pn.resellers.v1"
LEAD_RESPONSES = "pn.lead-responses.v1"
LEADS = "pn.leads.v1"
DLQ = "pn.dlq.v1"
WEBHOOK_COMMANDS = "pn.webhook-commands.v1"
WEBHOOK_ENDPOINTS = "pn.webhook-endpoints.v1"
DELIVERIES = "pn.deliveries.v1"

#: Partition count shared by the co-partitioned, SIREN-keyed topics.
SIREN_PARTITIONS = 6

# Who writes partner input: the HTTP API, the file drop, and the demo's synthetic source.
_INGEST = ("api", "file_drop", "synthetic")


@dataclass(frozen=True, slots=True)
class Topic:
    """One topic of the catalog."""

    name: str
    key: str
    partitions: int
    compacted: bool
    records: tuple[str, ...]
    """Avro record names whose values this topic carries."""
    doc: str
    writers: tuple[str, ...] = ()
    """Who produces to it (the components of docs/architecture.md)."""
    readers: tuple[str, ...] = ()
    """Who consumes it: the components (the read model in the API's process), the demo's
    synthetic CRMs, and the dead-letter tool (``dlq``); tests/unit/test_catalog_readers.py
    holds it to what each one really reads."""
    retained: bool = False
    """Kept for good (``retention.ms=-1``): a log that state is rebuilt from."""


CATALOG: tuple[Topic, ...] = (
    Topic(ENROLMENTS, "siren", SIREN_PARTITIONS, False,
          ("BusinessEnrolled", "ConsentWithdrawn", "ErasureRequested"),
          "Businesses enrolled by CEFAC delegations and advisors; consent and erasure requests.",
          writers=_INGEST, readers=("passport",)),
    Topic(TRAINING, "siren", SIREN_PARTITIONS, False,
          ("ModuleCompleted", "TrainingSessionAttended", "TrainingFeedback"),
          "Training facts reported by trainer organisations: completions, attendance, feedback.",
          writers=_INGEST, readers=("passport",)),
    Topic(OFFER_REQUESTS, "siren", SIREN_PARTITIONS, False, ("OfferRequested",),
          "Requests for a partner offer in one category.",
          writers=_INGEST, readers=("passport",)),
    Topic(PASSPORTS, "siren", SIREN_PARTITIONS, True, ("PassportSnapshot",),
          "The latest passport of every business (compacted).",
          writers=("passport",), readers=("passport", "readmodel")),
    Topic(LEAD_REQUESTS, "lead_id", 1, False, ("LeadRequested", "LeadWithdrawn"),
          "Leads waiting for a routing decision, and withdrawals of a business's consent "
          "for its leads; one partition so one router decides.",
          writers=("passport",), readers=("routing",)),
    Topic(RESELLERS, "reseller_id", 3, True, ("ResellerProfile",),
          "Reseller profiles (compacted); every router instance reads the whole table.",
          writers=_INGEST, readers=("routing", "readmodel")),
    Topic(LEAD_RESPONSES, "lead_id", 1, False, ("LeadAnswered",),
          "Resellers' answers to their leads; one partition, so the router that owns the "
          "lead requests owns the answers too (the range assignor gives both partitions 0 "
          "to one member).",
          writers=_INGEST, readers=("routing",)),
    Topic(LEADS, "lead_id", 1, False, ("LeadAssigned",),
          "Every change of every lead, in order, with its decision trace; one partition: "
          "the router's state is the fold of this log (services/routing/restore.py), "
          "so it is never compacted and keeps its records.",
          writers=("routing",), readers=("routing", "crm_webhook", "readmodel", "synthetic"),
          retained=True),
    Topic(WEBHOOK_COMMANDS, "reseller_id", 1, False, ("WebhookCommand",),
          "Resellers' webhook endpoint commands (register, rotate, test, replay), from the API to "
          "the delivery component; its endpoints are the fold of this log, so it keeps its records "
          "and has one partition, like the leads it is read beside.",
          writers=("api",), readers=("crm_webhook",), retained=True),
    Topic(WEBHOOK_ENDPOINTS, "reseller_id", 1, True, ("WebhookEndpoint",),
          "The state of every reseller's webhook endpoint (compacted; secrets only as "
          "fingerprints).",
          writers=("crm_webhook",), readers=("readmodel",)),
    Topic(DELIVERIES, "reseller_id", 3, False, ("WebhookDelivery",),
          "The delivery log: one record per attempt of a webhook message (no body, no secret).",
          writers=("crm_webhook",), readers=("readmodel",)),
    Topic(DLQ, "original key", 3, False, (),
          "Dead letters: the original bytes, the cause in headers.",
          writers=("every consumer",), readers=("dlq",)),
)

_BY_NAME = {topic.name: topic for topic in CATALOG}


def topic(name: str) -> Topic:
    """Return the catalog entry for a base topic name (KeyError if unknown)."""
    return _BY_NAME[name]


def qualified(name: str, prefix: str = "") -> str:
    """The physical topic name: tests and side-by-side deployments add a prefix."""
    return f"{prefix}{name}"
