"""The LLM client: langchain-openai's `ChatOpenAI` for any OpenAI-compatible server, with every wait bounded.

- **One deadline for the whole exchange.** The openai client's `timeout` bounds each read, so a server that sends
  its headers and then a byte every two seconds keeps a request alive forever. `BoundedTransport` gives every
  request a deadline (`llm_timeout` from its start) that covers connecting, the headers and a trickling body,
  and `call_scope` gives one chain call (a request and its retries) a shared budget.
- **A capped reply.** A reply over `MAX_REPLY_BYTES` is cut off at that size, not read to the end.
- **A circuit breaker.** After a server failure (refused, timed out, 5xx, auth), calls in the next `cooldown`
  seconds fail at once with the first failure's reason instead of waiting for the server again; the chain then
  falls back to the rules engine for the rest of the run or batch, and tries the server again after the cooldown.

Example:
    >>> breaker = CircuitBreaker(cooldown=60)
    >>> breaker.trip("connection refused")
    >>> breaker.check()
    Traceback (most recent call last):
    ...
    ideaforge.errors.LLMError: the LLM server failed moments ago (connection refused); not asked again for 60 s
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ideaforge.errors import LLMError

MAX_REPLY_BYTES = 1_000_000  # a structured prompt spec is a few kB; 1 MB is a server gone wrong


class ReplyTooLarge(Exception):
    """The server's reply went past `MAX_REPLY_BYTES`."""


class DeadlineExceeded(Exception):
    """The request, or the chain call it belongs to, ran past its time budget."""


@dataclass
class _Call:
    deadline: float
    seconds: float
    stop: str | None = None  # set once an attempt failed for a reason another attempt cannot fix


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("ideaforge_llm_call", default=None)


@contextlib.contextmanager
def call_scope(seconds: float) -> Iterator[None]:
    """Every request made inside (the openai client's retries included) shares one budget of `seconds`."""
    token = _CALL.set(_Call(time.monotonic() + seconds, seconds))
    try:
        yield
    finally:
        _CALL.reset(token)


def _httpx() -> Any:
    """The httpx flavour the installed openai client is built on (its `DefaultHttpxClient`'s base class)."""
    import openai

    base = next(c for c in openai.DefaultHttpxClient.__mro__[1:] if c.__name__ == "Client")
    return importlib.import_module(base.__module__.split(".")[0])


def bounded_http_client(timeout: float, max_bytes: int = MAX_REPLY_BYTES) -> Any:
    """An `openai.DefaultHttpxClient` whose requests are bounded in total time and reply size."""
    import openai

    httpx = _httpx()

    class BoundedStream(httpx.SyncByteStream):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any, deadline: float, seconds: float) -> None:
            self._inner, self._deadline, self._seconds = inner, deadline, seconds

        def __iter__(self) -> Iterator[bytes]:
            size = 0
            for chunk in self._inner:
                size += len(chunk)
                if size > max_bytes:
                    _stop(f"the reply was over {max_bytes:,} bytes")
                    raise ReplyTooLarge(f"the reply was over {max_bytes:,} bytes; the server is misbehaving")
                if time.monotonic() > self._deadline:
                    _stop(f"no complete reply within {self._seconds:g} s")
                    raise httpx.ReadTimeout(f"no complete reply within {self._seconds:g} s")
                yield chunk

        def close(self) -> None:
            self._inner.close()

    class BoundedTransport(httpx.BaseTransport):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self._inner = httpx.HTTPTransport()

        def handle_request(self, request: Any) -> Any:
            call = _CALL.get()
            now = time.monotonic()
            deadline, seconds = now + timeout, timeout
            if call is not None:
                if call.stop is not None:
                    raise DeadlineExceeded(call.stop)
                if call.deadline < deadline:
                    deadline, seconds = call.deadline, call.seconds
            left = deadline - now
            if left <= 0:
                raise httpx.ReadTimeout(f"no complete reply within {seconds:g} s")
            # No single wait (connect, a read) may outlast what is left of the budget.
            request.extensions["timeout"] = {"connect": left, "read": left, "write": left, "pool": left}
            response = self._inner.handle_request(request)
            return httpx.Response(
                status_code=response.status_code,
                headers=response.headers,
                stream=BoundedStream(response.stream, deadline, seconds),
                extensions=response.extensions,
            )

        def close(self) -> None:
            self._inner.close()

    return openai.DefaultHttpxClient(transport=BoundedTransport(), timeout=timeout)


def _stop(reason: str) -> None:
    call = _CALL.get()
    if call is not None:
        call.stop = reason


def reason(exc: BaseException) -> str:
    """What went wrong with an LLM request, in a few words, looking through the openai client's wrappers."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ReplyTooLarge | DeadlineExceeded):
            return str(current)
        if type(current).__name__ in {"ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout"}:
            return str(current) or "timed out"
        current = current.__cause__ or current.__context__
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def is_server_failure(exc: BaseException) -> bool:
    """A failure of the server or the connection (worth not repeating soon), not a bad reply."""
    import openai

    if isinstance(exc, openai.APIConnectionError | DeadlineExceeded | ReplyTooLarge):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (401, 403, 404, 429)
    return False


class CircuitBreaker:
    """After a server failure, refuse calls for `cooldown` seconds (thread-safe), then let one through again."""

    def __init__(self, cooldown: float = 120.0) -> None:
        self.cooldown = cooldown
        self._lock = threading.Lock()
        self._since: float | None = None
        self._reason = ""

    def check(self) -> None:
        """Raise `LLMError` while the breaker is open."""
        with self._lock:
            if self._since is None:
                return
            age = time.monotonic() - self._since
            if age >= self.cooldown:
                self._since = None  # half-open: the next call tries the server again
                return
            when = "moments ago" if age < 1 else f"{age:.0f} s ago"
            raise LLMError(
                f"the LLM server failed {when} ({self._reason}); not asked again for {self.cooldown - age:.0f} s"
            )

    def trip(self, why: str) -> None:
        with self._lock:
            self._since, self._reason = time.monotonic(), why

    def reset(self) -> None:
        with self._lock:
            self._since = None


def chat_model(settings: Any) -> Any:
    """`ChatOpenAI` for the configured server, over a bounded HTTP client."""
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    # Local OpenAI-compatible servers accept any key; the client insists on one.
    key = settings.openai_api_key or SecretStr("not-needed")
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        temperature=settings.llm_temperature,
        http_client=bounded_http_client(settings.llm_timeout),
    )
