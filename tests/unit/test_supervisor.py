"""The supervisor restarts a child that dies and stops every child on request."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hub.supervisor import Supervisor


def test_a_dead_child_is_restarted_and_stop_ends_all(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    dies = f"open({str(marker)!r}, 'a').write('x'); raise SystemExit(3)"
    supervisor = Supervisor({}, log_dir=tmp_path)
    supervisor.add_command("flaky", [sys.executable, "-c", dies])
    steady = supervisor.add_command("steady", [sys.executable, "-c", "import time; time.sleep(60)"])
    deadline = time.monotonic() + 20
    while supervisor.restarts < 2 and time.monotonic() < deadline:
        supervisor.watch()
        time.sleep(0.05)
    assert supervisor.children["flaky"].restarts >= 2
    assert len(marker.read_text()) >= 2
    assert supervisor.children["steady"].restarts == 0
    supervisor.stop(grace_s=5)
    assert steady.process is not None
    assert steady.process.poll() is not None
