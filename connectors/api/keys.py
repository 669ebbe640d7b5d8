"""Partner API keys: the keys file, the roles, and ``python -m connectors.api.keys`` to mint them.

A key is a random token (32 bytes, URL-safe base64) shown once to the partner;
the file keeps only its SHA-256, with the partner's name and scopes:

    [{"key_id": "cefac-78-1a2b3c4d", "partner": "cefac-78", "sha256": "…",
      "scopes": ["business_enrolled", "offer_requested", …], "reseller_id": null}]

A scope is an event type the key may send, ``passports:read`` (query
passports), or ``*`` (everything: operations). A key with a ``reseller_id``
speaks only for that reseller: its profile, its leads.

    python -m connectors.api.keys add --partner cefac-78 --role delegation --file keys.json
    python -m connectors.api.keys list --file keys.json
    python -m connectors.api.keys revoke --key-id cefac-78-1a2b3c4d --file keys.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from schemas.models import ResellerId

#: Every scope: operations, the synthetic source, the dev key.
ADMIN = "*"
#: Reading passports (a delegation follows the businesses it enrols).
PASSPORTS_READ = "passports:read"

#: What each kind of partner may do.
ROLES: dict[str, tuple[str, ...]] = {
    # CEFAC delegations and their advisors enrol businesses and speak for them.
    "delegation": ("business_enrolled", "offer_requested", "consent_withdrawn",
                   "erasure_requested", PASSPORTS_READ),
    # Trainer organisations report training.
    "trainer": ("module_completed", "training_session_attended", "training_feedback"),
    # A reseller answers its own leads and keeps its own profile (needs a reseller id).
    "reseller": ("lead_answered", "reseller_profile"),
    "admin": (ADMIN,),
}


class ApiKey(BaseModel):
    """One key of the keys file (the token itself is never stored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: Annotated[str, Field(min_length=1, max_length=100)]
    partner: Annotated[str, Field(min_length=1, max_length=64)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    scopes: tuple[str, ...] = Field(min_length=1)
    reseller_id: ResellerId | None = None

    @model_validator(mode="after")
    def _reseller_scopes_need_a_reseller(self) -> ApiKey:
        if self.reseller_id is None and {"lead_answered", "reseller_profile"} & set(self.scopes):
            raise ValueError(f"key {self.key_id}: a reseller's scopes need a reseller_id")
        return self


KEYS_FILE: TypeAdapter[list[ApiKey]] = TypeAdapter(list[ApiKey])


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load(path: Path) -> list[ApiKey]:
    """The keys of a keys file; ``ValueError`` naming the file when it is unusable."""
    try:
        keys = KEYS_FILE.validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
    except ValidationError as exc:
        # The messages name fields and rules; the inputs (hashes) stay out of them.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_input=False))
        raise ValueError(f"invalid API keys file {path}: {problems}") from exc
    ids = [key.key_id for key in keys]
    if len(set(ids)) != len(ids):
        raise ValueError(f"invalid API keys file {path}: a key_id appears twice")
    return keys


def save(path: Path, keys: Sequence[ApiKey]) -> None:
    """Write the keys file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps([key.model_dump(mode="json") for key in keys], indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(data)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)  # a running API reloads it: never let it see half a file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def mint(partner: str, role: str, reseller_id: str | None = None) -> tuple[str, ApiKey]:
    """A new token and the key that stores its hash."""
    token = secrets.token_urlsafe(32)
    key = ApiKey(key_id=f"{partner}-{secrets.token_hex(4)}", partner=partner,
                 sha256=token_hash(token), scopes=ROLES[role], reseller_id=reseller_id)
    return token, key


def _existing(path: Path) -> list[ApiKey]:
    return load(path) if path.exists() else []


def _add(args: argparse.Namespace) -> int:
    if args.role == "reseller" and not args.reseller_id:
        print("a reseller key needs --reseller-id", file=sys.stderr)
        return 2
    keys = _existing(args.file)
    token, key = mint(args.partner, args.role, args.reseller_id)
    save(args.file, [*keys, key])
    print(f"key {key.key_id} for {key.partner} ({args.role}) added to {args.file}",
          file=sys.stderr)
    print("the token is shown once; send it as 'Authorization: Bearer <token>':",
          file=sys.stderr)
    print(token)
    return 0


def _list(args: argparse.Namespace) -> int:
    for key in _existing(args.file):
        reseller = f" reseller={key.reseller_id}" if key.reseller_id else ""
        print(f"{key.key_id}\t{key.partner}\t{','.join(key.scopes)}{reseller}")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    keys = _existing(args.file)
    kept = [key for key in keys if key.key_id != args.key_id]
    if len(kept) == len(keys):
        print(f"no key {args.key_id} in {args.file}", file=sys.stderr)
        return 1
    save(args.file, kept)
    print(f"key {args.key_id} revoked", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.api.keys",
                                     description="Mint, list and revoke partner API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="mint a key; prints its token once")
    add.add_argument("--partner", required=True, help="who holds the key, e.g. cefac-78")
    add.add_argument("--role", required=True, choices=sorted(ROLES))
    add.add_argument("--reseller-id", help="the reseller a reseller key speaks for")
    listing = sub.add_parser("list", help="the keys of the file (ids, partners, scopes)")
    revoke = sub.add_parser("revoke", help="remove a key")
    revoke.add_argument("--key-id", required=True)
    for command in (add, listing, revoke):
        command.add_argument("--file", type=Path, required=True, help="the keys file (JSON)")
    args = parser.parse_args(argv)
    commands: dict[str, Any] = {"add": _add, "list": _list, "revoke": _revoke}
    try:
        code: int = commands[args.command](args)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
