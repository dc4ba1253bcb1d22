"""One structured request to the LLM: the method, the repair round, the budget, and what comes back.

`StructuredLLM.ask(template, inputs)` sends a prompt through `ChatOpenAI.with_structured_output(LLMSpec)` and
returns a validated `LLMSpec` or raises `LLMError` with the reason. Everything servers differ in is handled here:
the structured-output method (`auto` finds out once per server), a reply cut at the length limit or shaped wrong
(one repair round), JSON that a function-calling reply carries as content, a context window too small for the
full prompt (the compact one), server failures (the circuit breaker), and one time budget per idea.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ideaforge.agent.models import LLMSpec
from ideaforge.errors import LLMError
from ideaforge.tools.llm import (
    COMPACT_BELOW,
    CircuitBreaker,
    call_scope,
    chat_model,
    context_size,
    is_context_error,
    is_server_failure,
    is_unsupported_request,
    known_method,
    reason,
    remember_method,
)
from ideaforge.tools.sanitize import redact

Check = Callable[[LLMSpec], "str | None"]


class _Unsupported(Exception):
    """The server refused this structured-output method's request; another method may work."""


class _ContextFull(Exception):
    """The prompt did not fit the server's context window."""


@dataclass
class _Reply:
    spec: LLMSpec | None
    error: str | None
    raw_text: str


