"""API keys: the keys file, the key ring, the scopes, and the CLI that mints keys."""

from __future__ import annotations

import contextlib
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.api import keys
from connectors.api.auth import DEV_KEY_ID, Caller, KeyRing, caller_of, departement_of
from connectors.api.problems import ProblemError
from hub.errors import ConfigError
from schemas.models import EXAMPLES, EventModel, parse_event


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
                      "--departement", "78", "--file", str(path)]) == 0
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


# -- tenants: départements, organisations, resellers; expiry ---------------------------------

def _event(event_type: str, **fields: object) -> EventModel:
    example = {k: v for k, v in EXAMPLES[event_type].items() if k != "siret"}
    return parse_event({**example, **fields})


KNOWN = {"732829320": "78", "552100554": "95", "443061841": ""}  # "": awaiting its enrolment


def _known(siren: str) -> str | None:
    return KNOWN.get(siren)


def test_a_bound_delegation_covers_its_departements_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    assert keys.main(["add", "--partner", "cefac-idf", "--role", "delegation",
                      "--departement", "78", "--departement", "95", "--file", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    caller = KeyRing(path).caller(token)
    assert caller is not None
    assert caller.departements == frozenset({"78", "95"})
    assert (caller.covers("78"), caller.covers("95"), caller.covers("75")) == (True, True, False)
    # A business with no known département (awaiting its enrolment) is nobody's to a bound key.
    assert not caller.covers("")
    assert not caller.covers(None)
    assert "departements=78,95" in (keys.main(["list", "--file", str(path)]),
                                    capsys.readouterr().out)[1]


@pytest.mark.parametrize(("argv", "message"), [
    (["--role", "delegation"], "needs --departement"),
    (["--role", "trainer"], "needs --trainer-org"),
    (["--role", "reseller"], "needs --reseller-id"),
    (["--role", "delegation", "--departement", "78", "--reseller-id", "web-78"],
     "--reseller-id binds a reseller key"),
    (["--role", "reseller", "--reseller-id", "web-78", "--departement", "78"],
     "--departement binds a delegation key"),
    (["--role", "admin", "--trainer-org", "Google"], "--trainer-org binds a trainer key"),
    (["--role", "delegation", "--departement", "20"], "departements.0"),
    (["--role", "delegation", "--departement", "78", "--expires-at", "2027-01-01T00:00:00"],
     "offset"),
])
def test_the_cli_mints_no_unbound_key_and_no_tenant_of_another_role(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
        message: str) -> None:
    path = tmp_path / "keys.json"
    with contextlib.suppress(SystemExit):  # argparse's own errors exit 2
        assert keys.main(["add", "--partner", "p", *argv, "--file", str(path)]) == 2
    assert message in capsys.readouterr().err
    assert not path.exists()


def test_a_keys_file_from_before_the_binding_loads_unbound_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The file format of before: no departements, trainer_org nor expires_at."""
    path = tmp_path / "keys.json"
    tokens = {role: f"token-of-the-{role}-0123456789" for role in ("delegation", "trainer")}
    path.write_text(json.dumps([
        {"key_id": f"old-{role}", "partner": f"old-{role}", "sha256": keys.token_hash(token),
         "scopes": list(keys.ROLES[role]), "reseller_id": None}
        for role, token in tokens.items()]))
    ring = KeyRing(path)
    logged = capsys.readouterr()
    text = logged.out + logged.err
    assert "auth.key_unbound" in text
    assert "old-delegation" in text
    assert "old-trainer" in text
    delegation, trainer = (ring.caller(tokens[r]) for r in ("delegation", "trainer"))
    assert delegation is not None
    assert trainer is not None
    # Unrestricted within its role, as before: every département, every organisation.
    assert (delegation.departements, delegation.covers("2A")) == (None, True)
    assert delegation.refusal(_event("business_enrolled", departement="95"), _known) is None
    assert trainer.refusal(_event("module_completed", trainer_org="Anyone"), _known) is None
    assert keys.main(["list", "--file", str(path)]) == 0
    assert "UNBOUND-delegation" in capsys.readouterr().out
    # bind: the same token, bound from now on.
    assert keys.main(["bind", "--key-id", "old-delegation", "--departement", "78",
                      "--file", str(path)]) == 0
    bound = KeyRing(path).caller(tokens["delegation"])
    assert bound is not None
    assert bound.departements == frozenset({"78"})
    # A binding must fit the key's role.
    assert keys.main(["bind", "--key-id", "old-delegation", "--trainer-org", "Google",
                      "--file", str(path)]) == 2
    assert keys.main(["bind", "--key-id", "nope", "--departement", "78",
                      "--file", str(path)]) == 1


def test_a_delegation_writes_for_the_businesses_of_its_departements_only() -> None:
    _t, key = keys.mint("cefac-78", "delegation", departements=["78"])
    caller = caller_of(key)
    assert caller.refusal(_event("business_enrolled", siren="732829320"), _known) is None
    # Another département's enrolment, and the move of another's business into its own.
    assert "département 95" in str(caller.refusal(
        _event("business_enrolled", siren="552100554", departement="95"), _known))
    assert "552100554" in str(caller.refusal(
        _event("business_enrolled", siren="552100554", departement="78"), _known))
    for kind in ("offer_requested", "consent_withdrawn", "erasure_requested"):
        assert caller.refusal(_event(kind, siren="732829320"), _known) is None
        assert "552100554" in str(caller.refusal(_event(kind, siren="552100554"), _known))
        # Not known yet (or awaiting its enrolment): the enrolment will carry the check.
        assert caller.refusal(_event(kind, siren="542065479"), _known) is None
        assert caller.refusal(_event(kind, siren="443061841"), _known) is None
    admin = Caller("ops", "ops", frozenset({keys.ADMIN}))
    assert admin.refusal(_event("erasure_requested", siren="552100554"), _known) is None


def test_a_trainer_reports_under_its_own_organisation_only() -> None:
    _t, key = keys.mint("google", "trainer", trainer_org="Google")
    caller = caller_of(key)
    for kind in ("module_completed", "training_session_attended", "training_feedback"):
        assert caller.refusal(_event(kind, trainer_org="Google"), _known) is None
        assert caller.refusal(_event(kind, trainer_org=None), _known) is None  # names none
        assert "Google only" in str(caller.refusal(_event(kind, trainer_org="Orange"), _known))


def test_the_read_models_departement_waits_for_it_to_catch_up() -> None:
    passports = {"732829320": {"departement": "78"}, "443061841": {"departement": ""}}
    caught_up = [False]
    lookup = departement_of(passports.get, lambda: caught_up[0])
    assert lookup("732829320") == "78"
    assert lookup("443061841") == ""
    with pytest.raises(ProblemError) as refused:  # maybe one it has not read yet
        lookup("552100554")
    assert refused.value.document["status"] == 503
    caught_up[0] = True
    assert lookup("552100554") is None


def test_a_key_past_its_expiry_is_refused_like_an_unknown_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    now = [datetime(2026, 6, 1, tzinfo=UTC).timestamp()]
    token, key = keys.mint("cefac-78", "delegation", departements=["78"],
                           expires_at=datetime(2026, 6, 30, tzinfo=UTC))
    keys.save(path, [key])
    ring = KeyRing(path, clock=lambda: now[0])
    assert ring.caller(token) is not None
    now[0] = datetime(2026, 6, 30, tzinfo=UTC).timestamp()
    assert ring.caller(token) is None
    assert ring.caller(token) is None
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("auth.key_expired") == 1  # once, not per request
    assert "expires_at=2026-06-30" in (keys.main(["list", "--file", str(path)]),
                                       capsys.readouterr().out)[1]
    # expire: end a key at a date (or push its end back), same token.
    assert keys.main(["expire", "--key-id", key.key_id, "--at", "2026-12-31T23:59:59+01:00",
                      "--file", str(path)]) == 0
    assert KeyRing(path, clock=lambda: now[0]).caller(token) is not None


@pytest.mark.parametrize(("field", "value", "role", "message"), [
    ("departements", ["78"], "admin", "a delegation's key only"),
    ("departements", ["78"], "trainer", "a delegation's key only"),
    ("trainer_org", "Google", "delegation", "trainer"),
    ("departements", ["99"], "delegation", "departements"),
    ("reseller_id", "web-78", "delegation", "a reseller's key only"),
    ("reseller_id", "web-78", "admin", "a reseller's key only"),
])
def test_a_keys_file_with_a_tenant_that_does_not_fit_is_refused(
        tmp_path: Path, field: str, value: object, role: str, message: str) -> None:
    path = tmp_path / "keys.json"
    entry = {"key_id": "k", "partner": "p", "sha256": "0" * 64,
             "scopes": list(keys.ROLES[role]), field: value}
    path.write_text(json.dumps([entry]))
    with pytest.raises(ConfigError, match=message):
        KeyRing(path)
