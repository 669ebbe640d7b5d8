"""Avro binary writers compiled per schema: fastavro's bytes at a fraction of its cost.

fastavro's ``schemaless_writer`` walks the parsed schema for every datum it writes:
a dispatch per value, a validation pass to pick each union branch, a function call
per field. ``compile_writer`` walks the schema once and generates the Python code
that writes its fields in order (one function, nested records inline), with the
branch tests, type checks and table lookups inlined; the source is ``exec``'d
once, when a codec is built. About 4x faster than fastavro on an enrolment, 3x on
a passport snapshot.

The contract is fastavro's. For a datum that ``fastavro.validation`` accepts, a
writer returns its prefix, then the bytes of ``schemaless_writer(...,
strict_allow_default=True)``; for any other datum it raises. The generated code
takes the forms our models and services produce (``dict`` records, ``str``,
``int``, ``bool``, ``float``, ``bytes``, ``UUID``, aware datetimes or epoch
milliseconds, lists and tuples, dicts). Any other value (a union branch in
fastavro's tuple notation, a naive datetime, a ``Mapping`` that is not a dict,
a numpy int, a missing or an extra field, or a value that fits nothing) sends the
whole datum to a fallback: by default fastavro, which writes it or says why not,
then ``fastavro.validation``, which refuses what fastavro's writer would have
coerced (a float truncated into an int, a truthy value written as true, a string
as an array of its characters). So no byte is ever one fastavro would not write,
and no coerced value gets through.
"""

from __future__ import annotations

import copy
import linecache
import struct
from binascii import hexlify
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from io import BytesIO
from itertools import count
from typing import Any, cast
from uuid import UUID

from fastavro import parse_schema, schemaless_writer
from fastavro.validation import ValidationError, validate

__all__ = ["Write", "compile_writer", "fastavro_writer", "writer"]

Write = Callable[[Mapping[str, Any]], bytes]
"""A writer: its prefix, then the Avro binary encoding of one datum."""

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})
_END = b"\x00"  # the block count 0 that ends an array or a map
_SERIALS = count()  # tell apart the generated sources in linecache


class _Unsupported(Exception):
    """A schema construct the compiler leaves to fastavro."""


class _Unfit(Exception):
    """A value the generated code does not take: fastavro decides what becomes of it."""


# -- what the generated code calls ------------------------------------------------------

# Varints come from two tables of 14-bit chunks (16384 entries each, ~1.5 MB
# together): one to three lookups a number, several times faster than a loop.
_LAST = tuple(
    bytes((i,)) if i < 0x80 else bytes((i & 0x7F | 0x80, i >> 7)) for i in range(0x4000)
)
"""The varint of each number below 2**14: the chunk that ends a varint."""
_MORE = tuple(bytes((i & 0x7F | 0x80, i >> 7 | 0x80)) for i in range(0x4000))
"""14 bits of a varint that goes on: two bytes, each with its continuation bit."""


def _varint(z: int) -> bytes:
    """The varint of ``z`` >= 0 (a zig-zagged long, or a size)."""
    if z < 0x4000:
        return _LAST[z]
    if z < 0x10000000:
        return _MORE[z & 0x3FFF] + _LAST[z >> 14]
    if z < 0x40000000000:  # below 2**42: milliseconds of times up to the year 2039
        return _MORE[z & 0x3FFF] + _MORE[z >> 14 & 0x3FFF] + _LAST[z >> 28]
    out = b""
    while z >= 0x4000:
        out += _MORE[z & 0x3FFF]
        z >>= 14
    return out + _LAST[z]


def _long(value: Any) -> bytes:
    if type(value) is not int:
        raise _Unfit  # fastavro truncates a float, takes a bool as 0 or 1, refuses a str
    z = (value << 1) ^ (value >> 63)  # zig-zag: below 2**64 exactly for the longs
    # _varint's cases for small numbers and timestamps again, a call less.
    if z < 0x4000:
        return _LAST[z]
    if 0x10000000 <= z < 0x40000000000:
        return _MORE[z & 0x3FFF] + _MORE[z >> 14 & 0x3FFF] + _LAST[z >> 28]
    if z >> 64:
        raise _Unfit  # not a long: fastavro raises OverflowError
    return _varint(z)


