"""Dead letters on a real broker: list, show, and a redrive that sends only what is valid, once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest

from connectors.dlq.cli import arguments, run
from hub import kafka
from hub.config import Settings
from hub.deadletter import Cause
from schemas import catalog
from schemas.codec import Codec
from schemas.errors import MalformedRecordError
from schemas.models import BusinessEnrolled
from tests.integration.test_file_drop import cli_env, read_topic

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

VALID = BusinessEnrolled(occurred_at=datetime(2009, 3, 5, 10, 0, tzinfo=UTC), source="cefac-78",
                         siren="732829320", name="Boulangerie Martin", departement="78")


def _dead_letters(settings: Settings) -> None:
    """Garbage, a decodable record that is still invalid, and a valid one: partitions 0, 1, 2."""
    codec = Codec.default()
    invalid = VALID.to_avro() | {"siren": "123456789"}  # fails the Luhn check
    source = settings.topic(catalog.ENROLMENTS)
    letters = [
        (b"\x00garbage", Cause("passport", "decode", MalformedRecordError("bad marker"),
                               source, 0, 10)),
        (codec.encode("BusinessEnrolled", invalid),
         Cause("passport", "validate", ValueError("SIREN 123456789 fails its Luhn check"),
               source, 1, 11)),
        (codec.encode("BusinessEnrolled", VALID.to_avro()),
         Cause("passport", "apply", RuntimeError("passport store was read-only"), source, 2, 12)),
    ]
    producer = kafka.producer(settings)
    try:
        futures = [producer.send(settings.topic(catalog.DLQ), key=b"732829320", value=value,
                                 headers=cause.headers(), partition=partition)
                   for partition, (value, cause) in enumerate(letters)]
        for future in futures:
            future.get(timeout=10)
    finally:
        producer.close(timeout=5)


def _run(settings: Settings, capsys: pytest.CaptureFixture[str],
         *argv: str) -> tuple[int, list[str], str]:
    code = run(arguments(argv), settings)
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_list_show_and_redrive_once(topics: Settings,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    _dead_letters(topics)

    code, lines, _ = _run(topics, capsys, "list")
    assert code == 0
    assert [line.split()[0] for line in lines] == ["0:0", "1:0", "2:0"]
    source = topics.topic(catalog.ENROLMENTS)
    assert lines[0].split()[2:6] == [f"{source}[0]@10", "decode", "MalformedRecordError",
                                     "bad"]
    assert "validate  ValueError  SIREN 123456789 fails its Luhn check" in lines[1]
    code, lines, _ = _run(topics, capsys, "list", "--stage", "apply")
    assert [line.split()[0] for line in lines] == ["2:0"]
    code, lines, _ = _run(topics, capsys, "list", "--since", "2999-01-01")
    assert lines == []

    code, lines, _ = _run(topics, capsys, "show", "0:0")
    assert code == 0
    assert "  dlq.stage: decode" in lines
    assert any(line.startswith("00000000  00 67 61 72 62 61 67 65") for line in lines)
    code, lines, _ = _run(topics, capsys, "show", "2:0")
    version = Codec.default().registry.current_version("BusinessEnrolled")
    assert f"value: BusinessEnrolled v{version}" in lines

    code, lines, err = _run(topics, capsys, "redrive", "--all")
    assert code == 0
    assert [line.split()[1:3] for line in lines] == [["left", "alone"], ["left", "alone"],
                                                    ["redriven", "BusinessEnrolled"]]
    assert "1 redriven, 2 left alone" in err
    (back,) = read_topic(topics, catalog.ENROLMENTS)
    assert back.datum["event_id"] == str(VALID.event_id)
    assert back.key == b"732829320"

    code, lines, err = _run(topics, capsys, "redrive", "--all")
    assert code == 0
    assert "already redriven" in lines[2]
    assert "1 already redriven, 2 left alone" in err
    assert len(read_topic(topics, catalog.ENROLMENTS)) == 1
    code, lines, _ = _run(topics, capsys, "list")
    assert lines[2].endswith("[redriven]")

    code, _, err = _run(topics, capsys, "show", "7:0")
    assert code == 2
    assert "no dead letter at 7:0" in err


def test_the_dlq_command_through_passport_hub(topics: Settings) -> None:
    _dead_letters(topics)
    done = subprocess.run([sys.executable, "-m", "hub.cli", "dlq", "redrive", "1:0", "2:0",
                           "--dry-run"], env=cli_env(topics), capture_output=True, text=True,
                          timeout=45, check=False)
    assert done.returncode == 0, done.stderr
    assert "still invalid: siren: SIREN 123456789 fails its Luhn check" in done.stdout
    assert "would redrive" in done.stdout
    assert read_topic(topics, catalog.ENROLMENTS) == []
