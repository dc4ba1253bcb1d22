"""The prompt chain: a loose idea becomes a `PromptSpec`, through an LLM (`openai`) or offline (`rules`).

The LLM part is plain LangChain: `ChatPromptTemplate | ChatOpenAI.with_structured_output(LLMSpec, include_raw=True)`.
Every engine's output goes through `finalize`, the one place where style presets, the 77-token budget and the
"no idea word in the negative" rule are enforced.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ideaforge import prompts
from ideaforge.agent.budget import count, fit_terms, remove_contradictions
from ideaforge.agent.llm import (
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
from ideaforge.agent.models import LLMSpec, PromptSpec
from ideaforge.agent.rules import _vocab, get_style, rules_spec
from ideaforge.agent.settings import Settings
from ideaforge.agent.text import clean_idea, detect_language, has_foreign_script, split_terms
from ideaforge.errors import InputError, LLMError

# An LLM reply this far over the budget did not follow the instructions: ask again rather than trim it.
_FAR_OVER_BUDGET = 2 * 77


def resolve_engine(settings: Settings) -> str:
    """`auto` means `openai` when an API key or base URL is configured, else `rules`."""
    if settings.engine == "auto":
        return "openai" if settings.llm_configured() else "rules"
    if settings.engine == "openai" and not settings.llm_configured():
        raise InputError(
            "engine 'openai' needs an LLM: set OPENAI_API_KEY, or --llm-base-url / OPENAI_BASE_URL for an "
            "OpenAI-compatible server, or use --engine rules"
        )
    return settings.engine


def _style_hint(style: dict[str, str] | None) -> str:
    if not style:
        return ""
    return (
        f"- Style preset: {style['name']} ({style['description']}). Describe the subject so that it suits this "
        "style; the preset's own terms are added to your prompt afterwards, so don't repeat them."
    )


def _system(compact: bool) -> str:
    return prompts.read_text("system_compact.md" if compact else "system.md")


def idea_prompt(compact: bool = False) -> Any:
    """The `ChatPromptTemplate` for a new idea. Input variables: `idea`, `style_hint`.

    `compact` drops the few-shot examples and shortens the rules, for servers with small context windows.
    """
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.prompts import ChatPromptTemplate

    messages: list[Any] = [("system", _system(compact))]
    for ex in [] if compact else prompts.examples():
        # Examples are messages, not templates: their JSON braces must not be read as variables.
        messages.append(HumanMessage(prompts.read_text("idea.md").format(idea=ex["idea"]).strip()))
        messages.append(AIMessage(json.dumps(ex["spec"], ensure_ascii=False)))
    messages.append(("human", prompts.read_text("idea.md")))
    return ChatPromptTemplate.from_messages(messages)


def revise_prompt(compact: bool = False) -> Any:
    """Template for a critic-driven revision. Input variables: `style_hint`, `idea_en`, `history`, `critique`."""
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("system", _system(compact)), ("human", prompts.read_text("revise.md"))])


def refine_prompt(compact: bool = False) -> Any:
    """Template for a conversational refinement ("make it night").

    Input variables: `style_hint`, `positive`, `negative`, `elements`, `request`.
    """
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("system", _system(compact)), ("human", prompts.read_text("refine.md"))])


class _Unsupported(Exception):
    """The server refused this structured-output method's request; another method may work."""


class _ContextFull(Exception):
    """The prompt did not fit the server's context window."""


@dataclass
class _Reply:
    spec: LLMSpec | None
    error: str | None
    raw_text: str