def _int(value: Any) -> bytes:
    if type(value) is not int:
        raise _Unfit
    z = (value << 1) ^ (value >> 63)  # below 2**32 exactly for the ints
    if z >> 32:
        raise _Unfit  # fastavro would write 2**40 as a long into an int
    return _varint(z)


def _size(n: int) -> bytes:
    return _varint(n << 1)


def _complete(datum: dict[str, Any], names: frozenset[str], defaults: dict[str, Any]) -> Any:
    """A record with fields left out: the defaults filled in (an extra field is _Unfit)."""
    if not names.issuperset(datum):
        raise _Unfit  # fastavro refuses it, and names it
    return {**defaults, **datum}


@cache
def _sizes(lead: bytes) -> tuple[bytes, ...]:
    """``lead``, then the varint of each size below 1024 (lengths, item counts)."""
    return tuple(lead + _size(n) for n in range(1024))


@cache
def _small_ints(lead: bytes) -> tuple[tuple[bytes, ...], int]:
    """``lead``, then the varint of each int in [-bound, bound); and bound.

    The tuple is indexed by the int itself, negative ones from its end.
    """
    bound = 64 if lead else 0x2000  # one byte, or all _LAST: a union's branch adds a copy
    return tuple(lead + _LAST[(i << 1) ^ (i >> 63)]
                 for i in [*range(bound), *range(-bound, 0)]), bound


_RUNTIME: dict[str, Any] = {
    "_Unfit": _Unfit,
    "_int": _int,
    "_long": _long,
    "_size": _size,
    "_utf8": str.encode,  # unbound: a TypeError for anything but a str, as in fastavro
    "_UUID": UUID,
    "_hexlify": hexlify,
    "_MORE": _MORE,
    "_LAST": _LAST,
    "_complete": _complete,
    "_datetime": datetime,
    "_EPOCH": datetime(1970, 1, 1, tzinfo=UTC),
    # (at - epoch) // 1 ms floors the microseconds, as fastavro's int(us / 1000) does.
    "_MILLI": timedelta(milliseconds=1),
    "_float": struct.Struct("<f").pack,
    "_double": struct.Struct("<d").pack,
}


# -- the compiler -----------------------------------------------------------------------


