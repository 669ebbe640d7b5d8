"""Dead letters without a broker: re-validation, the redrive ledger, finding and showing them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.dlq.ledger import Ledger
from connectors.dlq.letters import DeadLetter, UnknownLetter, find
from connectors.dlq.redrive import NotRedrivable, redrive, revalidate
from connectors.dlq.views import hexdump, list_line, show
from hub import cli
from hub.config import Settings
from hub.deadletter import Cause
from schemas import catalog
from schemas.codec import Codec
from schemas.models import BusinessEnrolled, EventModel
from tests.integration.test_readmodel import passport_datum

PREFIX = "t1."
SETTINGS = Settings(kafka_bootstrap_servers="127.0.0.1:1", topic_prefix=PREFIX)
CODEC = Codec.default()
T0 = datetime(2009, 3, 5, 10, 0, tzinfo=UTC)
ENROLMENT = BusinessEnrolled(occurred_at=T0, source="cefac-78", siren="732829320",
                             name="Boulangerie Martin", departement="78")


def _letter(value: bytes | None, *, offset: int = 0, partition: int = 0,
            topic: str = PREFIX + catalog.ENROLMENTS, stage: str = "validate",
            error: BaseException | None = None) -> DeadLetter:
    cause = Cause("passport", "validate", error or ValueError("bad"), topic, 2, 17)
    headers = [(name, raw) if name != "dlq.stage" else (name, stage.encode())
               for name, raw in cause.headers()]
    return DeadLetter(PREFIX + catalog.DLQ, partition, offset, int(T0.timestamp() * 1000),
                      b"732829320", value, tuple(headers))


def _encoded(event: EventModel) -> bytes:
    return CODEC.encode(event.RECORD, event.to_avro())


def _invalid() -> bytes:
    datum = ENROLMENT.to_avro()
    datum["siren"] = "123456789"  # decodes; fails the Luhn check
    return CODEC.encode("BusinessEnrolled", datum)


class MemorySink:
    def __init__(self) -> None:
        self.events: list[EventModel] = []

    def publish(self, event: EventModel) -> None:
        self.events.append(event)

    def publish_many(self, events: Iterable[EventModel]) -> int:
        chunk = list(events)
        self.events.extend(chunk)
        return len(chunk)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        pass


def test_a_valid_record_revalidates_to_its_event() -> None:
    assert revalidate(_letter(_encoded(ENROLMENT)), SETTINGS, CODEC) == ENROLMENT


@pytest.mark.parametrize(("letter", "why"), [
    (_letter(b"garbage"), "does not decode: MalformedRecordError"),
    (_letter(None), "no value"),
    (_letter(_invalid()), "still invalid: siren: SIREN 123456789 fails its Luhn check"),
    (_letter(_encoded(ENROLMENT), topic=PREFIX + catalog.TRAINING),
     "a BusinessEnrolled belongs on pn.enrolments.v1, not pn.training.v1"),
    (_letter(_encoded(ENROLMENT), topic=PREFIX + "pn.somewhere.v1"), "not a catalog topic"),
    (_letter(_encoded(ENROLMENT), topic=catalog.ENROLMENTS), "not a catalog topic"),  # no prefix
    (_letter(_encoded(ENROLMENT), topic=PREFIX + catalog.DLQ), "not a catalog topic"),
    (_letter(_encoded(ENROLMENT), topic=""), "no dlq.source.topic header"),
])
def test_what_cannot_go_back_says_why(letter: DeadLetter, why: str) -> None:
    with pytest.raises(NotRedrivable, match=why.replace(".", r"\.")):
        revalidate(letter, SETTINGS, CODEC)


def test_hub_outputs_are_not_partner_events() -> None:
    snapshot = CODEC.encode("PassportSnapshot", passport_datum())
    with pytest.raises(NotRedrivable, match="PassportSnapshot is not a partner event"):
        revalidate(_letter(snapshot, topic=PREFIX + catalog.PASSPORTS), SETTINGS, CODEC)


def test_redrive_sends_the_valid_once_and_records_it(tmp_path: Path) -> None:
    letters = [_letter(b"garbage", offset=0), _letter(_invalid(), offset=1),
               _letter(_encoded(ENROLMENT), offset=2)]
    sink = MemorySink()
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        dry = redrive(letters, sink=sink, ledger=ledger, settings=SETTINGS, dry_run=True)
        assert [r.status for r in dry] == ["left alone", "left alone", "would redrive"]
        assert sink.events == []
        first = redrive(letters, sink=sink, ledger=ledger, settings=SETTINGS,
                        clock=lambda: T0)
        assert [r.status for r in first] == ["left alone", "left alone", "redriven"]
        assert sink.events == [ENROLMENT]
        assert first[2].detail == f"BusinessEnrolled {ENROLMENT.event_id} to t1.pn.enrolments.v1"
        second = redrive(letters, sink=sink, ledger=ledger, settings=SETTINGS)
        assert [r.status for r in second] == ["left alone", "left alone", "already redriven"]
        assert sink.events == [ENROLMENT]
        assert "2009-03-05T10:00:00+00:00" in second[2].detail
    # The ledger is on disk: a new process knows it too.
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        entry = ledger.get(letters[2])
        assert entry is not None
        assert entry.event_id == str(ENROLMENT.event_id)
        assert ledger.get(letters[1]) is None


def test_find_by_partition_and_offset() -> None:
    letters = [_letter(b"", partition=0, offset=4), _letter(b"", partition=1, offset=4),
               _letter(b"", partition=1, offset=5)]
    assert find(letters, "1:4") is letters[1]
    assert find(letters, "5") is letters[2]
    with pytest.raises(UnknownLetter, match="partitions 0, 1"):
        find(letters, "4")
    with pytest.raises(UnknownLetter, match="no dead letter at 2:4"):
        find(letters, "2:4")
    with pytest.raises(UnknownLetter, match="PARTITION:OFFSET"):
        find(letters, "x")


def test_list_line_is_one_line_with_the_cause() -> None:
    letter = _letter(b"garbage", error=ValueError("first line\nsecond line " + "x" * 200))
    line = list_line(letter)
    assert "\n" not in line
    assert line.startswith("      0:0  2009-03-05T10:00:00.000Z  t1.pn.enrolments.v1[2]@17  "
                           "validate  ValueError  first line second line xx")
    assert line.endswith("…")


def test_show_decodes_or_dumps() -> None:
    text = show(_letter(_encoded(ENROLMENT)), CODEC)
    assert "value: BusinessEnrolled v" in text
    assert '"siren": "732829320"' in text
    assert "dlq.error.class: ValueError" in text
    assert "key: '732829320'" in text
    dumped = show(_letter(b"\xc3\x01garbage!"), CODEC)
    assert "do not decode" in dumped
    assert "00000000  c3 01 67 61 72 62 61 67 65 21" in dumped


def test_hexdump_stops_at_its_limit() -> None:
    dump = hexdump(bytes(range(40)), limit=32)
    assert dump.splitlines()[1].startswith("00000010  10 11 12")
    assert dump.splitlines()[-1] == "… 8 more bytes"


def test_passport_hub_dlq_is_delegated(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dlq", "list", "--help"]) == 0
    assert "usage: passport-hub dlq list" in capsys.readouterr().out
    assert cli.main(["dlq", "redrive"]) == 2
    assert "OFFSET… or --all" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "dlq" in capsys.readouterr().out
