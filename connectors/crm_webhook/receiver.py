"""A real webhook receiver on 127.0.0.1, for the tests, the bench and the README.

Not a CRM, a stand-in for one: a tiny ASGI app under uvicorn in a background
thread (hundreds of slow requests at once cost it nothing), each path with a
behaviour (``behave``) and the secrets its deliveries are verified with
(``secrets``), every request recorded as a ``Delivery``.

Behaviours: ``ok`` (204), ``fail`` (500), ``slow:<s>`` (200 after s seconds),
``flap`` (500, 204, 500, …), ``gone`` (410), ``throttle:<s>`` (429 with
``Retry-After: <s>`` the first time, then 204), ``hang`` (no answer until the
receiver stops, then 503), ``redirect`` (302 to ``/``: a sender must not follow
it). Setting a path's behaviour restarts its sequence.

``python -m connectors.crm_webhook.receiver --port 8099 --secret whsec_…``
serves every path and prints one line per delivery, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import uvicorn
from standardwebhooks.webhooks import Webhook

from schemas.frozen import frozen

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

BEHAVIOURS = ("ok", "fail", "slow", "flap", "gone", "throttle", "hang", "redirect")
_STATUS = {"ok": 204, "fail": 500, "gone": 410}
_START_TIMEOUT_S = 10.0


def wall_ms() -> int:
    """The wall clock in epoch milliseconds (the receiver's default clock)."""
    return time.time_ns() // 1_000_000


@frozen
class Delivery:
    """One request the receiver got, as it got it."""

    path: str
    headers: dict[str, str]
    """Lower-cased names (the last value of a repeated header)."""
    body: bytes
    received_ms: int
    status_answered: int | None
    """The status it answers with (``hang``: None, it answers only when stopped)."""
    verified: bool | None
    """Whether a secret of its path verified it (standardwebhooks); None: no secret to try."""

    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)


@frozen
class _Plan:
    status: int | None
    delay_s: float
    headers: tuple[tuple[bytes, bytes], ...]


