"""The read model the scope checks ask (who holds a lead, where a business is enrolled),
started at the first row that needs it.

Most files need none (a trainer's, an operator's): the file drop then never reads the
state topics. A delegation's or a reseller's file does, as the API does for the same
rows (connectors/api/__main__.py builds one per API process): the read model is rebuilt
from its topics and waited for, up to ``catch_up_s``, before it answers, since a lead or
a business it has not read yet is not one it may call unknown. Past that wait the row is
``ScopeUnavailable``: the file waits in its inbox.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.file_drop.scopes import ScopeUnavailable
from hub import logs
from hub.config import Settings
from services.readmodel import ReadModel
from services.readmodel import store as readmodel_store
from services.readmodel.letters import ledger_path

#: How long a row waits for the read model to catch up before its file is left for later.
CATCH_UP_S = 60.0


class OnDemandReadModel:
    """A ``ReadModel`` (a ``scopes.Lookups``) started by its first query, stopped by ``stop``.

    ``beat`` is called while it catches up, so that a watcher's probes see it alive.
    ``scratch``: delete its files at ``stop`` (a one-shot ``ingest``, whose file is its
    own, named after its process, so that it never rebuilds the watcher's). ``stop``
    ends the wait for the catch-up early (SIGTERM).
    """

    def __init__(self, settings: Settings, path: Path, *, catch_up_s: float = CATCH_UP_S,
                 beat: Callable[[], None] = lambda: None, scratch: bool = False,
                 stop: threading.Event | None = None) -> None:
        self.settings = settings
        self.path = path
        self.catch_up_s = catch_up_s
        self.beat = beat
        self.scratch = scratch
        self._stop = stop or threading.Event()
        self._model: ReadModel | None = None
        self.log = logs.get().bind(component="file_drop")

    @property
    def started(self) -> bool:
        return self._model is not None

    @property
    def caught_up(self) -> bool:
        return self._model is not None and self._model.caught_up

    def passport(self, siren: str) -> dict[str, Any] | None:
        return self._ready().passport(siren)

    def lead_holder(self, lead_id: str) -> tuple[bool, str | None]:
        return self._ready().lead_holder(lead_id)

    def _ready(self) -> ReadModel:
        model = self._model
        if model is None:
            model = ReadModel(self.settings, self.path)
            model.start()  # BrokerUnavailable: the file stays, as for an unacknowledged chunk
            self._model = model
            self.log.info("file_drop.readmodel_started", path=str(self.path))
        waited = 0.0
        while not model.caught_up and waited < self.catch_up_s and not self._stop.is_set():
            self.beat()
            model.wait_caught_up(min(1.0, self.catch_up_s - waited))
            waited += 1.0
        if not model.caught_up:
            raise ScopeUnavailable(f"the read model did not catch up in {self.catch_up_s:.0f} s")
        return model

    def stop(self) -> None:
        """Stop the read model if it was started (and delete a scratch one's files)."""
        model, self._model = self._model, None
        if model is not None:
            model.stop()
        if self.scratch:
            readmodel_store.remove(self.path)
            readmodel_store.remove(ledger_path(self.path))
