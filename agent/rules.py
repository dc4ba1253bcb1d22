"""The `rules` prompt engine: deterministic, offline, data-driven (vocabularies and presets in `prompts/`).

It keeps the idea's own words first, adds medium, lighting, composition and quality terms suited to the subject,
picks negative presets by subject category, and never lets a word of the idea into the negative prompt.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ideaforge import prompts
from ideaforge.agent.budget import count, fit_terms, remove_contradictions
from ideaforge.agent.checklist import analyze, elements, link
from ideaforge.agent.families import (
    PromptFamily,
    Written,
    compact_words,
    details_sentence,
    missing,
    prompt_family,
    sentence,
    write_prose,
)
from ideaforge.agent.models import LLMCheck, PromptSpec
from ideaforge.agent.text import detect_language, join_terms, split_terms, stem, words
from ideaforge.errors import InputError
from ideaforge.tools.diffusion.weighting import plain_prompt


@lru_cache(maxsize=1)
def _vocab() -> dict[str, Any]:
    v = dict(prompts.vocabulary())
    v["_stopwords"] = set(v["stopwords"])
    v["_medium"] = set(v["medium_words"])
    v["_drop"] = set(v["element_drop_words"]) | v["_stopwords"]
    seps = sorted(v["element_separators"], key=len, reverse=True)
    v["_split"] = re.compile("|".join(re.escape(s) for s in seps))
    # keyword -> category, single words and multi-word keywords separately
    v["_kw"] = {c: {k for k in d["keywords"] if " " not in k} for c, d in v["categories"].items()}
    v["_kw_multi"] = {c: [k for k in d["keywords"] if " " in k] for c, d in v["categories"].items()}
    v["_suffix"] = {c: tuple(d.get("suffixes", ())) for c, d in v["categories"].items()}
    return v


def get_style(name: str | None) -> dict[str, str] | None:
    """The style preset called `name` (case-insensitive; spaces and underscores read as hyphens)."""
    if not name:
        return None
    key = name.strip().lower().replace(" ", "-").replace("_", "-")
    styles = prompts.styles()
    if key not in styles:
        raise InputError(f"unknown style {name!r}; choose one of: {', '.join(prompts.style_names())}")
    return styles[key]


def categories(idea: str) -> list[str]:
    """Subject categories found in the idea, the one named earliest first (the subject usually leads)."""
    v = _vocab()
    ws = words(idea)
    text = " " + " ".join(ws) + " "
    first: dict[str, int] = {}
    for pos, w in enumerate(ws):
        for cat, kws in v["_kw"].items():
            if cat not in first and (w in kws or (len(w) > 5 and w.endswith(v["_suffix"][cat] or ("\x00",)))):
                first[cat] = pos
    for cat, multi in v["_kw_multi"].items():
        for k in multi:
            i = text.find(" " + k + " ")
            if i >= 0:
                first[cat] = min(first.get(cat, 10**6), text[:i].count(" "))
    if not first:
        return [v["default_category"]]
    # "text" wins when the idea asks for written words: its negatives must not forbid text.
    order = sorted(first, key=lambda c: (c != "text", first[c]))
    return order


def extract_elements(idea_en: str, limit: int = 6) -> list[str]:
    """The idea's key visual elements as short noun phrases, in the idea's order."""
    v = _vocab()
    chunks = v["_split"].split(" " + idea_en.lower() + " ")
    out: list[str] = []
    for chunk in chunks:
        ws = [w for w in words(chunk)]
        while ws and (ws[0] in v["_drop"] or ws[0] in v["_medium"]):
            ws.pop(0)
        while ws and (ws[-1] in v["_drop"] or ws[-1] in v["_medium"]):
            ws.pop()
        if not ws:
            continue
        phrase = " ".join(ws[-4:])
        if phrase not in out:
            out.append(phrase)
        if len(out) == limit:
            break
    return out or [" ".join(words(idea_en)[:6]) or idea_en[:60]]


def _enhancements(idea_en: str, cats: list[str], style: dict[str, str] | None) -> list[str]:
    v = _vocab()
    idea_words = set(words(idea_en))
    primary = v["categories"][cats[0]]
    terms: list[str] = []
    if style is None and not (idea_words & v["_medium"]):
        terms.append(primary["medium"])
    for rule in v["lighting_overrides"]:
        if idea_words & set(rule["when"]):
            terms.extend(rule["terms"])
    terms.extend(primary["terms"])
    terms.extend(v["quality_terms"])
    drop: set[str] = set()
    for rule in v["conflicts"]:
        if idea_words & set(rule["when"]):
            drop.update(rule["drop"])
    idea_stems = {stem(w) for w in idea_words}
    kept = []
    for t in terms:
        if t in drop:
            continue
        # A term that only repeats what the idea already says adds tokens, not information.
        t_stems = {stem(w) for w in words(t)}
        if t_stems and t_stems <= idea_stems:
            continue
        kept.append(t)
    return kept


def _negative_terms(cats: list[str], style: dict[str, str] | None) -> list[str]:
    v = _vocab()
    presets = prompts.negatives()
    names: list[str] = []
    keep_out: set[str] = set()
    for cat in cats:
        names.extend(v["categories"][cat]["negative"])
        keep_out.update(v["categories"][cat].get("keep_out_of_negative", []))
    # Subject-specific presets first, the generic "base" last: when over budget, generic terms go first.
    terms: list[str] = []
    for name in sorted(dict.fromkeys(names), key=lambda n: n == "base"):
        terms.extend(presets[name])
    if style:
        terms = split_terms(style["negative"]) + terms
    return [t for t in dict.fromkeys(terms) if t not in keep_out]


def rules_spec(
    idea: str,
    *,
    style: str | None = None,
    tokenizer: Any = None,
    family: Any = None,
    tokenizers: dict[str, Any] | None = None,
) -> PromptSpec:
    """Turn a (clean) idea into a prompt spec without any model, in the form of the model `family` (default `sd`).

    `sd` gets comma-separated tags, `sdxl` tags with short phrases (and a CLIP-G prompt where the CLIP-L one had to
    leave style terms out), `sd3`, `flux` and `generic` sentences: the idea's own words first, then what the
    checklist needs within the first 77 CLIP tokens, then the style, lighting and composition, up to the T5 budget.
    `tokenizers` are a loaded model's own tokenizers by encoder ('t5', 'clip_g'), to count with.

    Example:
        >>> from ideaforge.agent.rules import rules_spec
        >>> spec = rules_spec("a blurry photo of rain")
        >>> spec.positive.startswith("a blurry photo of rain")
        True
        >>> "blurry" in spec.negative
        False
        >>> flux = rules_spec("a street without cars", family="flux")
        >>> flux.positive.split(". ")[0], flux.negative, flux.positive_2.endswith("There is no sign of cars anywhere.")
        ('An empty street', '', True)
    """
    from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

    tok = tokenizer if tokenizer is not None else load_clip_tokenizer()
    fam = prompt_family(family)
    v = _vocab()
    preset = get_style(style)
    warnings: list[str] = []
    language = detect_language(idea)
    idea_en = idea
    if language != "en":
        warnings.append(
            f"the rules engine cannot translate {language!r} ideas, so the idea is passed through untranslated; "
            "configure an LLM (--engine openai with OPENAI_API_KEY or --llm-base-url) to translate it"
        )
    reading = analyze(idea_en) if language == "en" else None
    # What the idea says must not be there leaves the positive prompt and leads the negative one.
    shown = reading.positive if reading is not None and reading.positive.strip() else idea_en
    negated = reading.negated if reading is not None else []
    cats = categories(shown)
    subject = [shown]
    if preset:
        styled = split_terms(preset["prompt"].replace("{prompt}", "\x00"))
        subject = [t.replace("\x00", shown) for t in styled if "\x00" in t]
        extra_style = [t for t in styled if "\x00" not in t]
    else:
        extra_style = []
    checks = list(reading.checks) if reading is not None else link([LLMCheck(kind="entity", subject=idea_en)])
    # A thing the checklist names that leaving out a negated part took with it ("a laptop, no letters on its
    # keyboard": the keyboard stays) goes back in as a tag of its own.
    kept = [c.subject.split("'s ")[-1].split("' ")[-1] for c in checks if c.kind == "entity" and missing(shown, [c])]
    subject = subject + list(dict.fromkeys(kept))
    if fam.form != "prose":  # a paragraph's last full stop does not end a tag ("... square., masterpiece")
        subject = [t.rstrip(" .;") or t for t in subject]
    positive_terms = subject + extra_style + _enhancements(shown, cats, preset)
    positive, fit_warnings = fit_terms(positive_terms, tok, protected=len(subject))
    if fit_warnings:
        # Too long even alone: keep the idea's content words rather than its articles and prepositions.
        positive, fit_warnings = fit_terms([compact_words(shown, v["_stopwords"])] + extra_style, tok, protected=1)
        warnings.append("the idea is longer than CLIP's 77 tokens; articles and prepositions were dropped to fit")
    warnings.extend(fit_warnings)
    negative_terms, _ = remove_contradictions(_negative_terms(cats, preset), shown, v["_stopwords"])
    negative, neg_warnings = fit_terms(negated + negative_terms, tok, protected=0)
    warnings.extend(neg_warnings)
    if preset:
        checks = link([*checks, LLMCheck(kind="style", subject="image", value=preset["name"])])
    if any(c.kind == "text" for c in checks) and fam.name not in ("sd3", "flux"):
        warnings.append(TEXT_WARNING)
    if fam.form == "prose":
        terms = [t for t in extra_style + _enhancements(shown, cats, preset) if t not in fam.drop_terms]
        medium = cats and v["categories"][cats[0]]["medium"]
        written = write_prose(
            fam, [sentence(subject[0])], [details_sentence(terms, medium if medium in terms else None)], checks,
            negative, [*negated, *negative_terms], negated, tok, tokenizers,
        )
        # The tag budget's words about the idea's length belong to the tag form; the prose writer says its own.
        warnings = [w for w in warnings if w not in fit_warnings and "CLIP's 77 tokens" not in w]
    elif fam.form == "tags+phrases":
        written = _tags_and_phrases(fam, subject, extra_style + _enhancements(shown, cats, preset), shown, negative, tok)
    else:
        written = Written(positive=positive, negative=negative)
    return _spec(idea, idea_en, written, fam, checks, shown, language, preset, warnings, tok, tokenizers)


def _spec(idea: str, idea_en: str, written: Written, fam: PromptFamily, checks: list[Any], shown: str,
          language: str, preset: dict[str, str] | None, warnings: list[str], tok: Any,
          tokenizers: dict[str, Any] | None) -> PromptSpec:
    from ideaforge.agent.families import count_all

    if written.tokens is None:
        texts = {"positive": written.positive, "positive_2": written.positive_2, "positive_3": written.positive_3}
        written.tokens, written.estimated = count_all(fam, texts, tok, tokenizers)
    return PromptSpec(
        idea=idea,
        idea_en=idea_en,
        checks=checks,
        elements=elements(checks) or [shown],
        language=language,
        style=preset["name"] if preset else None,
        engine="rules",
        warnings=[*warnings, *(written.warnings or [])],
        positive_tokens=count(written.positive, tok),
        negative_tokens=count(written.negative, tok),
        family=fam.key,
        **{k: v for k, v in written.fields().items()},
    )


def _tags_and_phrases(fam: PromptFamily, subject: list[str], terms: list[str], shown: str, negative: str,
                      tok: Any) -> Written:
    """SDXL's prompts: the subject, the medium and its light as one short phrase, then tags; CLIP-G's prompt only
    where CLIP-L's had to leave style terms out (the compact subject with them)."""
    terms = [t for t in terms if t not in fam.drop_terms]
    light = next((t for t in terms if "light" in t or "glow" in t), None)
    medium = next((t for t in terms if "photograph" in t or "art" in t.split() or "painting" in t), None)
    if light and medium:
        at = terms.index(medium)
        terms = [t for t in terms if t not in (light, medium)]
        terms.insert(min(at, len(terms)), f"{medium} with {light}")
    positive, fit_warnings = fit_terms(subject + terms, tok, protected=len(subject))
    if fit_warnings:  # the idea alone is over CLIP-L's 77 tokens: its content words, as for `sd`
        positive, fit_warnings = fit_terms([compact_words(shown, _vocab()["_stopwords"]), *terms], tok, protected=1)
    kept = set(split_terms(positive))
    left = [t for t in terms if t not in kept]
    written = Written(positive=positive, negative=negative, warnings=fit_warnings)
    if left:
        short = compact_words(shown, _vocab()["_stopwords"])
        written.positive_2, _ = fit_terms([short, *left, *[t for t in terms if t in kept]], tok, protected=1)
    return written


