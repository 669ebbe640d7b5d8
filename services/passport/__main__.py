"""Entry point: ``python -m services.passport`` runs the passport service until SIGTERM."""

from __future__ import annotations

from hub.config import Settings
from hub.service import Wiring, run_processor
from services.passport.processor import PassportProcessor


def build(settings: Settings) -> Wiring:
    """The passport service's wiring (it needs nothing but its store, which the loop owns)."""
    del settings  # nothing to configure yet; the signature is run_processor's
    return Wiring(PassportProcessor())


def main() -> None:
    run_processor(build)


if __name__ == "__main__":
    main()
