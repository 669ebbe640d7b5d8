"""Entry point: ``python -m services.passport`` runs the passport service until SIGTERM."""

from __future__ import annotations

from hub.config import Settings
from hub.service import Wiring, run_processor
from services.passport.processor import PassportProcessor
from services.passport.restore import PassportRestorer


def build(settings: Settings) -> Wiring:
    """The passport service's wiring: the processor, its restore from the passport topic,
    and its three inputs (keyed alike by SIREN) read in step, so that less is parked."""
    processor = PassportProcessor(
        parked_ttl_ms=int(settings.parked_ttl_hours * 3_600_000),
        snapshot_window_ms=int(settings.passport_snapshot_window_s * 1000))
    # Events work in epoch milliseconds (events.millis): no datetimes to build and undo.
    return Wiring(processor, restorer=PassportRestorer(settings), align_inputs=True,
                  millis_timestamps=True)


def main() -> None:
    run_processor(build)


if __name__ == "__main__":
    main()
