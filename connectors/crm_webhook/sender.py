"""The HTTP shell of delivery: attempts POSTed concurrently from one asyncio loop thread.

The delivery component's processor runs on the processor loop's thread and
must not wait on a reseller's CRM: it ``submit``s requests and picks up their
``results`` on a later turn (``wake`` tells it one landed). One event loop in a
daemon thread holds every attempt in flight, over one shared ``aiohttp`` session
(connection reuse per endpoint); a semaphore of ``max_in_flight`` bounds them,
and the excess waits in the loop, so ``submit`` never blocks the processor.
Holding a slow endpoint to its own share (``webhook_per_endpoint``) is the
caller's: it knows which messages wait for which endpoint.

Every attempt passes the SSRF guard first (its DNS answer may have changed
since the last one), redirects are never followed (a 3xx is a failure: a
redirect is the classic way round a guard), proxies from the environment are
ignored, and at most a little of a response body is read, and never kept.

Why aiohttp and not httpx (which the rest of the project uses): on this machine
httpx's async client made 50-400 requests a second to a local uvicorn server
with 200 in flight, aiohttp 1,800-4,000 against the same server in the same
run (its connection pool and parser are in C); 650 endpoints at 200 leads a
second need the latter.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import deque
from types import TracebackType

import aiohttp

from connectors.crm_webhook.ssrf import Guard, UrlRefused
from schemas.frozen import frozen

USER_AGENT = "passport-hub"
#: Most of a response body read (then dropped): enough to keep the connection reusable
#: after a normal answer, too little for a hostile receiver to make us buffer much.
_BODY_READ_LIMIT = 64 * 1024
_CLOSE_TIMEOUT_S = 10.0


@frozen
class Request:
    """One attempt to make: ``key`` is the caller's, handed back in its ``Result``."""

    key: str
    url: str
    headers: dict[str, str]
    body: bytes


@frozen
class Result:
    """How one attempt went; ``status`` None when no answer came (``error`` says why)."""

    key: str
    status: int | None
    latency_ms: int
    """From the attempt's start (its slot taken) to its answer or failure."""
    error: str | None
    """Short and never a body: "timeout", "connection refused", "redirect not followed"…"""
    retry_after: str | None
    """The answer's ``Retry-After`` header, as sent (schedule.classify reads it)."""
    refused: bool
    """The SSRF guard refused the URL (``error`` is its reason); nothing was sent."""


class Sender:
    """Makes attempts concurrently in a background event loop; see the module's docstring."""

    def __init__(self, guard: Guard, *, max_in_flight: int, timeout_s: float,
                 wake: threading.Event | None = None) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self._guard = guard
        self._max_in_flight = max_in_flight
        self._timeout_s = timeout_s
        self._wake = wake
        self._done: deque[Result] = deque()
        self._lock = threading.Lock()
        self._pending = 0
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: aiohttp.ClientSession | None = None
        self._slots: asyncio.Semaphore | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the loop thread and open the client."""
        if self._loop is not None:
            raise RuntimeError("the sender is already started")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="crm-webhook-sender",
                                  daemon=True)
        thread.start()
        asyncio.run_coroutine_threadsafe(self._open(), loop).result(_CLOSE_TIMEOUT_S)
        with self._lock:
            self._loop, self._thread = loop, thread

    async def _open(self) -> None:
        # Made on the loop, so that nothing binds to another thread's loop.
        self._slots = asyncio.Semaphore(self._max_in_flight)
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._max_in_flight, limit_per_host=0),
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            trust_env=False,  # no proxy from the environment between the guard and the CRM
            auto_decompress=False)

    def submit(self, request: Request) -> None:
        """Queue ``request`` for an attempt (thread-safe, never blocks)."""
        with self._lock:  # held while scheduling, so that close() cannot stop the loop between
            loop = self._loop
            if loop is None or self._closed:
                raise RuntimeError("the sender is not running")
            self._pending += 1
            loop.call_soon_threadsafe(self._spawn, request)

    def results(self) -> list[Result]:
        """The attempts completed since the last call, in the order they completed."""
        out: list[Result] = []
        while True:
            try:
                out.append(self._done.popleft())
            except IndexError:
                return out

    @property
    def in_flight(self) -> int:
        """Attempts submitted whose result has not landed (waiting for a slot, or sending)."""
        with self._lock:
            return self._pending

    def close(self) -> None:
        """Stop: attempts still in flight are abandoned (no result), then the client closes.

        An abandoned attempt is still pending in its caller's state, which sends it
        again after a restart; a receiver drops the duplicate by its ``webhook-id``.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(_CLOSE_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(_CLOSE_TIMEOUT_S)
            if not thread.is_alive():
                loop.close()

    def __enter__(self) -> Sender:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        await asyncio.get_running_loop().shutdown_asyncgens()  # a body read cut short

    def _spawn(self, request: Request) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, request: Request) -> None:
        assert self._slots is not None
        async with self._slots:
            result = await self._send(request)
        self._done.append(result)
        with self._lock:
            self._pending -= 1
        if self._wake is not None:
            self._wake.set()

    async def _send(self, request: Request) -> Result:
        started = time.monotonic()

        def result(status: int | None, error: str | None, retry_after: str | None = None,
                   *, refused: bool = False) -> Result:
            latency = round((time.monotonic() - started) * 1000)
            return Result(request.key, status, latency, error, retry_after, refused)

        try:
            async with asyncio.timeout(self._timeout_s):  # the whole attempt, DNS included
                await self._guard.check_async(request.url)
                status, retry_after = await self._post(request)
        except UrlRefused as exc:
            return result(None, str(exc), refused=True)
        except TimeoutError:
            return result(None, "timeout")
        except aiohttp.ClientError as exc:
            return result(None, describe(exc))
        except Exception as exc:
            # An attempt must always land, or its caller would wait for it forever.
            return result(None, f"unexpected {type(exc).__name__}")
        error = "redirect not followed" if 300 <= status < 400 else None
        return result(status, error, retry_after)

    async def _post(self, request: Request) -> tuple[int, str | None]:
        assert self._client is not None
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   **request.headers}
        async with self._client.post(request.url, data=request.body, headers=headers,
                                     allow_redirects=False) as response:
            read = 0
            async for chunk in response.content.iter_chunked(16 * 1024):
                read += len(chunk)
                if read > _BODY_READ_LIMIT:
                    response.close()  # not reused: fine for an oddity
                    break
            return response.status, response.headers.get("retry-after")


#: Why a connection could not be made, by what caused it (the first that matches).
_CONNECT_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (ssl.SSLCertVerificationError, "tls certificate not valid"),
    (ssl.SSLError, "tls handshake failed"),
)
#: Transport failures in a few words, the most specific first.
_FAILURES: tuple[tuple[type[aiohttp.ClientError], str], ...] = (
    (aiohttp.ClientConnectorError, "connection failed"),
    (aiohttp.ServerDisconnectedError, "connection closed without an answer"),
    (aiohttp.ClientPayloadError, "connection reset while reading"),
    (aiohttp.ClientOSError, "connection reset"),
    (aiohttp.ClientResponseError, "http protocol error"),
)


def describe(exc: aiohttp.ClientError) -> str:
    """A transport failure in a few words (for the deliveries topic and the API)."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        causes = _causes(exc)
        for kind, words in _CONNECT_CAUSES:
            if any(isinstance(cause, kind) for cause in causes):
                return words
        if "refused" in str(exc).lower():
            return "connection refused"
    return next((words for kind, words in _FAILURES if isinstance(exc, kind)), "request failed")


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
