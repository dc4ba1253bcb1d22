"""The prompt chain: a loose idea becomes a `PromptSpec`, through an LLM (`openai`) or offline (`rules`).

The LLM part is plain LangChain: `ChatPromptTemplate | ChatOpenAI.with_structured_output(LLMSpec, include_raw=True)`.
Every engine's output goes through `finalize`, the one place where style presets, the 77-token budget and the
"no idea word in the negative" rule are enforced.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from ideaforge import prompts
from ideaforge.agent.ask import StructuredLLM, short
from ideaforge.agent.budget import count, fit_terms, remove_contradictions
from ideaforge.agent.models import LLMSpec, PromptSpec
from ideaforge.agent.refine import refine_rules
from ideaforge.agent.rules import _vocab, get_style, rules_spec
from ideaforge.agent.settings import Settings
from ideaforge.agent.text import clean_idea, detect_language, has_foreign_script, split_terms
from ideaforge.errors import InputError, LLMError
from ideaforge.tools.sanitize import redact

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
        self._lock = threading.Lock()
        self.llm = StructuredLLM(settings, llm=llm, check=self._check)

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

    def _check(self, spec: LLMSpec) -> str | None:
        """What is wrong with a parsed reply, or None. The checks the schema cannot express."""
        for name in ("positive", "negative", "idea_en"):
            if has_foreign_script(getattr(spec, name)):
                return f"`{name}` must be in English, but it contains non-Latin script: {getattr(spec, name)[:80]!r}"
        if count(spec.positive, self.tokenizer) > _FAR_OVER_BUDGET:
            return "`positive` is far over the 77-token limit; keep it under 60 words"
        return None

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
            llm_method=self.llm.method if engine == "openai" else None,
        )

    def _fallback(self, idea: str, style: dict[str, str] | None, exc: Exception) -> PromptSpec:
        spec = rules_spec(idea, style=style["name"] if style else None, tokenizer=self.tokenizer)
        why = redact(describe(exc))
        spec.warnings.insert(0, f"the openai engine failed ({why}); used the rules engine instead")
        spec.fallback = why
        return spec

    def _require_llm(self, exc: Exception) -> None:
        """With `require_llm`, an LLM failure is an error rather than a quiet switch to the rules engine."""
        if self.settings.require_llm:
            why = redact(describe(exc))
            raise LLMError(f"the LLM failed ({why}) and require_llm is set, so the rules engine did not answer") from None

    # -- the three things the chain does ------------------------------------------------------------------
    def optimize(self, idea: str, *, style: str | None = None) -> PromptSpec:
        """A new idea -> spec. Bad input raises `InputError`; LLM failures fall back to `rules`, recorded."""
        idea = clean_idea(idea)
        preset = get_style(style if style is not None else self.settings.style)
        if self.engine == "rules":
            return rules_spec(idea, style=preset["name"] if preset else None, tokenizer=self.tokenizer)
        try:
            reply = self.llm.ask(idea_prompt, {"idea": idea, "style_hint": _style_hint(preset)})
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

        reply = self.llm.ask(revise_prompt, inputs, check=changed)
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
            reply = self.llm.ask(refine_prompt, inputs)
        except Exception as exc:
            self._require_llm(exc)
            out = refine_rules(spec, request, self.tokenizer)
            why = redact(describe(exc))
            out.warnings.insert(0, f"the openai engine failed ({why}); refined with the rules engine")
            return out
        return self.finalize(reply, f"{spec.idea}; {request}", preset, "openai", [])


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


def describe(exc: BaseException) -> str:
    """An LLM failure in a few words: `LLMError`s carry their reason, other errors are named."""
    if isinstance(exc, LLMError):
        return short(str(exc)) or "LLMError"
    return f"{type(exc).__name__}: {short(str(exc))}"
