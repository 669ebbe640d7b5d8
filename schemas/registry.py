"""The schema registry: every ``.avsc`` of the contract, by record name, version and fingerprint.

Schemas live on disk as ``<RecordName>.v<N>.avsc``. The highest N of a record is
its current schema (what writers write and readers resolve to); older versions
stay so that bytes written under them still decode. No network registry: the
schemas ship with the code, and the single-object fingerprint finds the writer.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fastavro.schema import (
    SchemaParseException,
    fingerprint,
    parse_schema,
    to_parsing_canonical_form,
)
from fastavro.types import Schema

from schemas.errors import ContractError, UnknownSchemaError

__all__ = ["NAMESPACE", "ParsedSchema", "SchemaRegistry", "parse"]

#: The Avro namespace of every record of the contract.
NAMESPACE = "fr.passeport.hub"

_FILE_NAME = re.compile(r"(?P<record>[A-Z][A-Za-z0-9]*)\.v(?P<version>[1-9][0-9]*)\.avsc")


@dataclass(frozen=True, slots=True)
class ParsedSchema:
    """One version of one record's schema, parsed once."""

    record: str
    """Short record name, e.g. ``BusinessEnrolled``."""
    version: int
    raw: Mapping[str, Any]
    """The schema as written in its ``.avsc`` (do not mutate)."""
    parsed: Schema
    """fastavro's parsed form, ready for its readers and writers."""
    canonical: str
    """Avro Parsing Canonical Form."""
    fingerprint: bytes
    """CRC-64-AVRO of the canonical form: 8 bytes, little-endian (single-object framing)."""


def parse(raw: Mapping[str, Any], record: str, version: int) -> ParsedSchema:
    """Parse one schema version, checking it is a record of our namespace named ``record``."""
    if raw.get("type") != "record" or raw.get("name") != record:
        raise ContractError(f"{record} v{version}: not a record schema named {record!r}")
    if raw.get("namespace") != NAMESPACE:
        raise ContractError(f"{record} v{version}: namespace must be {NAMESPACE!r}")
    try:
        # A private copy: fastavro annotates what it parses, and `raw` is the caller's.
        parsed = parse_schema(copy.deepcopy(dict(raw)), named_schemas={})
    except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise ContractError(f"{record} v{version}: invalid schema: {exc}") from exc
    canonical = to_parsing_canonical_form(parsed)
    # fastavro returns the hex of the bytes in the order Java (and the
    # single-object spec) lay them out: little-endian.
    digest = bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))
    return ParsedSchema(record, version, raw, parsed, canonical, digest)


class SchemaRegistry:
    """Every schema version of the contract, by record name and version and by fingerprint."""

    def __init__(self, schemas: Iterable[ParsedSchema]) -> None:
        self._versions: dict[str, dict[int, ParsedSchema]] = {}
        self._by_fingerprint: dict[bytes, ParsedSchema] = {}
        for schema in sorted(schemas, key=lambda s: (s.record, s.version)):
            versions = self._versions.setdefault(schema.record, {})
            if schema.version in versions:
                raise ContractError(f"{schema.record} v{schema.version} is defined twice")
            versions[schema.version] = schema
            other = self._by_fingerprint.get(schema.fingerprint)
            if other is not None and other.record != schema.record:
                raise ContractError(f"{schema.record} and {other.record} share a fingerprint")
            # Two versions of one record may share a canonical form (a version that
            # only changes defaults or docs): same bytes, so the later version owns it.
            self._by_fingerprint[schema.fingerprint] = schema
        self._current = {
            record: versions[max(versions)] for record, versions in self._versions.items()
        }

    @classmethod
    def load(cls, directory: Path | None = None) -> SchemaRegistry:
        """Load every ``<Record>.v<N>.avsc`` of ``directory`` (default: the package's ``avro``)."""
        root: Traversable = directory if directory is not None else files("schemas") / "avro"
        schemas = []
        for entry in root.iterdir():
            if not entry.name.endswith(".avsc"):
                continue
            match = _FILE_NAME.fullmatch(entry.name)
            if match is None:
                raise ContractError(f"{entry.name}: schema files are named <Record>.v<N>.avsc")
            try:
                raw = json.loads(entry.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ContractError(f"{entry.name}: not JSON: {exc}") from exc
            if not isinstance(raw, dict):
                raise ContractError(f"{entry.name}: not a record schema")
            schemas.append(parse(raw, match["record"], int(match["version"])))
        return cls(schemas)

    def records(self) -> tuple[str, ...]:
        """Record names, sorted."""
        return tuple(sorted(self._versions))

    def current(self, record: str) -> ParsedSchema:
        """The current (highest) version of a record's schema."""
        try:
            return self._current[record]
        except KeyError:
            raise UnknownSchemaError(f"no schema for record {record!r}") from None

    def current_version(self, record: str) -> int:
        """The current version number of a record."""
        return self.current(record).version

    def version(self, record: str, version: int) -> ParsedSchema:
        """One given version of a record's schema."""
        try:
            return self._versions[record][version]
        except KeyError:
            raise UnknownSchemaError(f"no schema for {record!r} v{version}") from None

    def versions(self, record: str) -> dict[int, dict[str, Any]]:
        """Every version of a record, as raw schema dicts (copies), oldest first."""
        self.current(record)  # UnknownSchemaError for an unknown record
        return {
            number: copy.deepcopy(dict(schema.raw))
            for number, schema in sorted(self._versions[record].items())
        }

    def schemas(self) -> tuple[ParsedSchema, ...]:
        """Every schema version of every record."""
        return tuple(s for record in self.records() for s in self._versions[record].values())

    def by_fingerprint(self, digest: bytes) -> ParsedSchema:
        """The schema whose CRC-64-AVRO fingerprint (8 bytes, little-endian) is ``digest``."""
        try:
            return self._by_fingerprint[digest]
        except KeyError:
            raise UnknownSchemaError(f"no schema with fingerprint {bytes(digest).hex()}") from None
