"""A small process supervisor: one child per component, restarted when it dies.

A crash in one component never takes the others down; SIGTERM to the
supervisor stops every child (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hub import logs
from hub.components import COMPONENTS

_MAX_BACKOFF_S = 30.0


@dataclass
class Child:
    """One supervised component process."""

    name: str
    argv: list[str]
    log_path: Path | None
    env: Mapping[str, str] = field(default_factory=dict)
    """What this child's environment adds to the supervisor's (its own port, say): kept,
    so a restarted child gets the same."""
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def spawn(self, env: Mapping[str, str]) -> None:
        if self.log_path is not None and self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the child
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            self.argv, env={**env, **self.env}, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=self._log,
            start_new_session=True,  # a terminal's Ctrl-C reaches the supervisor only
        )

    def close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def module_argv(name: str, extra: Sequence[str] = ()) -> list[str]:
    """Command line that runs a component with this interpreter."""
    return [sys.executable, "-m", COMPONENTS[name], *extra]


class Supervisor:
    """Starts children, restarts the ones that die (with backoff), stops them all."""

    def __init__(self, env: Mapping[str, str], *, log_dir: Path | None = None,
                 child_env: Callable[[str], Mapping[str, str]] | None = None) -> None:
        """``child_env``: what a child's environment adds, asked once per child by name
        (hub.stack gives each component its own probes port)."""
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self._child_env = child_env
        self.children: dict[str, Child] = {}
        self.log = logs.get().bind(supervisor=True)

    def add(self, name: str, extra: Sequence[str] = (), *, restart: bool = True) -> Child:
        """Start a component; ``restart=False`` for finite jobs that are expected to exit."""
        return self.add_command(name, module_argv(name, extra), restart=restart)

    def add_command(self, name: str, argv: Sequence[str], *, restart: bool = True) -> Child:
        """Start any command as a supervised child."""
        log_path = self.log_dir / f"{name}.log" if self.log_dir else None
        own = self._child_env(name) if self._child_env is not None else {}
        child = Child(name, list(argv), log_path, env=dict(own))
        child.spawn(self.env)
        if restart:
            self.children[name] = child
        assert child.process is not None
        self.log.info("child.started", child=name, pid=child.process.pid)
        return child

    def watch(self) -> None:
        """Restart every child that has died; call it regularly."""
        now = time.monotonic()
        for child in self.children.values():
            if child.process is None or child.process.poll() is None or now < child.next_start:
                continue
            code = child.process.returncode
            child.restarts += 1
            backoff = min(_MAX_BACKOFF_S, 0.5 * 2 ** min(child.restarts, 6))
            self.log.warning("child.died", child=child.name, code=code, restarts=child.restarts)
            child.spawn(self.env)
            child.next_start = now + backoff

    @property
    def restarts(self) -> int:
        return sum(child.restarts for child in self.children.values())

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child, wait up to ``grace_s``, then SIGKILL what is left."""
        running = [c for c in self.children.values() if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            child.process.terminate()
        deadline = time.monotonic() + grace_s
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log.warning("child.killed", child=child.name)
                child.process.kill()
                child.process.wait()
        for child in self.children.values():
            child.close_log()
        self.log.info("children.stopped", count=len(running))
