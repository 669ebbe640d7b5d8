"""The API key of a request as a FastAPI dependency: every route's ``who: Authenticated``.

Its own module so that every module of routes (app.py, leads.py) depends on it
without depending on each other.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from connectors.api import problems
from connectors.api.auth import Caller, KeyRing
from connectors.api.problems import ProblemError

_BEARER = HTTPBearer(auto_error=False, description="A partner API key: "
                     "`Authorization: Bearer <token>` (`python -m connectors.api.keys add`).")


async def authenticate(request: Request, credentials: Annotated[
        HTTPAuthorizationCredentials | None, Depends(_BEARER)]) -> Caller:
    """The caller of a request, from its bearer token; a 401 problem without a valid one."""
    if credentials is None:
        raise ProblemError(problems.unauthorized("send an API key: Authorization: Bearer <token>"))
    keyring: KeyRing = request.app.state.keyring
    found = keyring.caller(credentials.credentials)
    if found is None:
        raise ProblemError(problems.unauthorized("the API key is not valid"))
    request.state.key_id = found.key_id  # Observe logs who called
    return found


Authenticated = Annotated[Caller, Depends(authenticate)]
