"""The prompt chain: a loose idea becomes a `PromptSpec`, through an LLM (`openai`) or offline (`rules`).

The LLM part is plain LangChain: `ChatPromptTemplate | ChatOpenAI.with_structured_output(LLMSpec, include_raw=True)`.
Every engine's output goes through `finalize`, the one place where style presets, the 77-token budget, the
checklist and the "no idea word in the negative" rule are enforced. What the idea says must *not* be there ("a
street without vehicles") is kept out of the positive prompt, leads the negative and becomes an `absent` check,
whoever read it: the model, or the rules reader that `finalize` runs on every idea as a safety net.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ideaforge import prompts
from ideaforge.agent import checklist
from ideaforge.agent.ask import StructuredLLM, short
from ideaforge.agent.budget import count, fit_terms, remove_contradictions
from ideaforge.agent.checklist import Analysis, lemma
from ideaforge.agent.families import (
    PromptFamily,
    Written,
    count_all,
    prompt_family,
    prose_like,
    sentence,
    sentences,
    style_sentence,
    write_prose,
)
from ideaforge.agent.models import Check, LLMCheck, LLMSpec, PromptSpec
from ideaforge.agent.refine import refine_rules
from ideaforge.agent.rules import _vocab, compact_words, get_style, rules_spec
from ideaforge.agent.settings import Settings
from ideaforge.agent.text import clean_idea, detect_language, has_foreign_script, split_terms
from ideaforge.errors import InputError, LLMError
from ideaforge.tools.sanitize import redact

# An LLM reply this far over the budget did not follow the instructions: ask again rather than trim it.
_FAR_OVER_BUDGET = 2 * 77
_TEXT_WARNING = "the idea asks for written text: Stable Diffusion 1.x/2.x and SDXL render text poorly (FLUX and SD 3.5 do better)"
_WORD = re.compile(r"[^\W_]+")
# Words that say a thing must not be there, for negations the rules reader did not find but the LLM did.


@lru_cache(maxsize=1)
def _negation() -> dict[str, Any]:
    """The negation cues of prompts/checklist.json, for the negations only a language model found."""
    cues = prompts.read_json("checklist.json")["negation"]
    phrases = sorted(cues["before"], key=len, reverse=True)
    return {
        "words": set(cues["words"]),
        "after": set(cues["after"]),  # "umbrellas nowhere in sight"
        "breaks": set(cues["clause_breaks"]),
        "part": re.compile(r"(?i)\s*\b(?:" + "|".join(re.escape(p) for p in phrases) + r")\b[^,;.]*"),
    }


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


def _hints(style: dict[str, str] | None, family: PromptFamily | None) -> str:
    """The system prompt's slot: the style preset's hint, then the family's instruction (none for `sd`)."""
    return "\n".join(h for h in (_style_hint(style), family.instruction if family else "") if h)


def _system(compact: bool) -> str:
    return prompts.read_text("system_compact.md" if compact else "system.md")


def idea_prompt(compact: bool = False, form: str = "tags") -> Any:
    """The `ChatPromptTemplate` for a new idea. Input variables: `idea`, `style_hint`.

    `compact` drops the few-shot examples and shortens the rules, for servers with small context windows. With
    `form="prose"` the examples show their prose prompts (the `prose` of prompts/examples.jsonl).
    """
    from langchain_core.messages import AIMessage, HumanMessage
    from langchain_core.prompts import ChatPromptTemplate

    messages: list[Any] = [("system", _system(compact))]
    for ex in [] if compact else prompts.examples():
        # Examples are messages, not templates: their JSON braces must not be read as variables.
        messages.append(HumanMessage(prompts.read_text("idea.md").format(idea=ex["idea"]).strip()))
        shown = dict(ex["spec"], positive=ex["prose"]) if form == "prose" and ex.get("prose") else ex["spec"]
        messages.append(AIMessage(json.dumps(shown, ensure_ascii=False)))
    messages.append(("human", prompts.read_text("idea.md")))
    return ChatPromptTemplate.from_messages(messages)


def revise_prompt(compact: bool = False) -> Any:
    """Template for a critic-driven revision. Input variables: `style_hint`, `idea_en`, `history`, `critique`."""
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages([("system", _system(compact)), ("human", prompts.read_text("revise.md"))])