class Receiver:
    """An HTTP receiver of webhooks in a background thread; see the module's docstring."""

    def __init__(self, *, port: int = 0, secrets: Sequence[str] = (), behaviour: str = "ok",
                 on_delivery: Callable[[Delivery], None] | None = None,
                 clock: Callable[[], int] = wall_ms) -> None:
        _parse(behaviour)
        self._port = port
        self._default_secrets = tuple(secrets)
        self._default_behaviour = behaviour
        self._on_delivery = on_delivery
        self._clock = clock
        self._behaviours: dict[str, str] = {}
        self._secrets: dict[str, tuple[str, ...]] = {}
        self._seen: dict[str, int] = {}  # requests per path since its behaviour was set
        self._deliveries: list[Delivery] = []
        self._changed = threading.Condition()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None

    # -- configuration --------------------------------------------------------------

    def behave(self, path: str, behaviour: str) -> None:
        """Answer requests to ``path`` so (see the module's docstring), from the next one."""
        _parse(behaviour)
        with self._changed:
            self._behaviours[path] = behaviour
            self._seen[path] = 0

    def secrets(self, path: str, secrets: Iterable[str]) -> None:
        """Verify deliveries to ``path`` with ``secrets`` (any one verifying is enough)."""
        with self._changed:
            self._secrets[path] = tuple(secrets)

    @property
    def port(self) -> int:
        """The port listened on (a free one when made with port 0); after ``start``."""
        return self._port

    def url(self, path: str) -> str:
        """``http://127.0.0.1:PORT`` and ``path``."""
        return f"http://127.0.0.1:{self._port}{path if path.startswith('/') else '/' + path}"

    # -- what was received ----------------------------------------------------------

    def deliveries(self, path: str | None = None) -> list[Delivery]:
        """Every request received (to ``path`` only, when given), in arrival order."""
        with self._changed:
            return [d for d in self._deliveries if path is None or d.path == path]

    def wait_for(self, count: int, path: str | None = None,
                 timeout_s: float = 10.0) -> list[Delivery]:
        """The deliveries (to ``path``) once there are ``count``; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                got = [d for d in self._deliveries if path is None or d.path == path]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0:
                    break
                self._changed.wait(left)
        if len(got) < count:
            where = f" at {path}" if path else ""
            raise TimeoutError(f"received {len(got)} of {count} deliveries{where} "
                               f"within {timeout_s} s")
        return got

    # -- start and stop -------------------------------------------------------------

    def start(self) -> None:
        """Listen on 127.0.0.1 and serve in a background thread; return once it serves."""
        if self._thread is not None:
            raise RuntimeError("the receiver is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self._port))
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(
            self._app, loop="asyncio", log_level="warning", log_config=None,
            access_log=False, lifespan="off", ws="none", interface="asgi3"))
        self._server = server
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(server, sock),),
                                        name="webhook-receiver", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        """Answer what hangs (503), stop serving, and wait for the thread."""
        server, thread, loop, release = self._server, self._thread, self._loop, self._release
        if server is None or thread is None:
            return
        if loop is not None and release is not None:
            with contextlib.suppress(RuntimeError):  # the loop has ended: nothing hangs
                loop.call_soon_threadsafe(release.set)
        server.should_exit = True
        thread.join(_START_TIMEOUT_S)
        self._server = self._thread = None

    def __enter__(self) -> Receiver:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    async def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
        await server.serve(sockets=[sock])

    # -- the app --------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await _body(receive)
        path = str(scope["path"])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope["headers"]}
        plan, secrets = self._plan(path)
        delivery = Delivery(path, headers, body, self._clock(), plan.status,
                            _verify(secrets, body, headers))
        with self._changed:
            self._deliveries.append(delivery)
            self._changed.notify_all()
        if self._on_delivery is not None:
            self._on_delivery(delivery)
        status = plan.status
        if status is None or plan.delay_s > 0:
            assert self._release is not None
            try:
                await asyncio.wait_for(self._release.wait(),
                                       None if status is None else plan.delay_s)
                status = 503  # released by stop(): closing, whatever was planned
            except TimeoutError:
                pass
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-length", b"0"), *plan.headers]})
        await send({"type": "http.response.body", "body": b""})

    def _plan(self, path: str) -> tuple[_Plan, tuple[str, ...]]:
        with self._changed:
            behaviour = self._behaviours.get(path, self._default_behaviour)
            nth = self._seen.get(path, 0)
            self._seen[path] = nth + 1
            secrets = self._secrets.get(path, self._default_secrets)
        name, seconds = _parse(behaviour)
        if name == "slow":
            return _Plan(200, seconds, ()), secrets
        if name == "flap":
            return _Plan(500 if nth % 2 == 0 else 204, 0, ()), secrets
        if name == "throttle" and nth == 0:
            after = str(round(seconds)).encode()
            return _Plan(429, 0, ((b"retry-after", after),)), secrets
        if name == "hang":
            return _Plan(None, 0, ()), secrets
        if name == "redirect":
            return _Plan(302, 0, ((b"location", b"/"),)), secrets
        return _Plan(_STATUS.get(name, 204), 0, ()), secrets


def _parse(behaviour: str) -> tuple[str, float]:
    name, _, arg = behaviour.partition(":")
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown behaviour {behaviour!r}: one of {', '.join(BEHAVIOURS)}")
    if name not in ("slow", "throttle"):
        return name, 0.0
    try:
        seconds = float(arg)
    except ValueError:
        raise ValueError(f"behaviour {name} needs seconds: {name}:<seconds>") from None
    return name, max(seconds, 0.0)


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _verify(secrets: Sequence[str], body: bytes, headers: dict[str, str]) -> bool | None:
    if not secrets:
        return None
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers, json_parse=False)
        except Exception:  # noqa: S112 - a bad secret or signature both mean: try the next
            continue
        return True
    return False


def line(delivery: Delivery) -> str:
    """The CLI's line for one delivery: time, webhook-id, type, lead id, signature."""
    try:
        body = delivery.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    data = body.get("data")
    lead_id = data.get("lead_id") if isinstance(data, dict) else None
    at = datetime.fromtimestamp(delivery.received_ms / 1000, UTC).astimezone()
    signature = {True: "ok", False: "BAD", None: "unchecked"}[delivery.verified]
    return "  ".join([at.strftime("%H:%M:%S"), delivery.headers.get("webhook-id", "-"),
                      str(body.get("type") or "-"), str(lead_id or "-"),
                      f"signature {signature}"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m connectors.crm_webhook.receiver",
        description="A local webhook receiver: prints one line per delivery, until Ctrl-C.")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--secret", action="append", default=[],
                        help="verify signatures with this whsec_ secret (repeatable)")
    parser.add_argument("--behave", default="ok", help=f"one of {', '.join(BEHAVIOURS)}")
    args = parser.parse_args(argv)
    try:
        receiver = Receiver(port=args.port, secrets=args.secret, behaviour=args.behave,
                            on_delivery=lambda d: print(line(d), flush=True))
    except ValueError as exc:
        parser.error(str(exc))
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # set here: a shell's `&` ignores SIGINT
        signal.signal(signum, lambda _signum, _frame: stopping.set())
    try:
        receiver.start()
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        print(f"receiving on {receiver.url('/')} (Ctrl-C to stop)", file=sys.stderr, flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        receiver.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