def _fullname(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _put(lead: bytes) -> str:
    """The start of a line that appends ``lead`` and then an expression."""
    return f"out += {lead!r} + " if lead else "out += "


def _indent(lines: Iterable[str], levels: int = 1) -> list[str]:
    return ["    " * levels + line for line in lines]


def _function(signature: str, doc: str, body: list[str]) -> str:
    return "\n".join([f"def {signature}:", f"    {doc!r}", *_indent(body)]) + "\n"


class _Compiler:
    """Generates the source of one writer: its function, and the constants it reads.

    ``value`` gives the lines that write the value held in a local variable,
    after ``lead``: the branch index of the union it is in, fused with what
    follows into one constant where that saves an append. Records are written
    inline; a recursive one also gets a function, which calls itself.
    """

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = dict(_RUNTIME)
        self.functions: list[str] = []
        self.named: dict[str, tuple[dict[str, Any], str | None]] = {}  # with their namespace
        self.record_functions: dict[str, str] = {}
        self.inlining: set[str] = set()
        self.ids = count()

    def local(self, prefix: str) -> str:
        return f"{prefix}{next(self.ids)}"

    def constant(self, value: Any, name: str | None = None) -> str:
        name = name or self.local("_c")
        self.namespace[name] = value
        return name

    def table(self, kind: str, lead: bytes) -> str:
        name = f"_{kind}_{lead.hex()}" if lead else f"_{kind}"
        if name not in self.namespace:
            self.namespace[name] = _sizes(lead) if kind == "sizes" else _small_ints(lead)[0]
        return name

    def value(  # noqa: PLR0911 - a return per kind of Avro type
        self, schema: Any, var: str, ns: str | None, lead: bytes = b"", in_union: bool = False
    ) -> list[str]:
        if isinstance(schema, list):
            if lead:
                raise _Unsupported("a union directly in a union")
            return self.union(schema, var, ns)
        if isinstance(schema, str):
            schema = {"type": schema}
        if not isinstance(schema, dict) or not isinstance(schema.get("type"), str):
            raise _Unsupported(f"schema {schema!r}")
        kind: str = schema["type"]
        if "logicalType" in schema:
            return self.logical(kind, schema["logicalType"], var, lead)
        if kind in _PRIMITIVES:
            return self.primitive(kind, var, lead)
        if kind in _NAMED:
            return self.named_value(self.declare(schema, ns), var, lead)
        if kind == "array":
            return self.array(schema["items"], var, ns, lead, in_union)
        if kind == "map":
            return self.map(schema["values"], var, ns, lead)
        for fullname in (_fullname(kind, ns), kind):  # a reference to a named type
            if fullname in self.named:
                return self.named_value(fullname, var, lead)
        raise _Unsupported(f"type {kind!r}")

    def declare(self, schema: dict[str, Any], ns: str | None) -> str:
        fullname = _fullname(schema["name"], schema.get("namespace", ns))
        if fullname in self.named:
            raise _Unsupported(f"{fullname} defined twice")
        # The types it declares inside are in its namespace.
        self.named[fullname] = (schema, fullname.rpartition(".")[0] or None)
        return fullname

    def named_value(self, fullname: str, var: str, lead: bytes) -> list[str]:
        schema = self.named[fullname][0]
        put_lead = [f"out += {lead!r}"] if lead else []
        if schema["type"] in {"record", "error"}:
            if fullname in self.inlining or fullname in self.record_functions:
                return [*put_lead, f"{self.record_function(fullname)}({var}, out)"]
            self.inlining.add(fullname)
            record = self.local("r")
            lines = [*put_lead, f"{record} = {var}", *self.record(fullname, record)]
            self.inlining.discard(fullname)
            return lines
        if schema["type"] == "enum":
            symbols = {s: lead + _size(i) for i, s in enumerate(schema["symbols"])}
            return [f"out += {self.constant(symbols)}[{var}]"]
        return [f"if type({var}) is not bytes or len({var}) != {schema['size']!r}: raise _Unfit",
                *put_lead, f"out += {var}"]  # fixed

    def record_function(self, fullname: str) -> str:
        function = self.record_functions.get(fullname)
        if function is None:  # its own fields may call it: the name comes first
            function = self.record_functions[fullname] = f"_record{len(self.record_functions)}"
            body = self.record(fullname, "d")
            self.functions.append(_function(f"{function}(d, out)", f"Write a {fullname}.", body))
        return function

    def record(self, fullname: str, var: str) -> list[str]:
        """Lines that write the record in local ``var``: its fields, in order."""
        schema, ns = self.named[fullname]
        fields = schema["fields"]
        names = frozenset(field["name"] for field in fields)
        defaults = {field["name"]: field["default"] for field in fields if "default" in field}
        lines = [
            f"if type({var}) is not dict: raise _Unfit",
            f"if len({var}) != {len(fields)}:",
            f"    {var} = _complete({var}, {self.constant(names)}, {self.constant(defaults)})",
        ]
        for field in fields:
            # One local for every field: each is written as soon as it is read.
            lines.append(f"v = {var}[{field['name']!r}]")
            lines.extend(self.value(field["type"], "v", ns))
        return lines

    def primitive(self, kind: str, var: str, lead: bytes) -> list[str]:
        if kind == "null":
            return [f"if {var} is not None: raise _Unfit", *([f"out += {lead!r}"] if lead else [])]
        if kind == "boolean":
            true, false = lead + b"\x01", lead + b"\x00"
            return [f"if {var} is True: out += {true!r}",
                    f"elif {var} is False: out += {false!r}",
                    "else: raise _Unfit"]
        if kind in {"int", "long"}:
            bound = _small_ints(lead)[1]
            return [f"if type({var}) is int and {-bound} <= {var} < {bound}:",
                    f"    out += {self.table('ints', lead)}[{var}]",
                    f"else: {_put(lead)}_{kind}({var})"]
        if kind in {"float", "double"}:
            # fastavro also takes a str such as "NaN" for a field, which validation refuses.
            return [f"if type({var}) is not float and type({var}) is not int: raise _Unfit",
                    f"{_put(lead)}_{kind}({var})"]
        if kind == "bytes":
            return [f"if type({var}) is not bytes and type({var}) is not bytearray: raise _Unfit",
                    *self.sized(var, lead), f"out += {var}"]
        return [f"b = _utf8({var})", *self.sized("b", lead), "out += b"]  # string

    def sized(self, var: str, lead: bytes) -> list[str]:
        """The lines that write ``lead``, then ``len(var)``."""
        large = f"{lead!r} + _size(n)" if lead else "_size(n)"
        return [f"n = len({var})",
                f"out += {self.table('sizes', lead)}[n] if n < 1024 else {large}"]

    def logical(self, kind: str, logical: str, var: str, lead: bytes) -> list[str]:
        if (kind, logical) == ("string", "uuid"):
            # fastavro writes str(uuid): here its text, spelt the same at a third of the
            # cost. A str as it is; anything else (a UUID subclass) is for fastavro.
            return [
                f"if type({var}) is _UUID:",
                f"    out += {lead + _size(36)!r}",
                "    p = len(out)",
                f"    out += _hexlify({var}.int.to_bytes(16, 'big'), b'-', 2)",  # 8 groups of 4
                "    del out[p + 34], out[p + 29], out[p + 4]",  # now 8-4-4-4-12
                "else:",
                *_indent(self.primitive("string", var, lead)),
            ]
        if (kind, logical) == ("long", "timestamp-millis"):
            # An aware datetime; a naive one fails the subtraction and goes to fastavro,
            # which takes it as local time. Then the long, inline for the usual millis
            # (2**27 to 2**41: 1974 to 2039, six bytes).
            return [f"if type({var}) is _datetime: {var} = ({var} - _EPOCH) // _MILLI",
                    f"if type({var}) is int and 0x8000000 <= {var} < 0x20000000000:",
                    f"    {_put(lead)}_MORE[{var} << 1 & 0x3FFF] + _MORE[{var} >> 13 & 0x3FFF]"
                    f" + _LAST[{var} >> 27]",
                    f"else: {_put(lead)}_long({var})"]
        raise _Unsupported(f"logical type {logical!r} of {kind!r}")

    def union(self, branches: list[Any], var: str, ns: str | None) -> list[str]:
        # fastavro writes the first branch whose validation the value passes: None
        # passes "null" and no other type, and no other value passes "null".
        if len(branches) != 2 or "null" not in branches or branches[0] == branches[1]:
            raise _Unsupported(f"union {branches!r}")
        null = branches.index("null")
        return [f"if {var} is None: out += {_size(null)!r}",
                "else:",
                *_indent(self.value(branches[1 - null], var, ns, _size(1 - null), in_union=True))]

    def array(self, items: Any, var: str, ns: str | None, lead: bytes,
              in_union: bool) -> list[str]:
        item = self.local("i")
        # In a union fastavro reads a tuple as (branch name, value): only lists there.
        check = (f"type({var}) is not list" if in_union
                 else f"type({var}) is not list and type({var}) is not tuple")
        return [f"if {check}: raise _Unfit",
                f"if {var}:",  # one block of all the items, as fastavro writes them
                *_indent(self.sized(var, lead)),
                f"    for {item} in {var}:",
                *_indent(self.value(items, item, ns), 2),
                f"    out += {_END!r}",
                f"else: out += {lead + _END!r}"]

    def map(self, values: Any, var: str, ns: str | None, lead: bytes) -> list[str]:
        key, item = self.local("k"), self.local("i")
        return [f"if type({var}) is not dict: raise _Unfit",
                f"if {var}:",
                *_indent(self.sized(var, lead)),
                f"    for {key}, {item} in {var}.items():",
                *_indent(self.primitive("string", key, b""), 2),
                *_indent(self.value(values, item, ns), 2),
                f"    out += {_END!r}",
                f"else: out += {lead + _END!r}"]


# -- writers ----------------------------------------------------------------------------


def _kind(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
    return str(schema)


def _describe(error: ValidationError) -> str:
    # Fields and types only: the values may be personal data.
    found: dict[str, list[str]] = {}
    for e in error.errors:
        where = f"{e.field or 'datum'}: {type(e.datum).__name__} value"
        found.setdefault(where, []).append(_kind(e.schema))
    return "; ".join(f"{where} does not fit Avro {' | '.join(kinds)}"
                     for where, kinds in found.items())


def fastavro_writer(schema: Mapping[str, Any], prefix: bytes = b"") -> Write:
    """fastavro's ``schemaless_writer``, refusing what fastavro's validation refuses.

    What the compiled code hands odd values to, and the writer of a schema the
    compiler does not cover. Several times slower than a compiled writer.
    """
    parsed = parse_schema(copy.deepcopy(dict(schema)), named_schemas={})

    def write(datum: Mapping[str, Any]) -> bytes:
        buffer = BytesIO()
        buffer.write(prefix)
        schemaless_writer(buffer, parsed, datum, strict_allow_default=True)
        try:
            validate(datum, parsed, raise_errors=True)
        except ValidationError as exc:
            raise ValueError(_describe(exc)) from None
        return buffer.getvalue()

    return write


def compile_writer(schema: Mapping[str, Any], prefix: bytes = b"",
                   fallback: Write | None = None) -> Write | None:
    """The compiled writer of ``schema`` (its Avro JSON), or None if it is not covered.

    Covered: records (nested, or named again by reference), enums, fixed, arrays,
    maps, unions of null and one other type, every primitive type, and the logical
    types ``uuid`` and ``timestamp-millis``. Other unions and logical types are
    left to fastavro (``writer`` does that). A datum the generated code does not
    take goes to ``fallback``, by default ``fastavro_writer(schema, prefix)``.
    """
    raw = copy.deepcopy(dict(schema))
    compiler = _Compiler()
    try:
        lines = compiler.value(raw, "datum", None)
    except (_Unsupported, KeyError, TypeError):  # or malformed: fastavro_writer says how
        return None
    name = str(raw.get("name", raw.get("type")))
    compiler.constant(bytes(prefix), "_prefix")
    compiler.constant(fallback or fastavro_writer(raw, prefix), "_fallback")
    main = _function("write(datum)", f"Write one {name} after the prefix.", [
        "out = bytearray(_prefix)",
        "try:",
        *_indent(lines),
        "except Exception:",  # a value the code does not take: fastavro writes or refuses it
        "    return _fallback(datum)",
        "return bytes(out)",
    ])
    source = "\n".join([*compiler.functions, main])
    filename = f"<avro writer {name} {next(_SERIALS)}>"
    # Tracebacks, pdb and inspect.getsource show the generated lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), compiler.namespace)  # noqa: S102 - generated here
    return cast(Write, compiler.namespace["write"])


def writer(schema: Mapping[str, Any], prefix: bytes = b"") -> Write:
    """The fastest writer of ``schema``: compiled if the compiler covers it, else fastavro's."""
    return compile_writer(schema, prefix) or fastavro_writer(schema, prefix)