class StructuredLLM:
    """The configured LLM asked for `LLMSpec`s. Thread-safe; `method` is how the last good reply came."""

    def __init__(self, settings: Any, *, llm: Any = None, check: Check | None = None) -> None:
        self.settings = settings
        self._llm = llm
        self._lock = threading.Lock()
        self._check = check or (lambda spec: None)
        # After a server failure the rest of a run (or batch) goes straight to the fallback for a while.
        self.breaker = CircuitBreaker(cooldown=settings.llm_cooldown)
        self.method: str | None = None

    @property
    def llm(self) -> Any:
        with self._lock:
            if self._llm is None:
                self._llm = chat_model(self.settings)
            return self._llm

    def _structured(self, method: str) -> Any:
        # include_raw=False keeps the request in the caller's thread (include_raw runs it in a thread pool that
        # Ctrl-C cannot interrupt); the raw reply, for the repair round, comes from a callback instead.
        return self.llm.with_structured_output(LLMSpec, method=method)

    def _methods(self) -> list[str]:
        """Structured-output methods to try, best first. `auto`: what worked with this server before, else
        json_schema then json_mode (function calling only when asked for: llama.cpp ignores tool_choice)."""
        s = self.settings
        if s.llm_method != "auto":
            return [s.llm_method]
        known = known_method(s.llm_base_url, s.llm_model)
        return [known] if known else ["json_schema", "json_mode"]

    def _compact(self) -> bool:
        """Whether to send the compact prompt: the server says its context window is small."""
        s = self.settings
        size = context_size(s.llm_base_url, s.llm_model)
        return size is not None and size < COMPACT_BELOW

    def ask(self, prompt: Callable[[bool], Any], inputs: dict[str, Any], *, check: Any = None) -> LLMSpec:
        """A structured request with one repair round, within the idea's budget. The next structured-output
        method is tried only when the server refuses the request's form (a 400), not for a bad reply.

        `check(spec)` may name a problem the schema cannot (e.g. a revision identical to the prompt it revises);
        it gets the repair round too. Raises `LLMError` when no usable reply came back.
        """
        compact = self._compact()
        with call_scope(self.settings.llm_budget):
            try:
                return self._ask_methods(prompt(compact), inputs, check)
            except _ContextFull:
                if compact:
                    raise LLMError("the prompt does not fit the server's context window, even the compact one") from None
            try:  # the server's context window is smaller than it said (or did not say): the compact prompt
                return self._ask_methods(prompt(True), inputs, check)
            except _ContextFull:
                raise LLMError("the prompt does not fit the server's context window, even the compact one") from None

    def _ask_methods(self, template: Any, inputs: dict[str, Any], check: Any) -> LLMSpec:
        from langchain_core.messages import HumanMessage

        messages = template.format_messages(**inputs)
        problems = []
        for method in self._methods():
            try:
                reply = self._invoke(messages, method, check)
                if reply.spec is None:
                    repair = HumanMessage(
                        "Your previous reply could not be used: "
                        f"{reply.error}\nYour reply was:\n{reply.raw_text[:1500]}\n"
                        "Answer again with only the structured result, following the schema exactly."
                    )
                    reply = self._invoke([*messages, repair], method, check)
            except _Unsupported as exc:
                problems.append(f"{method}: {exc}")
                continue
            if reply.spec is None:
                raise LLMError(f"the LLM's reply did not validate twice: {reply.error}")
            remember_method(self.settings.llm_base_url, self.settings.llm_model, method)
            self.method = method
            return reply.spec
        raise LLMError(f"the server accepted none of the structured-output methods ({'; '.join(problems)})")

    def _invoke(self, messages: list[Any], method: str, check: Any = None) -> _Reply:
        """One request (with the client's retries, in one time budget).

        A reply that does not parse becomes a `_Reply` carrying the error and the raw text, for the repair round.
        Server failures raise `LLMError` with the reason, and open the circuit breaker.
        """
        import openai
        from langchain_core.exceptions import OutputParserException
        from pydantic import ValidationError

        self.breaker.check()
        capture = _RawReply()
        s = self.settings
        try:
            with call_scope(s.llm_timeout * (s.llm_max_retries + 1)):
                parsed = self._structured(method).invoke(messages, config={"callbacks": [capture.handler]})
        except (ValidationError, OutputParserException, json.JSONDecodeError, openai.LengthFinishReasonError) as exc:
            # The openai client's own parser (json_schema) raises instead of returning a parsing error.
            raw = capture.text or getattr(exc, "llm_output", None) or _input_of(exc)
            if isinstance(exc, openai.LengthFinishReasonError):
                return _Reply(None, "the reply was cut off at the length limit; answer much more briefly", raw)
            return _Reply(None, "the reply was empty" if not raw.strip() else short(str(exc)), raw)
        except LLMError:
            raise
        except Exception as exc:
            if is_context_error(exc):
                raise _ContextFull(str(exc)) from exc
            if is_unsupported_request(exc):
                raise _Unsupported(short(reason(exc), 200)) from exc
            why = redact(reason(exc))
            if is_server_failure(exc):
                self.breaker.trip(why)
            raise LLMError(why) from exc
        self.breaker.reset()
        return self._parse(parsed, capture.text, check)

    def _parse(self, parsed: Any, raw_text: str, check: Any = None) -> _Reply:
        from pydantic import ValidationError

        if parsed is None and raw_text.strip():
            # Function calling on servers that ignore `tool_choice` (llama.cpp): the JSON comes as content.
            try:
                parsed = LLMSpec.model_validate_json(_json_object(raw_text))
            except (ValidationError, ValueError):
                parsed = None
        if parsed is None:
            text = "the reply was empty" if not raw_text.strip() else "the reply held no structured result"
            return _Reply(None, text, raw_text)
        spec = parsed if isinstance(parsed, LLMSpec) else LLMSpec.model_validate(parsed)
        problem = self._check(spec) or (check(spec) if check is not None else None)
        return _Reply(None if problem else spec, problem, raw_text)



class _RawReply:
    """A LangChain callback that keeps the model's raw reply (content, or the first tool call's arguments)."""

    def __init__(self) -> None:
        from langchain_core.callbacks import BaseCallbackHandler

        outer = self
        self.text = ""

        class Handler(BaseCallbackHandler):
            def on_llm_end(self, response: Any, **kwargs: Any) -> None:
                try:
                    message = response.generations[0][0].message
                except (AttributeError, IndexError):
                    return
                calls = getattr(message, "tool_calls", None) or []
                content = message.content if isinstance(message.content, str) else json.dumps(message.content)
                outer.text = json.dumps(calls[0].get("args", {}), ensure_ascii=False) if calls else content

        self.handler = Handler()


def _json_object(text: str) -> str:
    """The outermost `{...}` in a reply (models wrap JSON in prose or code fences); ValueError if none."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object in the reply")
    return text[start : end + 1]


def _input_of(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            return str(errors()[0].get("input", ""))[:2000]
        except Exception:  # noqa: BLE001 - best effort for the repair message only
            return ""
    return ""


def short(text: str, limit: int = 300) -> str:
    """`text` on one line, cut to `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
