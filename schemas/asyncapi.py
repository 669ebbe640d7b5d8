"""The AsyncAPI 3.0 document of the hub's topics, generated from the catalog and the Avro schemas.

Nothing here is written by hand twice: channels are the catalog's topics,
messages its records, payloads the current ``.avsc`` of each. The copy checked
in at ``docs/asyncapi.json`` is regenerated with::

    python -m schemas.asyncapi > docs/asyncapi.json

and a test fails when it differs from ``document()``.
"""

from __future__ import annotations

import copy
import json
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from schemas import catalog
from schemas.catalog import Topic
from schemas.codec import Codec
from schemas.registry import SchemaRegistry

__all__ = ["AVRO_SCHEMA_FORMAT", "CONTENT_TYPE", "ENCODING", "document", "render"]

ASYNCAPI_VERSION = "3.0.0"
#: AsyncAPI's name for an Avro schema in a message payload.
AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro+json;version=1.9.0"
#: What a Kafka value is, to a client that does not know the framing.
CONTENT_TYPE = "application/octet-stream"
_KAFKA_BINDING_VERSION = "0.5.0"

#: How every value is framed (Avro's single-object encoding).
ENCODING = (
    "Avro single-object encoding: the two bytes C3 01, then the 8-byte little-endian"
    " CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the"
    " Avro binary body. A reader looks the fingerprint up among every version of the"
    " record (schemas/avro/<Record>.v<N>.avsc) and resolves the writer schema to its own."
)

_KEYS = {
    "siren": "The business's SIREN (9 digits), UTF-8: one business's events share a partition.",
    "lead_id": "The lead id, UTF-8.",
    "reseller_id": "The reseller id (slug), UTF-8.",
    "original key": "The key of the dead-lettered record, unchanged.",
}


def _version() -> str:
    try:
        return version("passport-hub")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0.0.0"


def _fingerprints(registry: SchemaRegistry, record: str) -> dict[str, str]:
    return {
        f"v{number}": registry.version(record, number).fingerprint.hex()
        for number in registry.versions(record)
    }


def _message(registry: SchemaRegistry, record: str, topic: Topic | None) -> dict[str, Any]:
    current = registry.current(record)
    message: dict[str, Any] = {
        "name": record,
        "title": record,
        "summary": current.raw.get("doc", record),
        "contentType": CONTENT_TYPE,
        "description": (
            f"{ENCODING} Written with v{current.version} of the schema below; values"
            " written with earlier versions (see x-avro-fingerprints) still decode."
        ),
        "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": copy.deepcopy(dict(current.raw))},
        # Specification extension: the fingerprint of each version a value may carry.
        "x-avro-fingerprints": _fingerprints(registry, record),
    }
    if topic is not None:
        key = {"type": "string", "description": _KEYS.get(topic.key, topic.key)}
        message["bindings"] = {"kafka": {"key": key, "bindingVersion": _KAFKA_BINDING_VERSION}}
    return message


def _channel(topic: Topic) -> dict[str, Any]:
    layout = (
        f"Key: {topic.key}. {topic.partitions} partition{'s' if topic.partitions > 1 else ''}"
        f"{', compacted' if topic.compacted else ''}. Deployments may prefix the name."
    )
    return {
        "address": topic.name,
        "title": topic.name,
        "description": f"{topic.doc} {layout}",
        "messages": {r: {"$ref": f"#/components/messages/{r}"} for r in topic.records},
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": {
                    "cleanup.policy": ["compact" if topic.compacted else "delete"]
                },
                "bindingVersion": _KAFKA_BINDING_VERSION,
            }
        },
    }


def _operations(topic: Topic) -> dict[str, dict[str, Any]]:
    operations: dict[str, dict[str, Any]] = {}
    for action, who in (("send", topic.writers), ("receive", topic.readers)):
        if not who:
            continue
        operation: dict[str, Any] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{topic.name}"},
            "summary": f"{'Written' if action == 'send' else 'Read'} by {', '.join(who)}.",
        }
        if topic.records:
            operation["messages"] = [
                {"$ref": f"#/channels/{topic.name}/messages/{r}"} for r in topic.records
            ]
        operations[f"{topic.name}.{action}"] = operation
    return operations


def document(registry: SchemaRegistry | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic of the catalog (a fresh dict on each call)."""
    registry = registry if registry is not None else Codec.default().registry
    topic_of = {record: topic for topic in catalog.CATALOG for record in topic.records}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "passport-hub events",
            "version": _version(),
            "description": (
                "The Kafka topics of the Passeport pour l'économie numérique hub: partner"
                " events in, passports and routed sales leads out. Every value is Avro. "
                + ENCODING
            ),
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Placeholder: KAFKA_BOOTSTRAP_SERVERS names the real brokers.",
            }
        },
        "channels": {topic.name: _channel(topic) for topic in catalog.CATALOG},
        "operations": {
            op_id: operation
            for topic in catalog.CATALOG
            for op_id, operation in _operations(topic).items()
        },
        "components": {
            "messages": {
                record: _message(registry, record, topic_of.get(record))
                for record in registry.records()
            }
        },
    }


def render(registry: SchemaRegistry | None = None) -> str:
    """The document as ``docs/asyncapi.json`` holds it: sorted keys, indented, final newline."""
    return json.dumps(document(registry), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.buffer.write(render().encode("utf-8"))
