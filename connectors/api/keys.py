"""Partner API keys: the keys file, the roles, and ``python -m connectors.api.keys`` to mint them.

A key is a random token (32 bytes, URL-safe base64) shown once to the partner;
the file keeps only its SHA-256, with the partner's name, scopes and tenant:

    [{"key_id": "cefac-78-1a2b3c4d", "partner": "cefac-78", "sha256": "…",
      "scopes": ["business_enrolled", "offer_requested", …], "reseller_id": null,
      "departements": ["78"], "trainer_org": null, "expires_at": "2027-06-30T00:00:00Z"}]

A scope is an event type the key may send, ``passports:read`` (query
passports), or ``*`` (everything: operations). A key is also bound to its
**tenant** (docs/architecture.md, "Users"), for reads and writes alike:

- a reseller key (``reseller_id``) speaks only for that reseller: its profile,
  its leads, its webhook, its deliveries, its feed;
- a delegation key (``departements``) reads and enrols only the businesses of
  its départements: a business enrolled in another one is neither shown to it
  nor written for it;
- a trainer key (``trainer_org``) reports training only under its own
  organisation's name: the quality referential's figures per organisation
  cannot be written by another.

**Unbound keys.** Keys files written before the binding existed hold
delegation keys without ``departements`` and trainer keys without
``trainer_org``. They keep loading, and act as before: unrestricted within
their role, with a warning naming each at every load (``auth.key_unbound``);
``bind`` binds them without a new token. Refusing them would lock every such
partner out at the upgrade. ``add`` mints no unbound key: a delegation needs
``--departement``, a trainer ``--trainer-org``, a reseller ``--reseller-id``.
The admin keys and the dev key have no tenant: they see and write everything.

``expires_at`` (optional) ends a key: from then on it is refused (401) like a
revoked one, with no edit of the file needed at the due date.

    python -m connectors.api.keys add --partner cefac-78 --role delegation --departement 78 \\
        [--departement 95] [--expires-at 2027-06-30T00:00:00Z] --file keys.json
    python -m connectors.api.keys add --partner google --role trainer \\
        --trainer-org "Google Ateliers Numériques" --file keys.json
    python -m connectors.api.keys list --file keys.json
    python -m connectors.api.keys bind --key-id cefac-78-1a2b3c4d --departement 78 --file keys.json
    python -m connectors.api.keys expire --key-id cefac-78-1a2b3c4d --at 2027-01-01T00:00:00Z \\
        --file keys.json
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
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from schemas.fields import unique
from schemas.models import BusinessName, DepartementCode, ResellerId

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
#: The tenant-bound roles, and the attribute of a key that names each one's tenant.
TENANTS: dict[str, str] = {"delegation": "departements", "trainer": "trainer_org",
                           "reseller": "reseller_id"}


def _tenant_roles(scopes: Sequence[str]) -> list[str]:
    """The tenant-bound roles whose scopes a key holds some of (none for an admin key)."""
    if ADMIN in scopes:
        return []
    return [role for role in TENANTS if set(ROLES[role]) & set(scopes)]


class ApiKey(BaseModel):
    """One key of the keys file (the token itself is never stored)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_id: Annotated[str, Field(min_length=1, max_length=100)]
    partner: Annotated[str, Field(min_length=1, max_length=64)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    scopes: tuple[str, ...] = Field(min_length=1)
    reseller_id: ResellerId | None = None
    departements: Annotated[tuple[DepartementCode, ...], AfterValidator(unique)] = ()
    """A delegation's départements (empty: an unbound key, see the module's docstring)."""
    trainer_org: BusinessName | None = None
    """The organisation a trainer key reports training for (None: unbound)."""
    expires_at: AwareDatetime | None = None
    """When the key stops being accepted (None: never)."""

    @model_validator(mode="after")
    def _tenants_fit_the_scopes(self) -> ApiKey:
        roles = _tenant_roles(self.scopes)
        if self.reseller_id is None and "reseller" in roles:
            raise ValueError(f"key {self.key_id}: a reseller's scopes need a reseller_id")
        if self.reseller_id is not None and "reseller" not in roles:
            # It would let the key act for that reseller (bearer.for_reseller) with no
            # reseller scope: read its leads, manage its webhook.
            raise ValueError(f"key {self.key_id}: a reseller_id binds a reseller's key only")
        if self.departements and "delegation" not in roles:
            raise ValueError(f"key {self.key_id}: départements bind a delegation's key only")
        if self.trainer_org is not None and "trainer" not in roles:
            raise ValueError(f"key {self.key_id}: trainer_org binds a trainer's key only")
        return self

    def unbound(self) -> list[str]:
        """The roles of this key that name no tenant (a key from before the binding)."""
        return [role for role in _tenant_roles(self.scopes) if not getattr(self, TENANTS[role])]


KEYS_FILE: TypeAdapter[list[ApiKey]] = TypeAdapter(list[ApiKey])


def token_hash(token: str) -> str:
    """The stored form of a token: its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _errors(exc: ValidationError) -> str:
    # The messages name fields and rules; the inputs (hashes) stay out of them.
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                     for e in exc.errors(include_input=False))


def load(path: Path) -> list[ApiKey]:
    """The keys of a keys file; ``ValueError`` naming the file when it is unusable."""
    try:
        keys = KEYS_FILE.validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read the API keys file {path}: {exc.strerror}") from exc
    except ValidationError as exc:
        raise ValueError(f"invalid API keys file {path}: {_errors(exc)}") from exc
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


def mint(partner: str, role: str, reseller_id: str | None = None, *,
         departements: Sequence[str] = (), trainer_org: str | None = None,
         expires_at: datetime | None = None) -> tuple[str, ApiKey]:
    """A new token and the key that stores its hash (``ValueError`` for a tenant that does
    not fit the role; an unbound delegation or trainer key is the caller's choice: the
    CLI never makes one)."""
    token = secrets.token_urlsafe(32)
    try:
        key = ApiKey(key_id=f"{partner}-{secrets.token_hex(4)}", partner=partner,
                     sha256=token_hash(token), scopes=ROLES[role], reseller_id=reseller_id,
                     departements=tuple(departements), trainer_org=trainer_org,
                     expires_at=expires_at)
    except ValidationError as exc:
        raise ValueError(_errors(exc)) from exc
    return token, key


def _existing(path: Path) -> list[ApiKey]:
    return load(path) if path.exists() else []


#: The option each tenant-bound role needs on ``add``.
_NEEDS = {"delegation": ("departement", "--departement"),
          "trainer": ("trainer_org", "--trainer-org"),
          "reseller": ("reseller_id", "--reseller-id")}


def _add(args: argparse.Namespace) -> int:
    for role, (attribute, option) in _NEEDS.items():
        given = getattr(args, attribute)
        if role == args.role and not given:
            print(f"a {role} key needs {option}", file=sys.stderr)
            return 2
        if role != args.role and given:
            print(f"{option} binds a {role} key, not a {args.role} key", file=sys.stderr)
            return 2
    keys = _existing(args.file)
    token, key = mint(args.partner, args.role, args.reseller_id,
                      departements=args.departement or (), trainer_org=args.trainer_org,
                      expires_at=args.expires_at)
    save(args.file, [*keys, key])
    print(f"key {key.key_id} for {key.partner} ({args.role}) added to {args.file}",
          file=sys.stderr)
    print("the token is shown once; send it as 'Authorization: Bearer <token>':",
          file=sys.stderr)
    print(token)
    return 0


def describe(key: ApiKey) -> str:
    """One line of ``list``: id, partner, scopes, tenant, expiry (never the hash)."""
    parts = [key.key_id, key.partner, ",".join(key.scopes)]
    if key.reseller_id:
        parts.append(f"reseller={key.reseller_id}")
    if key.departements:
        parts.append(f"departements={','.join(key.departements)}")
    if key.trainer_org:
        parts.append(f"trainer_org={key.trainer_org}")
    if key.expires_at:
        parts.append(f"expires_at={key.expires_at.isoformat()}")
    parts.extend(f"UNBOUND-{role}" for role in key.unbound())
    return "\t".join(parts)


def _list(args: argparse.Namespace) -> int:
    for key in _existing(args.file):
        print(describe(key))
    return 0


def _change(args: argparse.Namespace, **changes: Any) -> int:
    """Rewrite one key with ``changes`` (validated as a whole key: a tenant must fit)."""
    keys = _existing(args.file)
    found = [key for key in keys if key.key_id == args.key_id]
    if not found:
        print(f"no key {args.key_id} in {args.file}", file=sys.stderr)
        return 1
    try:
        changed = ApiKey.model_validate({**found[0].model_dump(), **changes})
    except ValidationError as exc:
        raise ValueError(_errors(exc)) from exc
    save(args.file, [changed if key.key_id == args.key_id else key for key in keys])
    print(f"key {args.key_id}: {describe(changed)}", file=sys.stderr)
    return 0


def _bind(args: argparse.Namespace) -> int:
    if not args.departement and not args.trainer_org:
        print("bind needs --departement or --trainer-org", file=sys.stderr)
        return 2
    changes: dict[str, Any] = {}
    if args.departement:
        changes["departements"] = tuple(args.departement)
    if args.trainer_org:
        changes["trainer_org"] = args.trainer_org
    return _change(args, **changes)


def _expire(args: argparse.Namespace) -> int:
    return _change(args, expires_at=args.at)


def _revoke(args: argparse.Namespace) -> int:
    keys = _existing(args.file)
    kept = [key for key in keys if key.key_id != args.key_id]
    if len(kept) == len(keys):
        print(f"no key {args.key_id} in {args.file}", file=sys.stderr)
        return 1
    save(args.file, kept)
    print(f"key {args.key_id} revoked", file=sys.stderr)
    return 0


def _moment(text: str) -> datetime:
    """An ``--expires-at`` / ``--at`` value: ISO 8601 with its offset (``Z`` or ``+02:00``)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date and time: {text}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the offset too (Z, +02:00): {text}")
    return moment


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m connectors.api.keys",
                                     description="Mint, list, bind, expire and revoke partner "
                                     "API keys.")
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="mint a key; prints its token once")
    add.add_argument("--partner", required=True, help="who holds the key, e.g. cefac-78")
    add.add_argument("--role", required=True, choices=sorted(ROLES))
    add.add_argument("--expires-at", type=_moment, help="when the key ends (ISO 8601)")
    listing = sub.add_parser("list", help="the keys of the file (ids, partners, scopes, tenants)")
    bind = sub.add_parser("bind", help="bind an existing key to its tenant (same token)")
    expire = sub.add_parser("expire", help="set when an existing key ends")
    expire.add_argument("--at", type=_moment, required=True, help="ISO 8601, with its offset")
    revoke = sub.add_parser("revoke", help="remove a key")
    for command in (bind, expire, revoke):
        command.add_argument("--key-id", required=True)
    for command in (add, bind):
        command.add_argument("--departement", action="append",
                             help="a delegation's département (repeat for several)")
        command.add_argument("--trainer-org", help="the organisation a trainer key reports for")
    add.add_argument("--reseller-id", help="the reseller a reseller key speaks for")
    for command in (add, listing, bind, expire, revoke):
        command.add_argument("--file", type=Path, required=True, help="the keys file (JSON)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands: dict[str, Any] = {"add": _add, "list": _list, "bind": _bind,
                                "expire": _expire, "revoke": _revoke}
    try:
        code: int = commands[args.command](args)
    except ValueError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