class PromptChain:
    """Idea -> `PromptSpec` with the configured engine. Build once, call many times (thread-safe).

    Example:
        >>> from ideaforge.agent.chain import PromptChain
        >>> from ideaforge.agent.settings import load_settings
        >>> chain = PromptChain(load_settings(engine="rules"))
        >>> spec = chain.optimize("cozy cabin at night")
        >>> spec.engine, spec.positive.startswith("cozy cabin at night")
        ('rules', True)
    """

    def __init__(self, settings: Settings, *, tokenizer: Any = None, llm: Any = None) -> None:
        self.settings = settings
        self.engine = resolve_engine(settings) if llm is None else "openai"
        self._tokenizer = tokenizer
        self._llm = llm
        self._lock = threading.Lock()
        # After a server failure the rest of a run (or batch) goes straight to the fallback for a while.
        self.breaker = CircuitBreaker(cooldown=settings.llm_cooldown)
        self.method: str | None = None  # the structured-output method the last good reply came by

    # -- plumbing -----------------------------------------------------------------------------------------
    @property
    def tokenizer(self) -> Any:
        with self._lock:  # lazy loading is thread-safe: batch and Streamlit share one chain
            if self._tokenizer is None:
                from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

                self._tokenizer = load_clip_tokenizer()
            return self._tokenizer

    def use_tokenizer(self, tokenizer: Any) -> None:
        """Count tokens with the loaded diffusion model's own tokenizer from now on."""
        self._tokenizer = tokenizer

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

    def _check(self, spec: LLMSpec) -> str | None:
        """What is wrong with a parsed reply, or None. The checks the schema cannot express."""
        for name in ("positive", "negative", "idea_en"):
            if has_foreign_script(getattr(spec, name)):
                return f"`{name}` must be in English, but it contains non-Latin script: {getattr(spec, name)[:80]!r}"
        if count(spec.positive, self.tokenizer) > _FAR_OVER_BUDGET:
            return "`positive` is far over the 77-token limit; keep it under 60 words"
        return None

    def _ask(self, prompt: Callable[[bool], Any], inputs: dict[str, Any], *, check: Any = None) -> LLMSpec:
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
            return _Reply(None, "the reply was empty" if not raw.strip() else _short(str(exc)), raw)
        except LLMError:
            raise
        except Exception as exc:
            if is_context_error(exc):
                raise _ContextFull(str(exc)) from exc
            if is_unsupported_request(exc):
                raise _Unsupported(_short(reason(exc), 200)) from exc
            why = _redact(reason(exc), self.settings)
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

    # -- finishing, the one validation layer for every engine ---------------------------------------------
    def finalize(
        self, llm_spec: LLMSpec, idea: str, style: dict[str, str] | None, engine: str, warnings: list[str]
    ) -> PromptSpec:
        stop = _vocab()["_stopwords"]
        positive_terms = split_terms(llm_spec.positive)
        protected = 1
        if style:
            styled = split_terms(style["prompt"].replace("{prompt}", "\x00"))
            head = [t.replace("\x00", positive_terms[0]) for t in styled if "\x00" in t]
            tail = [t for t in styled if "\x00" not in t]
            positive_terms = head + positive_terms[1:] + tail
            protected = len(head)
        positive, w1 = fit_terms(positive_terms, self.tokenizer, protected=protected)
        neg_terms = split_terms(llm_spec.negative) + (split_terms(style["negative"]) if style else [])
        kept, dropped = remove_contradictions(list(dict.fromkeys(neg_terms)), llm_spec.idea_en, stop)
        if dropped:
            warnings.append(f"removed negative terms that name part of the idea: {', '.join(dropped)}")
        if not kept and engine == "openai":
            # A prompt pair without a negative loses what the model should avoid: the rules engine's defects.
            kept, _ = remove_contradictions(split_terms(rules_spec(llm_spec.idea_en, tokenizer=self.tokenizer).negative),
                                            llm_spec.idea_en, stop)
            warnings.append("the LLM gave no negative prompt; used the rules engine's")
        negative, w2 = fit_terms(kept, self.tokenizer, protected=0)
        language = _language(idea, llm_spec.language)
        return PromptSpec(
            idea=idea,
            idea_en=llm_spec.idea_en,
            positive=positive,
            negative=negative,
            elements=llm_spec.elements,
            language=language,
            style=style["name"] if style else None,
            engine=engine,
            warnings=[*warnings, *w1, *w2],
            positive_tokens=count(positive, self.tokenizer),
            negative_tokens=count(negative, self.tokenizer),
            llm_method=self.method if engine == "openai" else None,
        )

    def _fallback(self, idea: str, style: dict[str, str] | None, exc: Exception) -> PromptSpec:
        spec = rules_spec(idea, style=style["name"] if style else None, tokenizer=self.tokenizer)
        why = _redact(describe(exc), self.settings)
        spec.warnings.insert(0, f"the openai engine failed ({why}); used the rules engine instead")
        spec.fallback = why
        return spec

    def _require_llm(self, exc: Exception) -> None:
        """With `require_llm`, an LLM failure is an error rather than a quiet switch to the rules engine."""
        if self.settings.require_llm:
            why = _redact(describe(exc), self.settings)
            raise LLMError(f"the LLM failed ({why}) and require_llm is set, so the rules engine did not answer") from None

    # -- the three things the chain does ------------------------------------------------------------------
    def optimize(self, idea: str, *, style: str | None = None) -> PromptSpec:
        """A new idea -> spec. Bad input raises `InputError`; LLM failures fall back to `rules`, recorded."""
        idea = clean_idea(idea)
        preset = get_style(style if style is not None else self.settings.style)
        if self.engine == "rules":
            return rules_spec(idea, style=preset["name"] if preset else None, tokenizer=self.tokenizer)
        try:
            reply = self._ask(idea_prompt, {"idea": idea, "style_hint": _style_hint(preset)})
        except Exception as exc:  # any LLM fault: HTTP error, timeout, unusable reply
            self._require_llm(exc)
            return self._fallback(idea, preset, exc)
        return self.finalize(reply, idea, preset, "openai", [])

    def batch(self, ideas: list[str], *, style: str | None = None, max_concurrency: int = 4) -> list[PromptSpec]:
        """Many ideas at once; the LLM calls run concurrently. Bad ideas raise before any call is made."""
        from langchain_core.runnables import RunnableLambda

        cleaned = [clean_idea(i) for i in ideas]
        if self.engine == "rules" or len(cleaned) <= 1:
            return [self.optimize(i, style=style) for i in cleaned]
        runnable: RunnableLambda[str, PromptSpec] = RunnableLambda(lambda i: self.optimize(i, style=style))
        return runnable.batch(cleaned, config={"max_concurrency": max_concurrency})

    def revise(self, spec: PromptSpec, history: str, critique: str) -> PromptSpec:
        """A new spec from the critic's verdict on earlier attempts (LLM engines only; see ideaforge.agent.loop)."""
        preset = get_style(spec.style)
        inputs = {"style_hint": _style_hint(preset), "idea_en": spec.idea_en, "history": history, "critique": critique}
        def changed(new: LLMSpec) -> str | None:
            if _same_prompt(new.positive, spec.positive):
                return "the revision is the previous prompt unchanged; rewrite it as the critique asks"
            return None

        reply = self._ask(revise_prompt, inputs, check=changed)
        return self.finalize(reply, spec.idea, preset, "openai", [])

    def refine(self, spec: PromptSpec, request: str) -> PromptSpec:
        """Apply a follow-up request ("make it night") to an existing spec."""
        request = clean_idea(request)
        preset = get_style(spec.style)
        if self.engine == "rules":
            return refine_rules(spec, request, self.tokenizer)
        inputs = {
            "style_hint": _style_hint(preset),
            "positive": spec.positive,
            "negative": spec.negative,
            "elements": ", ".join(spec.elements),
            "request": request,
        }
        try:
            reply = self._ask(refine_prompt, inputs)
        except Exception as exc:
            self._require_llm(exc)
            out = refine_rules(spec, request, self.tokenizer)
            why = _redact(describe(exc), self.settings)
            out.warnings.insert(0, f"the openai engine failed ({why}); refined with the rules engine")
            return out
        return self.finalize(reply, f"{spec.idea}; {request}", preset, "openai", [])