def refine_prompt(compact: bool = False) -> Any:
    """Template for a conversational refinement ("make it night").

    Input variables: `style_hint`, `positive`, `negative`, `checks`, `request`.
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
        self._tokenizers: dict[str, Any] = {}  # a loaded model's other encoders' tokenizers: clip_g, t5
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

    def use_tokenizer(self, tokenizer: Any, encoder: str = "clip_l") -> None:
        """Count tokens with the loaded diffusion model's own tokenizer from now on.

        `encoder` names the text encoder it belongs to: `clip_l` (the first, the default), `clip_g` or `t5`. Without
        a T5 tokenizer, T5 tokens are estimated (`ideaforge.agent.families.estimate_t5_tokens`).
        """
        if encoder == "clip_l":
            self._tokenizer = tokenizer
        else:
            self._tokenizers[encoder] = tokenizer

    def _check(self, spec: LLMSpec) -> str | None:
        """What is wrong with a parsed reply, or None. The checks the schema cannot express."""
        for name in ("positive", "negative", "idea_en"):
            if has_foreign_script(getattr(spec, name)):
                return f"`{name}` must be in English, but it contains non-Latin script: {getattr(spec, name)[:80]!r}"
        if count(spec.positive, self.tokenizer) > _FAR_OVER_BUDGET:
            return "`positive` is far over the 77-token limit; keep it under 60 words"
        for check in spec.checks:  # text checks hold the text as written, in any script
            words = [check.subject, check.object or ""] + ([] if check.kind == "text" else [check.value or ""])
            if any(has_foreign_script(w) for w in words):
                return f"`checks` must be in English (text checks aside), but one says {check.subject!r}"
        return None

    # -- finishing, the one validation layer for every engine ---------------------------------------------
    def finalize(
        self,
        llm_spec: LLMSpec,
        idea: str,
        style: dict[str, str] | None,
        engine: str,
        warnings: list[str],
        *,
        previous: Sequence[LLMCheck] | None = None,
        family: PromptFamily | None = None,
    ) -> PromptSpec:
        """The spec from an engine's draft: checklist, negation, style preset, token budget, clean negative.

        `previous` are the checks to keep when the draft has none (a revision of an unchanged idea); without
        them, a draft without checks gets the rules reader's. `family` (default `sd`) decides the prompt's form and
        budgets: a prose family's draft is cut at a sentence boundary within its T5 budget, and the checks' words
        must be within the first 77 CLIP tokens (the sentences are reordered, completed by a sentence of the
        checks, or the rules engine's prose stands in for the CLIP prompts).
        """
        fam = family or prompt_family("sd")
        stop = _vocab()["_stopwords"]
        analysis = checklist.analyze(llm_spec.idea_en)
        checks, negated = self._checklist(llm_spec, analysis, engine, warnings, previous)
        heads = _heads(negated)
        positive_terms = _leave_out(split_terms(llm_spec.positive), heads, analysis)
        draft_terms = list(positive_terms)
        protected = 1
        if style:
            styled = split_terms(style["prompt"].replace("{prompt}", "\x00"))
            head = [t.replace("\x00", positive_terms[0]) for t in styled if "\x00" in t]
            tail = [t for t in styled if "\x00" not in t]
            positive_terms = head + positive_terms[1:] + tail
            protected = len(head)
        positive, w1 = fit_terms(positive_terms, self.tokenizer, protected=protected)
        # The negated things lead the negative; nothing else may name what the idea asks for. The idea is read
        # without its negated parts, so that "vehicles" is not a contradiction of "a street without vehicles".
        asked = _drop_words(analysis.positive, heads)
        lead = {n.lower() for n in negated}
        neg_terms = split_terms(llm_spec.negative) + (split_terms(style["negative"]) if style else [])
        neg_terms = [t for t in dict.fromkeys(neg_terms) if t.lower() not in lead]
        kept, dropped = remove_contradictions(neg_terms, asked, stop)
        if dropped:
            warnings.append(f"removed negative terms that name part of the idea: {', '.join(dropped)}")
        if not kept and engine == "openai":
            # A prompt pair without a negative loses what the model should avoid: the rules engine's defects.
            rules_negative = split_terms(rules_spec(llm_spec.idea_en, tokenizer=self.tokenizer).negative)
            kept, _ = remove_contradictions([t for t in rules_negative if t.lower() not in lead], asked, stop)
            warnings.append("the LLM gave no negative prompt; used the rules engine's")
        negative, w2 = fit_terms([*negated, *kept], self.tokenizer, protected=0)
        if any(c.kind == "text" for c in checks) and fam.name not in ("sd3", "flux"):
            warnings.append(_TEXT_WARNING)
        if fam.form == "prose":
            written = self._prose(fam, draft_terms, llm_spec.idea_en, analysis, style, checks, negative,
                                  [*negated, *kept], negated, warnings)
            w1 = []
        else:
            written = Written(positive=positive, negative=negative)
            left = [t for t in positive_terms[protected:] if t not in split_terms(positive)]
            if fam.form == "tags+phrases" and left:  # CLIP-G reads what CLIP-L had no room for
                short = compact_words(analysis.positive, stop)
                written.positive_2, _ = fit_terms([short, *left], self.tokenizer, protected=1)
            texts = {"positive": written.positive, "positive_2": written.positive_2}
            written.tokens, written.estimated = count_all(fam, texts, self.tokenizer, self._tokenizers)
        positive, negative = written.positive, written.negative
        language = _language(idea, llm_spec.language)
        return PromptSpec(
            **written.fields(),
            family=fam.key,
            idea=idea,
            idea_en=llm_spec.idea_en,
            checks=checks,
            elements=checklist.elements(checks) or [e for e in llm_spec.elements if not _names(e, heads)],
            language=language,
            style=style["name"] if style else None,
            engine=engine,
            warnings=[*warnings, *w1, *w2, *(written.warnings or [])],
            positive_tokens=count(positive, self.tokenizer),
            negative_tokens=count(negative, self.tokenizer),
            llm_method=self.llm.method if engine == "openai" else None,
        )

    def _prose(
        self,
        fam: PromptFamily,
        terms: list[str],
        idea_en: str,
        analysis: Analysis,
        style: dict[str, str] | None,
        checks: list[Check],
        negative: str,
        negative_terms: list[str],
        negated: list[str],
        warnings: list[str],
    ) -> Written:
        """A prose family's prompts from an LLM draft (without the negated things); the rules engine's CLIP prompts
        when the draft's sentences cannot carry the checks' words within 77 CLIP tokens."""
        from ideaforge.agent.families import covered, details_sentence

        text = ", ".join(terms)
        if prose_like(text):
            lead, details = sentences(text), []
        else:  # the model wrote tags after all: the subject as a sentence, its other terms as another
            warnings.append("the LLM wrote a tag list for a prose family; its terms were written as sentences")
            lead, details = [sentence(terms[0] if terms else analysis.positive)], [details_sentence(terms[1:])]
        if style:
            details.insert(0, style_sentence(style))
        written = write_prose(fam, lead, details, checks, negative, negative_terms, negated, self.tokenizer,
                              self._tokenizers)
        if not covered(written.positive, [c for c in checks if c.kind != "absent"]):
            rules = rules_spec(idea_en, style=style["name"] if style else None, tokenizer=self.tokenizer,
                               family=fam, tokenizers=self._tokenizers)
            if covered(rules.positive, checks):
                written.positive = rules.positive
                if fam.reads.get("clip_g") == "positive_2":
                    written.positive_2 = rules.positive
                written.warnings = [w for w in written.warnings or [] if "CLIP tokens" not in w]
                written.warnings.append(
                    "the LLM's sentences did not carry the checks' words within 77 CLIP tokens; the CLIP prompts are "
                    "the rules engine's, the T5 prompt the LLM's"
                )
                texts = {"positive": written.positive, "positive_2": written.positive_2,
                         "positive_3": written.positive_3}
                written.tokens, written.estimated = count_all(fam, texts, self.tokenizer, self._tokenizers)
        return written

    @staticmethod
    def _checklist(
        llm_spec: LLMSpec,
        analysis: Analysis,
        engine: str,
        warnings: list[str],
        previous: Sequence[LLMCheck] | None,
    ) -> tuple[list[Check], list[str]]:
        """The spec's checks and the things that must not be there (the reader's first, then the model's)."""
        given: list[LLMCheck] = list(llm_spec.checks) or list(previous or [])
        if not given:
            given = list(analysis.checks)
            if engine == "openai":
                warnings.append("the LLM gave no checklist; used the rules reader's checks")
        negated = list(analysis.negated)
        for c in given:
            if c.kind != "absent" or _head(c.subject) in _heads(negated):
                continue
            if _said_absent(llm_spec.idea_en, c.subject):
                negated.append(c.subject)
            else:
                warnings.append(f"dropped the check that {c.subject!r} is absent: the idea asks for it")
        heads = _heads(negated)
        # A thing the idea rules out cannot also be a thing the image must show (nor have a colour or a place).
        keep = [c for c in given if c.kind != "absent" and not {_head(c.subject), _head(c.object or "")} & heads]
        absent = [LLMCheck(kind="absent", subject=n) for n in negated]
        return checklist.link([*keep, *absent]), negated

    def _fallback(
        self, idea: str, style: dict[str, str] | None, exc: Exception, family: PromptFamily | None = None
    ) -> PromptSpec:
        spec = rules_spec(idea, style=style["name"] if style else None, tokenizer=self.tokenizer,
                          family=family, tokenizers=self._tokenizers)
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
    def optimize(self, idea: str, *, style: str | None = None, family: Any = None) -> PromptSpec:
        """A new idea -> spec. Bad input raises `InputError`; LLM failures fall back to `rules`, recorded.

        `family` is the model family to write for: a name (`sd`, the default; `sdxl`, `sd3`, `flux`, `generic`,
        `flux-schnell`, `sd3-turbo`) or a loaded model's `Family` (`DiffusionTool.family`). An unknown name is an
        `InputError` naming the choices.

        Example:
            >>> from ideaforge.agent.chain import PromptChain
            >>> from ideaforge.agent.settings import load_settings
            >>> spec = PromptChain(load_settings(engine="rules")).optimize("a red fox in the snow", family="flux")
            >>> spec.family, spec.negative, spec.positive_2.startswith("A red fox in the snow.")
            ('flux', '', True)
        """
        idea = clean_idea(idea)
        fam = prompt_family(family)
        preset = get_style(style if style is not None else self.settings.style)
        if self.engine == "rules":
            return rules_spec(idea, style=preset["name"] if preset else None, tokenizer=self.tokenizer,
                              family=fam, tokenizers=self._tokenizers)
        try:
            prompt = idea_prompt if fam.form != "prose" else (lambda compact: idea_prompt(compact, form="prose"))
            reply = self.llm.ask(prompt, {"idea": idea, "style_hint": _hints(preset, fam)})
        except Exception as exc:  # any LLM fault: HTTP error, timeout, unusable reply
            self._require_llm(exc)
            return self._fallback(idea, preset, exc, fam)
        return self.finalize(reply, idea, preset, "openai", [], family=fam)

    def batch(
        self, ideas: list[str], *, style: str | None = None, max_concurrency: int = 4, family: Any = None
    ) -> list[PromptSpec]:
        """Many ideas at once; the LLM calls run concurrently. Bad ideas raise before any call is made."""
        from langchain_core.runnables import RunnableLambda

        cleaned = [clean_idea(i) for i in ideas]
        prompt_family(family)  # an unknown family fails before any call
        if self.engine == "rules" or len(cleaned) <= 1:
            return [self.optimize(i, style=style, family=family) for i in cleaned]
        runnable: RunnableLambda[str, PromptSpec] = RunnableLambda(
            lambda i: self.optimize(i, style=style, family=family)
        )
        return runnable.batch(cleaned, config={"max_concurrency": max_concurrency})

    def revise(self, spec: PromptSpec, history: str, critique: str) -> PromptSpec:
        """A new spec from the critic's verdict on earlier attempts (LLM engines only; see ideaforge.agent.loop)."""
        preset = get_style(spec.style)
        fam = prompt_family(spec.family)
        inputs = {"style_hint": _hints(preset, fam), "idea_en": spec.idea_en, "history": history, "critique": critique}
        def changed(new: LLMSpec) -> str | None:
            if _same_prompt(new.positive, spec.positive):
                return "the revision is the previous prompt unchanged; rewrite it as the critique asks"
            return None

        reply = self.llm.ask(revise_prompt, inputs, check=changed)
        return self.finalize(reply, spec.idea, preset, "openai", [], previous=spec.checks, family=fam)

    def refine(self, spec: PromptSpec, request: str) -> PromptSpec:
        """Apply a follow-up request ("make it night") to an existing spec."""
        request = clean_idea(request)
        preset = get_style(spec.style)
        if self.engine == "rules":
            return refine_rules(spec, request, self.tokenizer)
        fam = prompt_family(spec.family)
        inputs = {
            "style_hint": _hints(preset, fam),
            "positive": spec.positive_3 or spec.positive_2 or spec.positive if fam.form == "prose" else spec.positive,
            "negative": spec.negative,
            "checks": _check_lines(spec.checks),
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
        return self.finalize(reply, f"{spec.idea}; {request}", preset, "openai", [], family=fam)


def _head(name: str) -> str:
    """The dictionary form of a noun phrase's head: 'parked vehicles' -> 'vehicle', 'statue of a horse' -> 'statue'."""
    words = _WORD.findall(name.lower().split(" of ")[0])
    return lemma(words[-1]) if words else ""


def _heads(names: Sequence[str]) -> set[str]:
    return {h for h in map(_head, names) if h}


def _names(text: str, heads: set[str]) -> bool:
    """`text` names one of the things, in any form of its head word ('a car-free street' names 'cars')."""
    return any(lemma(w) in heads for w in _WORD.findall(text))


def _drop_words(text: str, heads: set[str]) -> str:
    """`text` without the words that name the things."""
    return " ".join(w for w in _WORD.findall(text) if lemma(w) not in heads)


def _said_absent(idea_en: str, name: str) -> bool:
    """Whether the idea rules `name` out, or at least does not ask for it (an extra `absent` check is harmless).

    For the negations only the LLM found: a negation word shortly before the thing in the same clause, or
    "nowhere", "missing" just after it.
    """
    head = _head(name)
    words = re.findall(r"[^\W_]+(?:'t)?|[,;.:!?]", idea_en.lower())
    mentions = [i for i, w in enumerate(words) if lemma(w) == head]
    for i in mentions:
        if _negation()["after"] & set(words[i + 1:i + 3]):
            return True
        for w in reversed(words[max(0, i - 4):i]):
            if w in _negation()["words"] or w.endswith("n't"):
                return True
            if w in _negation()["breaks"] or not w[0].isalnum():
                break
    return not mentions


def _leave_out(terms: list[str], heads: set[str], analysis: Analysis) -> list[str]:
    """The positive terms without the negated things: Stable Diffusion draws every noun it reads.

    A term that says the thing is absent is read again without it ("shells but no sandpipers" -> "shells"); one that
    shows it ("parked vehicles") goes. The first term is the subject: rather than lose it, it becomes the idea's
    own text without its negated parts ("a street without vehicles" -> "an empty street").
    """
    if not heads:
        return terms
    out: list[str] = []
    for i, term in enumerate(terms):
        if not _names(term, heads):
            out.append(term)
            continue
        candidates = [checklist.analyze(term).positive, *([analysis.positive] if i == 0 else []),
                      _negation()["part"].sub("", term)]
        kept = next((c.strip(" ,") for c in candidates if c.strip(" ,") and not _names(c, heads)), None)
        if kept is not None:
            out.append(kept)
    return out or [_drop_words(analysis.positive, heads) or analysis.positive]


def _check_lines(checks: Sequence[LLMCheck]) -> str:
    """Checks as short lines for a prompt: '- attribute: kitten = red', '- relation: kitten on basket'."""
    lines = []
    for c in checks:
        if c.kind == "relation":
            fact = f"{c.subject} {c.value or 'with'} {c.object or ''}".strip()
        elif c.kind == "text":
            fact = f'{c.subject} = "{c.value or ""}"'
        elif c.value:
            fact = f"{c.subject} = {c.value}"
        else:
            fact = c.subject
        lines.append(f"  - {c.kind}: {fact}")
    return "\n".join(lines) or "  - (none)"


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
