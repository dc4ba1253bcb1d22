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
    """Every request made inside (the openai client's retries included) shares one budget of `seconds`.

    Scopes nest: an inner scope never extends an outer one (an idea's budget bounds each of its calls).
    """
    outer = _CALL.get()
    deadline = time.monotonic() + seconds
    if outer is not None and outer.deadline < deadline:
        deadline, seconds = outer.deadline, outer.seconds
    token = _CALL.set(_Call(deadline, seconds))
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

    class BoundedStream(httpx.SyncByteStream):  # type: ignore[name-defined]
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

    class BoundedTransport(httpx.BaseTransport):  # type: ignore[name-defined]
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
    """`ChatOpenAI` for the configured server, over a bounded HTTP client, with a bounded reply length.

    `max_tokens` matters most on small local models: inside a grammar-constrained string they can repeat a word
    until the client gives up; capped, the reply ends with `finish_reason: length` and gets a repair round.
    """
    from langchain_openai import ChatOpenAI
    from pydantic import SecretStr

    # Local OpenAI-compatible servers accept any key; the client insists on one.
    key = settings.openai_api_key or SecretStr("not-needed")
    extra: dict[str, Any] = {"max_tokens": settings.llm_max_tokens}  # sent as max_completion_tokens
    if settings.llm_repeat_penalty is not None:
        extra["extra_body"] = {"repeat_penalty": settings.llm_repeat_penalty}
    return ChatOpenAI(
        model=settings.llm_model,
        base_url=settings.llm_base_url,
        api_key=key,
        timeout=settings.llm_timeout,
        max_retries=settings.llm_max_retries,
        temperature=settings.llm_temperature,
        http_client=bounded_http_client(settings.llm_timeout),
        **extra,
    )


# -- what each server can do, found out once per process --------------------------------------------------------
_lock = threading.Lock()
_methods: dict[tuple[str | None, str], str] = {}
_contexts: dict[tuple[str | None, str], int | None] = {}
COMPACT_BELOW = 3072  # context windows smaller than this get the compact prompt (no few-shot examples)


def known_method(base_url: str | None, model: str) -> str | None:
    """The structured-output method that last worked with this server and model, if any."""
    with _lock:
        return _methods.get((base_url, model))


def remember_method(base_url: str | None, model: str, method: str) -> None:
    with _lock:
        _methods[(base_url, model)] = method


def is_unsupported_request(exc: BaseException) -> bool:
    """The server refused the request's form (e.g. `response_format` with a JSON schema): try another method."""
    import openai

    return isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError) and not is_context_error(exc)


def is_context_error(exc: BaseException) -> bool:
    """The prompt did not fit the server's context window (llama.cpp, vLLM, Ollama and OpenAI word it alike)."""
    import openai

    if not isinstance(exc, openai.BadRequestError):
        return False
    text = str(exc).lower()
    return "context" in text and any(w in text for w in ("exceed", "too long", "length", "n_ctx", "maximum"))


def context_size(base_url: str | None, model: str, timeout: float = 3.0) -> int | None:
    """The server's context window in tokens where it tells: llama.cpp's `/props`, Ollama's `/api/show`.

    Asked once per server and model; None when the server does not say (OpenAI, vLLM) or cannot be reached.
    """
    if base_url is None:
        return None
    key = (base_url, model)
    with _lock:
        if key in _contexts:
            return _contexts[key]
    found = _ask_context_size(base_url.rstrip("/"), model, timeout)
    with _lock:
        _contexts[key] = found
    return found


def _ask_context_size(url: str, model: str, timeout: float) -> int | None:
    httpx = _httpx()
    root = url[: -len("/v1")] if url.endswith("/v1") else url
    try:
        with httpx.Client(timeout=timeout, transport=httpx.HTTPTransport()) as client:
            props = client.get(f"{root}/props")
            if props.status_code == 200:
                settings = props.json().get("default_generation_settings") or {}
                n_ctx = settings.get("n_ctx") or props.json().get("n_ctx")
                if isinstance(n_ctx, int) and n_ctx > 0:
                    return n_ctx
            show = client.post(f"{root}/api/show", json={"model": model})
            if show.status_code == 200:
                data = show.json()
                for key, value in (data.get("model_info") or {}).items():
                    if key.endswith(".context_length") and isinstance(value, int):
                        parameters = str(data.get("parameters") or "")
                        for line in parameters.splitlines():  # a Modelfile's num_ctx is what the server uses
                            parts = line.split()
                            if len(parts) == 2 and parts[0] == "num_ctx" and parts[1].isdigit():
                                return int(parts[1])
                        return value
    except Exception:  # noqa: BLE001 - the size is a hint; without it the context-size error tells us
        return None
    return None
