"""API keys: the keys file, the key ring, the scopes, and the CLI that mints keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from connectors.api import keys
from connectors.api.auth import DEV_KEY_ID, Caller, KeyRing
from hub.errors import ConfigError
from schemas.models import EXAMPLES


def test_neither_a_keys_file_nor_a_dev_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="PASSPORT_HUB_API_KEYS_FILE"):
        KeyRing(None, None)
    with pytest.raises(ConfigError):
        KeyRing(None, "")


def test_a_token_finds_its_key_and_nothing_else_does(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    token, key = keys.mint("cefac-78", "delegation")
    keys.save(path, [key])
    ring = KeyRing(path)
    caller = ring.caller(token)
    assert caller is not None
    assert (caller.key_id, caller.partner) == (key.key_id, "cefac-78")
    assert caller.may_send("business_enrolled")
    assert not caller.may_send("module_completed")
    assert caller.reads_passports
    assert not caller.admin
    for wrong in ("", token[:-1], token + "x", key.sha256, "dev-local-key"):
        assert ring.caller(wrong) is None
    assert not ring.dev_key_enabled


def test_the_dev_key_is_an_admin(tmp_path: Path) -> None:
    ring = KeyRing(None, "dev-local-key")
    caller = ring.caller("dev-local-key")
    assert caller is not None
    assert caller.key_id == DEV_KEY_ID
    assert caller.admin
    assert caller.reads_passports
    assert caller.may_send("anything")
    assert caller.speaks_for("any-reseller")
    assert ring.caller("dev-local-ke") is None
    assert ring.dev_key_enabled


def test_a_reseller_key_speaks_for_its_reseller_only() -> None:
    _token, key = keys.mint("yvelines-web", "reseller", "yvelines-web")
    caller = Caller(key.key_id, key.partner, frozenset(key.scopes), key.reseller_id)
    assert caller.may_send("lead_answered")
    assert caller.may_send("reseller_profile")
    assert not caller.may_send("business_enrolled")
    assert caller.speaks_for("yvelines-web")
    assert not caller.speaks_for("paris-web")
    assert not caller.reads_passports


def test_the_roles_cover_every_partner_event_type() -> None:
    granted = {scope for scopes in keys.ROLES.values() for scope in scopes}
    assert set(EXAMPLES) <= granted, "an event type no role may send"
    assert granted - set(EXAMPLES) == {keys.ADMIN, keys.PASSPORTS_READ}


@pytest.mark.parametrize(("content", "message"), [
    ("not json", "invalid API keys file"),
    ('[{"key_id": "a", "partner": "p", "sha256": "00", "scopes": ["*"]}]', "sha256"),
    ('[{"key_id": "a", "partner": "p", "sha256": "' + "0" * 64 + '", "scopes": []}]', "scopes"),
    ('[{"key_id": "a", "partner": "p", "sha256": "' + "0" * 64
     + '", "scopes": ["lead_answered"]}]', "reseller_id"),
])
def test_a_broken_keys_file_stops_the_start_with_a_clear_error(
        tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        KeyRing(path)


def test_a_missing_keys_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        KeyRing(tmp_path / "absent.json")


def test_a_key_id_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    _t, key = keys.mint("cefac-78", "delegation")
    keys.save(path, [key, key])
    with pytest.raises(ConfigError, match="twice"):
        KeyRing(path)


def test_the_cli_prints_the_token_once_and_stores_only_its_hash(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "conf" / "keys.json"
    assert keys.main(["add", "--partner", "cefac-78", "--role", "delegation",
                      "--file", str(path)]) == 0
    out = capsys.readouterr().out
    token = out.strip()
    assert len(token) >= 43
    assert "\n" not in token
    stored = path.read_text()
    assert token not in stored
    assert keys.token_hash(token) in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert KeyRing(path).caller(token) is not None

    assert keys.main(["add", "--partner", "yvelines-web", "--role", "reseller",
                      "--reseller-id", "yvelines-web", "--file", str(path)]) == 0
    capsys.readouterr()
    assert keys.main(["add", "--partner", "x", "--role", "reseller", "--file", str(path)]) == 2
    assert "--reseller-id" in capsys.readouterr().err
    entries = json.loads(path.read_text())
    assert [(e["partner"], e["reseller_id"]) for e in entries] == [
        ("cefac-78", None), ("yvelines-web", "yvelines-web")]

    assert keys.main(["list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "cefac-78" in listed
    assert "reseller=yvelines-web" in listed
    assert keys.token_hash(token) not in listed

    assert keys.main(["revoke", "--key-id", entries[0]["key_id"], "--file", str(path)]) == 0
    assert KeyRing(path).caller(token) is None
    assert keys.main(["revoke", "--key-id", "nope", "--file", str(path)]) == 1
