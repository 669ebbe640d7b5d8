"""The AsyncAPI document: generated from the catalog and the schemas, checked in, well formed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.schema
import pytest

from schemas import asyncapi, catalog
from schemas.codec import Codec

ROOT = Path(__file__).parents[2]
CHECKED_IN = ROOT / "docs" / "asyncapi.json"
REGENERATE = "python -m schemas.asyncapi > docs/asyncapi.json"
# AsyncAPI 3.0: keys of channels, operations and components match this.
_ID = re.compile(r"[A-Za-z0-9.\-_]+")

DOC = asyncapi.document()
REGISTRY = Codec.default().registry


def refs(node: Any) -> Iterator[str]:
    """Every ``$ref`` in a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def resolve(pointer: str) -> Any:
    """The node a local JSON pointer (``#/a/b``) names in the document (KeyError if none)."""
    assert pointer.startswith("#/"), pointer
    node: Any = DOC
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_the_checked_in_document_is_the_generated_one() -> None:
    assert CHECKED_IN.read_text(encoding="utf-8") == asyncapi.render(), (
        f"docs/asyncapi.json is stale; regenerate it with: {REGENERATE}"
    )


def test_the_module_prints_the_document() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "schemas.asyncapi"], cwd=ROOT, capture_output=True, check=True,
        timeout=60,
    ).stdout
    assert out.decode("utf-8") == asyncapi.render()
    assert out.endswith(b"}\n")


def test_top_level() -> None:
    assert DOC["asyncapi"] == "3.0.0"
    assert {"asyncapi", "info", "servers", "channels", "operations", "components"} <= set(DOC)
    assert DOC["info"]["title"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", DOC["info"]["version"])
    assert DOC["info"]["description"]
    assert DOC["servers"]["kafka"]["host"] == "localhost:9092"
    assert DOC["servers"]["kafka"]["protocol"] == "kafka"
    assert DOC["defaultContentType"] == "application/octet-stream"


def test_every_catalog_topic_is_a_channel_with_its_layout() -> None:
    assert set(DOC["channels"]) == {topic.name for topic in catalog.CATALOG}
    for topic in catalog.CATALOG:
        channel = DOC["channels"][topic.name]
        assert channel["address"] == topic.name
        binding = channel["bindings"]["kafka"]
        assert binding["topic"] == topic.name
        assert binding["partitions"] == topic.partitions
        policy = binding["topicConfiguration"]["cleanup.policy"]
        assert policy == (["compact"] if topic.compacted else ["delete"])
        assert list(channel["messages"]) == list(topic.records)
        assert topic.doc in channel["description"]


def test_every_record_is_a_message_with_its_current_avro_schema() -> None:
    messages = DOC["components"]["messages"]
    assert set(messages) == set(REGISTRY.records())
    for record, message in messages.items():
        current = REGISTRY.current(record)
        assert message["name"] == record
        assert message["contentType"] == "application/octet-stream"
        assert "single-object" in message["description"]
        assert message["payload"]["schemaFormat"] == (
            "application/vnd.apache.avro+json;version=1.9.0"
        )
        assert message["payload"]["schema"] == current.raw
        # Another implementation reads it (its fingerprints are test_codec's business).
        apache = avro.schema.parse(json.dumps(message["payload"]["schema"]))
        assert isinstance(apache, avro.schema.RecordSchema)
        assert apache.fullname == f"fr.passeport.hub.{record}"
        assert message["x-avro-fingerprints"] == {
            f"v{n}": REGISTRY.version(record, n).fingerprint.hex()
            for n in REGISTRY.versions(record)
        }


def test_every_message_carries_the_key_of_its_topic() -> None:
    for topic in catalog.CATALOG:
        for record in topic.records:
            key = DOC["components"]["messages"][record]["bindings"]["kafka"]["key"]
            assert key["type"] == "string"
            assert key["description"]


def test_every_record_is_carried_by_exactly_one_topic() -> None:
    # A message's key binding holds one key: a record on two topics would need two.
    carried = [record for topic in catalog.CATALOG for record in topic.records]
    assert sorted(carried) == sorted(set(carried)) == sorted(REGISTRY.records())


def test_every_reference_resolves() -> None:
    found = list(refs(DOC))
    assert len(found) > 2 * len(REGISTRY.records())
    for pointer in found:
        assert resolve(pointer) is not None, pointer


def test_channel_messages_point_at_components() -> None:
    for channel in DOC["channels"].values():
        for name, message in channel["messages"].items():
            assert message == {"$ref": f"#/components/messages/{name}"}


def test_operations_send_and_receive_on_every_channel_with_its_messages() -> None:
    operations = DOC["operations"]
    for topic in catalog.CATALOG:
        for action in ("send", "receive"):
            operation = operations[f"{topic.name}.{action}"]
            assert operation["action"] == action
            assert operation["channel"] == {"$ref": f"#/channels/{topic.name}"}
            # AsyncAPI 3: an operation's messages are messages of its own channel.
            prefix = f"#/channels/{topic.name}/messages/"
            messages = operation.get("messages", [])
            assert all(m["$ref"].startswith(prefix) for m in messages)
            assert [m["$ref"].removeprefix(prefix) for m in messages] == list(topic.records)
    assert len(operations) == 2 * len(catalog.CATALOG)


def test_ids_are_valid_asyncapi_keys() -> None:
    for section in (DOC["channels"], DOC["operations"], DOC["components"]["messages"]):
        for key in section:
            assert _ID.fullmatch(key), key


def test_document_returns_a_fresh_copy() -> None:
    doc = asyncapi.document()
    doc["components"]["messages"]["BusinessEnrolled"]["payload"]["schema"]["fields"].clear()
    doc["channels"].clear()
    assert asyncapi.document() == DOC
    assert REGISTRY.current("BusinessEnrolled").raw["fields"]


@pytest.mark.parametrize(("record", "version"), [("BusinessEnrolled", 2), ("ResellerProfile", 3),
                                                 ("LeadAssigned", 2)])
def test_payload_is_the_current_schema(record: str, version: int) -> None:
    schema = DOC["components"]["messages"][record]["payload"]["schema"]
    assert schema == REGISTRY.version(record, version).raw
    assert len(DOC["components"]["messages"][record]["x-avro-fingerprints"]) == version
