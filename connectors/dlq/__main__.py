"""``python -m connectors.dlq``: the dead-letter commands (see ``connectors.dlq.cli``)."""

import sys

from connectors.dlq.cli import main

# The command lives in cli.py, importable without running it (tests, runpy from hub.cli).
if __name__ == "__main__":
    sys.exit(main())
