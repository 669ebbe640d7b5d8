"""Avro binary readers compiled per schema: fastavro's datums at a fraction of its cost.

Every consumer decodes every record it reads, and ``fastavro.schemaless_reader``
pays, per call, for its generality: a schema check, a named-schema table, a
dispatch and a function call per value, a file-like object to read from.
``compile_reader`` walks a schema once and generates one Python function per
record that reads its fields in order straight from the ``bytes``, small varints
inlined. It is built for the case where the reader's schema is the writer's
(values written with the current schema); a value written with an older
version still goes through fastavro, which resolves it.

The datums are fastavro's: the same Python types (``timestamp-millis`` as UTC
datetimes, built as fastavro builds them), the same values (tests/unit/
test_avroread.py holds them equal for every schema version). Malformed bytes
raise (``IndexError``, ``EOFError``, ``UnicodeDecodeError``): never a datum made
of bytes past the end.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

__all__ = ["Read", "compile_reader"]

Read = Callable[[bytes, int], tuple[dict[str, Any], int]]
"""A reader: the datum of a record whose body starts at ``pos``, and where it ends."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SCALARS = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


class UnsupportedSchemaError(Exception):
    """A schema construct the compiler leaves to fastavro."""


def _long(data: bytes, pos: int, first: int) -> tuple[int, int]:
    """The rest of a varint whose first byte (with its continuation bit) was ``first``."""
    value, shift = first & 0x7F, 7
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if value >> 64:  # fastavro would wrap it around 64 bits: no such long is written
                raise ValueError("varint over 64 bits")
            return (value >> 1) ^ -(value & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint over 10 bytes")


def _millis(value: int) -> datetime:
    # As fastavro: datetime.fromtimestamp mishandles some values (bpo-36439).
    return _EPOCH + timedelta(microseconds=value * 1000)


_GLOBALS: dict[str, Any] = {
    "_long": _long, "_millis": _millis, "_unpack_float": struct.Struct("<f").unpack_from,
    "_unpack_double": struct.Struct("<d").unpack_from,
}


class _Compiler:
    """Generates the source of one function per named record of a schema."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.functions: dict[str, str] = {}  # full name -> function name
        self.sources: list[str] = []
        self.enums: dict[str, tuple[str, ...]] = {}
        self.fixed: dict[str, int] = {}
        self.constants: dict[str, Any] = {}  # what the generated code refers to by name
        self._names = count()
        self.millis_as_int = False

    def var(self, stem: str) -> str:
        return f"{stem}{next(self._names)}"

    def full_name(self, name: str, namespace: str) -> str:
        return name if "." in name else f"{namespace}.{name}"

    def record(self, schema: Mapping[str, Any], namespace: str) -> str:
        """Compile a record's function; return its name."""
        namespace = schema.get("namespace", namespace)
        full = self.full_name(schema["name"], namespace)
        function = f"_read_{len(self.functions)}"
        self.functions[full] = function
        lines = [f"def {function}(data, pos):", "    size = len(data)"]
        names = []
        for field in schema["fields"]:
            target = self.var("f")
            lines.extend(self.value(field["type"], target, namespace, "    "))
            names.append(f"{field['name']!r}: {target}")
        lines.append(f"    return {{{', '.join(names)}}}, pos")
        self.sources.append("\n".join(lines))
        return function

    def value(self, schema: Any, target: str, namespace: str, indent: str) -> list[str]:
        """Lines that read one value of ``schema`` at ``pos`` into ``target``."""
        if isinstance(schema, list):
            return self.union(schema, target, namespace, indent)
        if isinstance(schema, str):
            if schema not in _SCALARS:
                return self.named(self.full_name(schema, namespace), target, indent)
            schema = {"type": schema}
        kind, logical = schema.get("type"), schema.get("logicalType")
        if kind == "long" and logical == "timestamp-millis":
            converted = [] if self.millis_as_int else [f"{indent}{target} = _millis({target})"]
            return [*self.long(target, indent), *converted]
        if logical is not None and logical != "uuid":
            raise UnsupportedSchemaError(f"logical type {logical}")
        if kind in _SCALARS:
            return self.scalar(kind, target, indent)
        if kind in ("array", "map"):
            items = schema["items"] if kind == "array" else schema["values"]
            return self.blocks(items, target, namespace, indent, keyed=kind == "map")
        return self.named(self.declare(schema, namespace), target, indent)

    def declare(self, schema: Mapping[str, Any], namespace: str) -> str:
        """Compile or note a named type defined in place; return its full name."""
        kind = schema.get("type")
        full = self.full_name(schema["name"], schema.get("namespace", namespace))
        if kind == "record":
            self.record(schema, namespace)
        elif kind == "enum":
            self.enums[full] = tuple(schema["symbols"])
        elif kind == "fixed":
            self.fixed[full] = int(schema["size"])
        else:
            raise UnsupportedSchemaError(f"type {kind!r}")
        return full

    def named(self, full: str, target: str, indent: str) -> list[str]:
        if full in self.functions:
            return [f"{indent}{target}, pos = {self.functions[full]}(data, pos)"]
        if full in self.enums:
            symbols = self.var("_symbols")
            self.constants[symbols] = self.enums[full]
            index = self.var("i")
            return [*self.long(index, indent),
                    f"{indent}if {index} < 0: raise IndexError('enum index')",
                    f"{indent}{target} = {symbols}[{index}]"]
        if full in self.fixed:
            return self.take(str(self.fixed[full]), target, indent, decode=False)
        raise UnsupportedSchemaError(f"unknown named type {full}")

    def scalar(self, kind: str, target: str, indent: str) -> list[str]:
        if kind == "null":
            return [f"{indent}{target} = None"]
        if kind == "boolean":
            return [f"{indent}{target} = data[pos] != 0", f"{indent}pos += 1"]
        if kind in ("int", "long"):
            return self.long(target, indent)
        if kind in ("float", "double"):
            width = 4 if kind == "float" else 8
            return [f"{indent}if pos + {width} > size: raise EOFError('{kind}')",
                    f"{indent}{target} = _unpack_{kind}(data, pos)[0]",
                    f"{indent}pos += {width}"]
        length = self.var("n")
        return [*self.long(length, indent),
                *self.take(length, target, indent, decode=kind == "string")]

    def take(self, length: str, target: str, indent: str, *, decode: bool) -> list[str]:
        end = self.var("end")
        text = ".decode()" if decode else ""
        return [f"{indent}{end} = pos + {length}",
                f"{indent}if {end} > size or {end} < pos: raise EOFError('length')",
                f"{indent}{target} = data[pos:{end}]{text}",
                f"{indent}pos = {end}"]

    def long(self, target: str, indent: str) -> list[str]:
        """A zig-zag varint, the one-byte case inline."""
        return [f"{indent}{target} = data[pos]",
                f"{indent}pos += 1",
                f"{indent}if {target} < 0x80: {target} = ({target} >> 1) ^ -({target} & 1)",
                f"{indent}else: {target}, pos = _long(data, pos, {target})"]

    def union(self, branches: list[Any], target: str, namespace: str,
              indent: str) -> list[str]:
        index = self.var("u")
        lines = self.long(index, indent)
        for number, branch in enumerate(branches):
            lines.append(f"{indent}{'if' if number == 0 else 'elif'} {index} == {number}:")
            lines.extend(self.value(branch, target, namespace, indent + "    "))
        lines.append(f"{indent}else: raise IndexError('union index')")
        return lines

    def blocks(self, items: Any, target: str, namespace: str, indent: str, *,
               keyed: bool) -> list[str]:
        block, item, key = self.var("c"), self.var("v"), self.var("k")
        inner = indent + "        "
        lines = [f"{indent}{target} = {{}}" if keyed else f"{indent}{target} = []",
                 f"{indent}while True:",
                 *self.long(block, indent + "    "),
                 f"{indent}    if {block} == 0: break",
                 f"{indent}    if {block} < 0:",
                 f"{indent}        {block} = -{block}",
                 *self.long(self.var("_size"), inner),
                 f"{indent}    for _ in range({block}):"]
        if keyed:
            lines.extend(self.scalar("string", key, inner))
        lines.extend(self.value(items, item, namespace, inner))
        lines.append(f"{inner}{target}[{key}] = {item}" if keyed
                     else f"{inner}{target}.append({item})")
        return lines


def compile_reader(schema: Mapping[str, Any], *, millis_as_int: bool = False) -> Read:
    """A reader of ``schema`` (a record, as JSON), for values written with that very schema.

    ``millis_as_int``: ``timestamp-millis`` values stay epoch milliseconds (``int``)
    instead of becoming aware datetimes, which costs ~0.6 µs each.
    Raises ``UnsupportedSchemaError`` for what it does not compile (then use fastavro).
    """
    if schema.get("type") != "record":
        raise UnsupportedSchemaError("only records are compiled")
    compiler = _Compiler(schema.get("namespace", ""))
    compiler.millis_as_int = millis_as_int
    top = compiler.record(schema, schema.get("namespace", ""))
    namespace: dict[str, Any] = {**_GLOBALS, **compiler.constants}
    source = "\n\n".join(compiler.sources)
    exec(compile(source, f"<avro reader {schema['name']}>", "exec"), namespace)  # noqa: S102 - our own generated code
    reader: Read = namespace[top]
    return reader
