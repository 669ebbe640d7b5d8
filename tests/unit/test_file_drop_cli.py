"""`passport-hub ingest` hands its arguments to the file drop."""

from __future__ import annotations

import pytest

from hub import cli
from hub.components import COMPONENTS


def test_ingest_is_delegated(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ingest", "--help"]) == 0
    assert "usage: passport-hub ingest" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ingest"]) == 2
    assert "give FILE… or --watch DIR" in capsys.readouterr().err
    assert cli.main(["ingest", "x.csv", "--type", "commande"]) == 2
    assert "--type 'commande'" in capsys.readouterr().err


def test_the_top_level_help_lists_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "ingest" in capsys.readouterr().out


def test_the_watcher_is_a_component() -> None:
    assert COMPONENTS["file_drop"] == "connectors.file_drop"