TEXT_WARNING = (
    "the idea asks for written text: Stable Diffusion 1.x/2.x and SDXL render text poorly (expect misspellings); "
    "FLUX and SD 3.5 do better"
)
__all__ = ["rules_spec", "revise_rules", "get_style", "categories", "extract_elements"]


_WEIGHTED = re.compile(r"^\((?P<text>[^()]+)\)(?P<weight>\d+(?:\.\d+)?)$")


def revise_rules(spec: PromptSpec, weak: list[str], tokenizer: Any = None, *, step: float = 1.15, cap: float = 1.6) -> PromptSpec:
    """Deterministic revision: weakly depicted elements move to the front and gain emphasis.

    Emphasis uses compel's syntax, `(red kitten)1.3`; the diffusion tool builds the weighted embeddings with
    compel. An element already emphasized gains a little more each round, up to `cap`.

    Example:
        >>> from ideaforge.agent.rules import rules_spec, revise_rules
        >>> spec = rules_spec("a red kitten in a basket")
        >>> revise_rules(spec, ["basket"]).positive.split(", ")[0]
        '(basket)1.15'
    """
    from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

    tok = tokenizer if tokenizer is not None else load_clip_tokenizer()
    weights: dict[str, float] = {}
    rest: list[str] = []
    wanted = {w.lower() for w in weak}
    for term in split_terms(spec.positive):
        m = _WEIGHTED.match(term)
        text, weight = (m["text"], float(m["weight"])) if m else (term, 1.0)
        if text.lower() in wanted:
            weights[text.lower()] = weight
        elif m:
            rest.append(term)  # emphasis from earlier rounds stays
        else:
            rest.append(text)
    front = [f"({w}){round(min(weights.get(w.lower(), 1.0) * step, cap), 2):g}" for w in weak]
    terms = front + rest
    # Budget on the text the tokenizer will see; the emphasized elements and the idea itself are protected.
    keep = len(front) + 1
    while len(terms) > keep and count(plain_prompt(join_terms(terms)), tok) > 77:
        terms.pop()
    positive = join_terms(terms)
    warnings = list(spec.warnings)
    return spec.model_copy(
        update={"positive": positive, "positive_tokens": count(plain_prompt(positive), tok), "warnings": warnings}
    )
