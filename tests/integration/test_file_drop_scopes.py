"""The file drop's scopes on a real broker and a real read model: each partner's inbox is
bound to its API key, and the watcher refuses, row by row, what that key could not send
over HTTP (another reseller's lead or profile, another département's business)."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.api import keys
from hub.config import Settings
from schemas import catalog
from tests.integration.test_file_drop import cli_env, read_topic
from tests.integration.test_readmodel import lead_datum, passport_datum, produce

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AT = "2009-03-05T10:00:00+01:00"


def _answer(lead_id: str, reseller_id: str) -> dict[str, Any]:
    return {"type": "lead_answered", "occurred_at": datetime.now(UTC).isoformat(),
            "source": "crm", "lead_id": lead_id, "reseller_id": reseller_id,
            "answer": "accepted"}


def _report(settled: Path) -> list[list[str]]:
    text = settled.with_name(settled.name + ".report.csv").read_text(encoding="utf-8-sig")
    return list(csv.reader(io.StringIO(text)))[1:]


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")  # as an upload lands: aside, then renamed
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


def _wait(paths: list[Path], log: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not all(path.exists() for path in paths):
        assert time.monotonic() < deadline, log.read_text()
        assert process.poll() is None, log.read_text()
        time.sleep(0.2)


@pytest.mark.timeout(150)
def test_the_watcher_binds_each_partners_inbox_to_its_key(topics: Settings,
                                                          tmp_path: Path) -> None:
    # The state the checks read: a lead held by each reseller, a business enrolled in 95.
    produce(topics, catalog.LEADS, "LeadAssigned", "lead_id",
            [lead_datum("lead-mine", "web-78"), lead_datum("lead-theirs", "paris-web")])
    produce(topics, catalog.PASSPORTS, "PassportSnapshot", "siren",
            [passport_datum("552100554", departement="95")])
    reseller = keys.mint("web-78", "reseller", "web-78")[1]
    delegation = keys.mint("cefac-78", "delegation", departements=["78"])[1]
    key_file = tmp_path / "keys.json"
    keys.save(key_file, [reseller, delegation])

    inbox = tmp_path / "data" / "inbox"
    inbox.mkdir(parents=True)
    log_path = tmp_path / "watch.log"
    env = cli_env(topics, dev_key=False) | {"PASSPORT_HUB_DATA_DIR": str(tmp_path / "data"),
                                            "PASSPORT_HUB_METRICS_PORT": "0",
                                            "PASSPORT_HUB_API_KEYS_FILE": str(key_file)}
    with log_path.open("w+", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "connectors.file_drop"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            answers = inbox / reseller.key_id / "reponses.jsonl"
            _write(answers, "".join(json.dumps(row) + "\n" for row in [
                _answer("lead-mine", "web-78"), _answer("lead-theirs", "web-78"),
                _answer("lead-theirs", "paris-web"), _answer("lead-nobody", "web-78")]))
            enrolments = inbox / delegation.key_id / "inscriptions.csv"
            _write(enrolments, "SIREN;Raison sociale;Département;Date\n"
                               "732829320;Entreprise Alpha;78;05/03/2009\n"
                               "356000000;La Poste;75;05/03/2009\n"
                               "552100554;Entreprise Bravo;78;05/03/2009\n")
            loose = inbox / "modules.csv"
            _write(loose, "SIREN;Module;Date\n732829320;website-create;05/03/2009\n")
            stranger = inbox / "nobody-00000000" / "modules.csv"
            _write(stranger, "SIREN;Module;Date\n552100554;website-create;05/03/2009\n")
            settled = [inbox / reseller.key_id / "done" / "reponses.jsonl",
                       inbox / delegation.key_id / "done" / "inscriptions.csv",
                       inbox / "rejected" / "modules.csv",
                       inbox / "nobody-00000000" / "rejected" / "modules.csv"]
            _wait(settled, log_path, process)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output

    # Only what each key may send reached a topic.
    answered = read_topic(topics, catalog.LEAD_RESPONSES)
    assert [(r.datum["lead_id"], r.datum["reseller_id"]) for r in answered] == [
        ("lead-mine", "web-78")]
    enrolled = read_topic(topics, catalog.ENROLMENTS)
    assert [r.datum["siren"] for r in enrolled] == ["732829320"]
    assert read_topic(topics, catalog.TRAINING) == []

    # And each refused row has its line in its partner's report, with the reason.
    assert [row[:2] for row in _report(settled[0])] == [["2", "scope"], ["3", "scope"],
                                                         ["4", "scope"]]
    reasons = [row[2] for row in _report(settled[0])]
    assert reasons[0] == "lead lead-theirs is not assigned to reseller web-78"
    assert reasons[1] == f"key {reseller.key_id} may not speak for reseller paris-web"
    assert reasons[2] == "no lead lead-nobody"
    assert [row[:2] for row in _report(settled[1])] == [["3", "scope"], ["4", "scope"]]
    assert "no partner's inbox" in _report(settled[2])[0][2]
    assert "unknown or revoked" in _report(settled[3])[0][2]
    assert '"file_drop.readmodel_started"' in output


def test_the_ingest_command_speaks_as_its_key_id(topics: Settings, tmp_path: Path) -> None:
    trainer = keys.mint("alpha", "trainer", trainer_org="Formateurs Alpha")[1]
    key_file = tmp_path / "keys.json"
    keys.save(key_file, [trainer])
    env = cli_env(topics, dev_key=False) | {"PASSPORT_HUB_API_KEYS_FILE": str(key_file)}
    path = tmp_path / "mixte.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [
        {"type": "module_completed", "siren": "732829320", "module_id": "website-create",
         "occurred_at": AT, "trainer_org": "Formateurs Alpha"},
        {"type": "module_completed", "siren": "732829320", "module_id": "website-create",
         "occurred_at": AT, "trainer_org": "Formateurs Bravo"},
        {"type": "business_enrolled", "siren": "552100554", "name": "Bravo",
         "departement": "95", "occurred_at": AT}]), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "hub.cli", "ingest", "--key-id",
                           trainer.key_id, str(path)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("mixte.jsonl: 3 rows, 1 produced, 2 rejected")
    report = _report(tmp_path / "done" / "mixte.jsonl")
    assert [row[:2] for row in report] == [["2", "scope"], ["3", "scope"]]
    assert "reports training for Formateurs Alpha only" in report[0][2]
    assert "may not send business_enrolled events" in report[1][2]
    (record,) = read_topic(topics, catalog.TRAINING)
    assert record.datum["trainer_org"] == "Formateurs Alpha"
    assert read_topic(topics, catalog.ENROLMENTS) == []
    # No read model was needed, so none was left behind.
    assert not list(topics.data_dir.glob("file-drop-readmodel-*"))
