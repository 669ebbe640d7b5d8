"""``python -m connectors.file_drop``: the file drop (see ``connectors.file_drop.cli``)."""

import sys

from connectors.file_drop.cli import main

# The command lives in cli.py, importable without running it (tests, runpy from hub.cli).
if __name__ == "__main__":
    sys.exit(main())