def refine_rules(spec: PromptSpec, request: str, tokenizer: Any) -> PromptSpec:
    """Offline refinement: the request's words join the idea, the whole is re-optimized."""
    idea = f"{spec.idea_en}, {request}"
    out = rules_spec(idea, style=spec.style, tokenizer=tokenizer)
    return out.model_copy(update={"idea": f"{spec.idea}; {request}"})


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


def _same_prompt(a: str, b: str) -> bool:
    """The same prompt, case, spacing and punctuation between terms aside."""
    return [t.lower() for t in split_terms(" ".join(a.split()))] == [t.lower() for t in split_terms(" ".join(b.split()))]


_SCRIPT_LANGUAGES = {"zh", "ja", "ko", "ru", "ar", "he", "el", "th", "hi"}


def _language(idea: str, claimed: str) -> str:
    """The idea's language: its script decides where it can (an LLM's guess often does not), else the LLM's."""
    seen = detect_language(idea)
    if seen in _SCRIPT_LANGUAGES or (claimed or "en") in _SCRIPT_LANGUAGES:
        return seen
    return claimed or seen


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


def describe(exc: BaseException) -> str:
    """An LLM failure in a few words: `LLMError`s carry their reason, other errors are named."""
    if isinstance(exc, LLMError):
        return _short(str(exc)) or "LLMError"
    return f"{type(exc).__name__}: {_short(str(exc))}"


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _redact(text: str, settings: Settings) -> str:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else ""
    return text.replace(key, "***") if key else text
