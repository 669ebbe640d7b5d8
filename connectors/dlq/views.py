"""How dead letters read on a terminal: one line each in a list, everything in ``show``."""

from __future__ import annotations

import json
from datetime import datetime

from connectors.dlq.ledger import Redriven
from connectors.dlq.letters import DeadLetter
from schemas.codec import Codec
from schemas.errors import ContractError

#: Characters of the error message a list line keeps.
MESSAGE_WIDTH = 80
#: Bytes of an undecodable value that ``show`` dumps.
DUMP_BYTES = 256


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _truncate(text: str, width: int) -> str:
    text = " ".join(text.split())  # messages may span lines; a list line may not
    return text if len(text) <= width else text[:width - 1] + "…"


def list_line(letter: DeadLetter, redriven: Redriven | None = None) -> str:
    """``offset  time  source  stage  error class  message`` (and whether it was redriven)."""
    line = (f"{letter.ref:>9}  {_stamp(letter.time)}  {letter.source}  {letter.stage or '?'}  "
            f"{letter.error_class or '?'}  {_truncate(letter.error_message, MESSAGE_WIDTH)}")
    return line + ("  [redriven]" if redriven is not None else "")


def hexdump(data: bytes, limit: int = DUMP_BYTES) -> str:
    """``offset  hex bytes  |ascii|``, 16 bytes a line, the first ``limit`` bytes."""
    lines = []
    for start in range(0, min(len(data), limit), 16):
        chunk = data[start:start + 16]
        text = "".join(chr(byte) if 32 <= byte < 127 else "." for byte in chunk)
        lines.append(f"{start:08x}  {chunk.hex(' '):<47}  |{text}|")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more bytes")
    return "\n".join(lines)


def _key(key: bytes | None) -> str:
    if key is None:
        return "(none)"
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return key.hex(" ")
    return repr(text) if text.isprintable() else key.hex(" ")


def show(letter: DeadLetter, codec: Codec, redriven: Redriven | None = None) -> str:
    """Everything about one dead letter: headers, key, and its value decoded or dumped."""
    out = [f"dead letter {letter.ref} of {letter.topic}, written {_stamp(letter.time)}",
           "headers:"]
    out += [f"  {name}: " + (raw or b"").decode("utf-8", errors="replace").replace("\n", "\n    ")
            for name, raw in letter.headers]
    out.append(f"key: {_key(letter.key)}")
    value = letter.value or b""
    try:
        decoded = codec.decode(letter.value)
    except ContractError as exc:
        out.append(f"value: {len(value)} bytes that do not decode ({type(exc).__name__}: {exc})")
        if value:
            out.append(hexdump(value))
    else:
        out.append(f"value: {decoded.record} v{decoded.version}")
        out.append(json.dumps(decoded.datum, indent=2, ensure_ascii=False, default=str))
    if redriven is not None:
        out.append(f"redriven at {redriven.at} to {redriven.topic} (event {redriven.event_id})")
    return "\n".join(out)
