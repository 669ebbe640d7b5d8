"""The API key of a request as a FastAPI dependency: every route's ``who: Authenticated``.

Its own module so that every module of routes (app.py, leads.py, webhooks.py,
feed.py) depends on it without depending on each other; ``for_reseller`` is
their one check of a reseller's route. Authenticating also takes the key's
token from its rate-limit bucket (``connectors/api/ratelimit.py``): a key over
its limit gets a 429 before its route reads anything, and the request is still
counted under its route's template (``observe.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import TypeAdapter, ValidationError

from connectors.api import problems, ratelimit
from connectors.api.auth import Caller, KeyRing
from connectors.api.problems import ProblemError
from connectors.api.ratelimit import Limiter
from schemas.models import ResellerId

_RESELLER: TypeAdapter[str] = TypeAdapter(ResellerId)

_BEARER = HTTPBearer(auto_error=False, description="A partner API key: "
                     "`Authorization: Bearer <token>` (`python -m connectors.api.keys add`).")


async def authenticate(request: Request, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> Caller:
    """The caller of a request, from its bearer token; a 401 problem without a valid one,
    a 429 when the key is over its rate limit."""
    if credentials is None:
        raise ProblemError(problems.unauthorized("send an API key: Authorization: Bearer <token>"))
    keyring: KeyRing = request.app.state.keyring
    found = keyring.caller(credentials.credentials)
    if found is None:
        raise ProblemError(problems.unauthorized("the API key is not valid"))
    request.state.key_id = found.key_id  # Observe logs who called
    if found.rate_limited and ratelimit.limited(request.url.path):
        limiter: Limiter = request.app.state.limiter
        wait = limiter.check(found.key_id)
        if wait > 0:  # Observe logs the 429 with the key id, as every request
            raise ProblemError(ratelimit.refusal(found.key_id, wait, limiter.limit))
    return found


Authenticated = Annotated[Caller, Depends(authenticate)]


def for_reseller(who: Caller, reseller_id: str, doing: str) -> None:
    """Check a reseller's route: a valid id (else 422) the caller speaks for (its own key, or
    an admin's; else 403 naming what it may not ``doing``, e.g. "read the leads of")."""
    try:
        _RESELLER.validate_python(reseller_id)
    except ValidationError as exc:
        raise ProblemError(problems.invalid_body(problems.located(
            "reseller_id", exc.errors(include_input=False)), "not a valid reseller id")) from exc
    if not who.speaks_for(reseller_id):
        raise ProblemError(problems.forbidden(f"key {who.key_id} may not {doing} {reseller_id}"))
