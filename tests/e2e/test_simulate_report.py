"""The simulator's report as a reader sees it: run the command, open the page in Chromium.

Starts what it needs: Chromium is installed by deploy/tools/ensure-chromium.sh when
missing. The screenshot is kept as an artefact (``PASSPORT_HUB_ARTIFACTS_DIR``, by
default .passport-hub/artifacts/) and its path printed.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
ENSURE = ROOT / "deploy" / "tools" / "ensure-chromium.sh"
WINDOW = (1280, 1700)
#: Appended to a copy of the report (the report itself has no script): writes every
#: chart's rendered size into the DOM that --dump-dom prints.
PROBE = """<script>
document.body.setAttribute('data-sizes', Array.from(document.querySelectorAll('svg.chart'))
  .map(s => { const r = s.getBoundingClientRect(); return s.id + ':' + Math.round(r.width)
  + 'x' + Math.round(r.height) + ':' + s.querySelectorAll('circle,rect,polyline').length; })
  .join(' '));
</script>"""


def chromium() -> str:
    """The browser's path, installed first if missing."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    done = subprocess.run(["bash", str(ENSURE)], capture_output=True, text=True, check=True,
                          timeout=280)
    return done.stdout.strip().splitlines()[-1]


def browse(browser: str, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-dev-shm-usage",
             f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True,
                          check=True, timeout=120)


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
    where = Path(os.environ.get("PASSPORT_HUB_ARTIFACTS_DIR", ROOT / ".passport-hub"
                                / "artifacts"))
    where.mkdir(parents=True, exist_ok=True)
    return where


def test_the_report_renders_its_charts_in_a_browser(tmp_path: Path) -> None:
    report = tmp_path / "routing-simulation.html"
    run = subprocess.run(
        [sys.executable, "-m", "services.routing.simulate", "--synthetic",
         "--businesses", "4500", "--policy", "production",
         "--policy", "narrow:fallback=departement,capacity_scale=0.5",
         "--report", str(report)],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Routing simulation" in run.stdout
    assert "elapsed:" in run.stdout
    page = report.read_text(encoding="utf-8")
    assert "<script" not in page  # self-contained, no script at all

    browser = chromium()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    dom = browse(browser, "--dump-dom", probed.as_uri()).stdout
    sizes = re.search(r'data-sizes="([^"]*)"', dom)
    assert sizes is not None, dom[:500]
    charts = dict((name, (int(w), int(h), int(n))) for name, w, h, n in
                  re.findall(r"(\S+):(\d+)x(\d+):(\d+)", sizes.group(1)))
    assert set(charts) == {f"{kind}_chart-{i}" for kind in ("share", "weekly", "hops")
                           for i in (0, 1)}
    for name, (width, height, marks) in charts.items():
        assert width > 100, name
        assert height > 100, name
        assert marks > 0, name  # dots, bars or lines drawn

    shot = artefacts() / "routing-simulation-report.png"
    shot.unlink(missing_ok=True)
    browse(browser, f"--screenshot={shot}", report.as_uri())
    width, height, colours = pixels(shot.read_bytes())
    print(f"\nscreenshot kept at {shot} ({width}x{height}, {len(colours)} colours sampled)")
    assert (width, height) == WINDOW
    assert len(colours) > 50  # text, axes, blue dots, purple bars, coloured lines
