"""Headless Chromium for the tests that look at a page as a reader does.

Chromium is installed by deploy/tools/ensure-chromium.sh when missing (Debian's
``chromium``: no download from elsewhere). Screenshots are kept as artefacts in
``PASSPORT_HUB_ARTIFACTS_DIR`` (by default .passport-hub/artifacts/), and
``pixels`` reads one back with zlib alone, to tell a drawn page from a blank one.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENSURE = ROOT / "deploy" / "tools" / "ensure-chromium.sh"
WINDOW = (1280, 1700)
#: What Chromium's ``--enable-logging=stderr`` writes for each message of a page's console
#: (every level: errors, uncaught exceptions and refused loads alike).
CONSOLE = re.compile(r":CONSOLE(?:\(\d+\))?(?::\d+)?\] (.*)")


def chromium() -> str:
    """The browser's path, installed first if missing."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, check=True,
                          timeout=280)
    return done.stdout.strip().splitlines()[-1]


def browse(browser: str, *args: str, window: tuple[int, int] = WINDOW,
           timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once (``--dump-dom URL``, ``--screenshot=PATH URL``, ...)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-dev-shm-usage",
             f"--window-size={window[0]},{window[1]}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True,
                          check=True, timeout=timeout_s)


def console(stderr: str) -> list[str]:
    """The page's console messages in the stderr of a run with ``--enable-logging=stderr``."""
    return [match.group(1) for match in CONSOLE.finditer(stderr)]


def pixels(png: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the distinct colours of an 8-bit RGB(A) PNG (zlib only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = data
        elif kind == b"IDAT":
            chunks.append(data)
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8, depth
    assert colour in (2, 6), colour
    size = 3 if colour == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * size
    previous = bytearray(stride)
    colours: set[bytes] = set()
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):  # the five PNG filters
            left = line[i - size] if i >= size else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                corner = previous[i - size] if i >= size else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
        if row % 4 == 0:  # a sample of rows is plenty to tell a chart from a blank page
            colours.update(bytes(line[i:i + 3]) for i in range(0, stride, size * 2))
        previous = line
    return width, height, colours


def artefacts() -> Path:
    """Where tests keep what a person may want to look at afterwards (created)."""
    where = Path(os.environ.get("PASSPORT_HUB_ARTIFACTS_DIR", ROOT / ".passport-hub"
                                / "artifacts"))
    where.mkdir(parents=True, exist_ok=True)
    return where
