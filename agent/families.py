"""How each model family's prompts are written and counted: forms, budgets, sentences and the checks' content.

A `PromptFamily` is what the prompt engines need to know of a model family: its prompt form (`tags` for SD 1.x/2.x,
`tags+phrases` for SDXL, `prose` for SD 3, FLUX and unknown pipelines), each text encoder's token budget and which
spec field it reads, and whether negatives and compel weighting apply. The form, budgets, negatives and weighting come
from the generation side's table (`ideaforge.tools.diffusion.family_named`, tools/data/families.json), so the two
never disagree; prompts/families.json adds what only the writers need (the LLM's instruction, sentence templates,
the positive form of each negative term).

Tokens are counted with each encoder's own tokenizer where one is at hand (a loaded model's); CLIP-L and CLIP-G share
CLIP's BPE, which ships offline. No T5 tokenizer ships offline, so without a loaded model T5 tokens are estimated by
`estimate_t5_tokens`, an upper bound by construction (see there), and the spec lists the estimated encoders.

Example:
    >>> flux = prompt_family("flux-schnell")
    >>> flux.form, flux.budgets, flux.negative_prompt, flux.reads
    ('prose', {'clip_l': 77, 't5': 256}, False, {'clip_l': 'positive', 't5': 'positive_2'})
    >>> covered("Three green apples on a wooden table.", [LLMCheck(kind="count", subject="apples", value="3")])
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ideaforge import prompts
from ideaforge.agent.budget import count
from ideaforge.agent.checklist import lemma
from ideaforge.agent.checklist.words import QUOTED
from ideaforge.agent.models import LLMCheck
from ideaforge.agent.text import stem, words

CLIP_TOKENS = 77
# The kinds whose words the CLIP encoders (and the critic) must read; `absent` is said in T5 prose only, `style`
# is the preset's or the medium's, stated in its own sentence.
CONTENT_KINDS = ("entity", "attribute", "count", "relation", "text")


@dataclass(frozen=True)
class PromptFamily:
    """What the prompt writers need to know of one model family."""

    key: str  # "sd", "sdxl", "sd3", "flux", "generic", or with a variant: "flux-schnell"
    name: str
    form: str  # "tags", "tags+phrases" or "prose"
    negative_prompt: bool
    weighting: bool
    budgets: dict[str, int]  # encoder -> tokens it reads, e.g. {"clip_l": 77, "t5": 512}
    reads: dict[str, str]  # encoder -> the spec field it reads: positive, positive_2, positive_3
    instruction: str  # the LLM's per-family block ("" for sd: today's request unchanged)
    drop_terms: frozenset[str]

    @property
    def t5(self) -> int | None:
        """The T5 budget, if the family has a T5 encoder."""
        return next((n for e, n in self.budgets.items() if not e.startswith("clip")), None)

    def budget_of(self, field: str) -> int:
        """The tokens the text in spec field `field` may have: the smallest budget of the encoders reading it."""
        found = [self.budgets[e] for e, f in self.reads.items() if f == field and e in self.budgets]
        return min(found) if found else CLIP_TOKENS


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    return prompts.read_json("families.json")


def writing_data() -> dict[str, Any]:
    """prompts/families.json: sentence templates and the positive form of negative terms."""
    return _data()


def prompt_family(family: Any = None) -> PromptFamily:
    """The prompt side of a family: a name ('flux', 'sd3-turbo'), a loaded model's `Family`, or None ('sd').

    A loaded generic pipeline's `Family` brings its own encoders and their limits; by name, `generic` assumes CLIP's 77
    tokens (its encoders are unknown until a model is loaded). An unknown name is an `InputError` naming the choices.
    """
    from ideaforge.tools.diffusion import family_named

    if isinstance(family, PromptFamily):
        return family
    if family is None:
        family = "sd"
    tool_family = family_named(family) if isinstance(family, str) else family
    spec = _data()["families"][tool_family.name]
    budgets = {e.name: int(e.max_tokens) for e in tool_family.encoders}
    reads = dict(spec["reads"])
    if "*" in reads:  # a generic pipeline: every encoder it has reads the one prompt
        budgets = budgets or {"clip_l": CLIP_TOKENS}
        reads = {e: reads["*"] for e in budgets}
    budget = min(budgets.values())
    instruction = spec["instruction"].replace("{t5}", str(budgets.get("t5", 0))).replace("{budget}", str(budget))
    return PromptFamily(
        key=tool_family.key,
        name=tool_family.name,
        form=tool_family.prompt_form,
        negative_prompt=bool(tool_family.negative_prompt),
        weighting=bool(tool_family.weighting),
        budgets=budgets,
        reads=reads,
        instruction=instruction,
        drop_terms=frozenset(spec.get("drop_terms", [])),
    )


# -- counting --------------------------------------------------------------------------------------------------
_PIECES = re.compile(r"[A-Za-z]+|[^\sA-Za-z]")


def estimate_t5_tokens(text: str) -> int:
    """An upper estimate of T5 tokens (EOS included) when no T5 tokenizer is at hand.

    T5's sentencepiece vocabulary (32,000 pieces) writes a common English word as one or two pieces; this counts a
    run of ASCII letters as one token per 4 letters, rounded up ("kitten" 2, "photography" 3), and every digit,
    punctuation mark and other character as a token of its own, plus EOS. That is more than T5 writes for English
    prose (about 1.3 pieces a word), so a text within a budget by this estimate is within it by T5's own count.

    Example:
        >>> estimate_t5_tokens("A red kitten in a basket.")  # A, red, kit|ten, in, a, bas|ket, ".", EOS
        10
    """
    total = 1
    for piece in _PIECES.findall(text):
        total += math.ceil(len(piece) / 4) if piece.isalpha() else 1
    return total


def count_for(encoder: str, text: str, clip: Any, tokenizers: Mapping[str, Any] | None = None) -> tuple[int, bool]:
    """Tokens of `text` for one encoder, and whether the count is an estimate.

    The encoder's own tokenizer when given (a loaded model's), else CLIP's for the CLIP encoders (CLIP-L and CLIP-G
    share its BPE), else the T5 estimate.
    """
    own = (tokenizers or {}).get(encoder)
    if own is not None:
        return count(text, own), False
    if encoder.startswith("clip"):
        return count(text, clip), False
    return estimate_t5_tokens(text), True


# -- sentences -------------------------------------------------------------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def sentence(text: str) -> str:
    """`text` as a sentence: capital first letter, a full stop at the end (quoted text kept as written)."""
    text = " ".join(text.split()).strip(" ,;")
    if not text:
        return ""
    if text[0].isalpha() and text[0].islower():
        text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def sentences(prose: str) -> list[str]:
    """The sentences of a prose prompt."""
    return [s.strip() for s in _SENTENCE_END.split(" ".join(prose.split())) if s.strip()]


def listing(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def fit_sentences(parts: Sequence[str], budget: int, counter: Any) -> tuple[str, list[str]]:
    """The leading sentences of `parts` that fit `budget` (per `counter(text)`), whole sentences only.

    The first sentence is kept even when it alone is over budget, cut at a word boundary. Returns the text and what
    was left out (the sentences, and the cut words of the first one).
    """
    parts = [p for p in parts if p]
    kept: list[str] = []
    for i, part in enumerate(parts):
        if counter(" ".join([*kept, part])) <= budget:
            kept.append(part)
            continue
        if kept:
            return " ".join(kept), parts[i:]
        pieces = part.split(" ")
        lo, hi = 1, len(pieces)
        while lo < hi:  # the longest prefix of words that fits
            mid = (lo + hi + 1) // 2
            if counter(" ".join(pieces[:mid])) <= budget:
                lo = mid
            else:
                hi = mid - 1
        return " ".join(pieces[:lo]).rstrip(" ,;"), [" ".join(pieces[lo:]), *parts[i + 1:]]
    return " ".join(kept), []


_LETTERS = re.compile(r"[a-z]")


def prose_like(text: str) -> bool:
    """Whether a prompt reads as sentences rather than a tag list: it ends like a sentence, its comma-separated
    pieces average three words or more (tags average two), and it has articles or verbs."""
    text = text.strip()
    if not text or text[-1] not in ".!?\"'":
        return False
    pieces = [p for p in re.split(r"[,.;!?]", text) if _LETTERS.search(p.lower())]
    mean = sum(len(p.split()) for p in pieces) / max(len(pieces), 1)
    ws = set(words(text))
    return mean >= 3 and bool(ws & {"a", "an", "the", "is", "are", "has", "have", "shows", "with", "sits", "stands"})


# -- the checks' content ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _number_names() -> dict[str, list[str]]:
    """'2' -> ['two', 'a pair of', 'pair of', ...]: every way prompts/checklist.json writes each number."""
    found: dict[str, list[str]] = {}
    for name, value in prompts.read_json("checklist.json")["number_words"].items():
        found.setdefault(str(value), []).append(name)
    return found


def _number_words() -> dict[str, str]:
    """'3' -> 'three': the one-word name of each number, where it has one."""
    return {v: next((n for n in names if " " not in n), names[0]) for v, names in _number_names().items()}


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    return frozenset(prompts.vocabulary()["stopwords"])


def check_words(check: LLMCheck) -> list[str]:
    """The content words of one check that the CLIP text must carry (text checks: the exact text, as one item)."""
    if check.kind not in CONTENT_KINDS:
        return []
    # "text" and "image" are the reader's placeholders for an unnamed owner ("'COFFEE' written on it"), not words
    # of the idea the prompt must carry.
    parts = [check.subject if check.subject.lower() not in ("text", "image") else "", check.object or ""]
    if check.kind != "text":
        parts.append(check.value or "")
    found = [w for p in parts for w in words(p) if w not in _stopwords()]
    if check.kind == "text" and check.value:
        found.append(check.value)
    return list(dict.fromkeys(found))


def _forms(word: str) -> set[str]:
    return {word, stem(word), lemma(word)}


def missing(text: str, checks: Sequence[LLMCheck]) -> list[str]:
    """The checks' content words that `text` lacks (in any form of the word; a count as digits or in words)."""
    present: set[str] = set()
    for w in words(text):
        present |= _forms(w)
    lost: list[str] = []
    for check in checks:
        for w in check_words(check):
            if check.kind == "text" and w == check.value:
                ok = w.lower() in text.lower()
            elif w.isdigit():
                spaced = " " + " ".join(words(text)) + " "
                ok = w in present or any(f" {n} " in spaced for n in _number_names().get(w, []))
            else:
                ok = bool(_forms(w) & present)
            if not ok and w not in lost:
                lost.append(w)
    return lost


def covered(text: str, checks: Sequence[LLMCheck]) -> bool:
    """Whether `text` carries every content word of the checks."""
    return not missing(text, checks)


_QUOTED = re.compile(QUOTED)


def compact_words(text: str, stopwords: set[str] | frozenset[str]) -> str:
    """The text without articles and prepositions, quoted text kept exactly as written."""
    out: list[str] = []
    pos = 0
    for m in _QUOTED.finditer(text):
        out.extend(w for w in text[pos:m.start()].split() if w.lower().strip(",.;:") not in stopwords)
        out.append(m.group(0))
        pos = m.end()
    out.extend(w for w in text[pos:].split() if w.lower().strip(",.;:") not in stopwords)
    return " ".join(out)


def first_tokens(text: str, tokenizer: Any, n: int = CLIP_TOKENS) -> str:
    """What a CLIP encoder reads of `text`: its first `n` tokens (BOS and EOS included), decoded."""
    ids = tokenizer(text, truncation=False, add_special_tokens=False, verbose=False)["input_ids"]
    return text if len(ids) <= n - 2 else tokenizer.decode(ids[: n - 2])


def check_phrases(checks: Sequence[LLMCheck]) -> list[str]:
    """The checks as short noun phrases: entities with their counts and attributes, then relations and texts."""
    attributes: dict[str, list[str]] = {}
    counts: dict[str, str] = {}
    for c in checks:
        if c.kind == "attribute" and c.value:
            attributes.setdefault(c.subject.lower(), []).append(c.value)
        elif c.kind == "count" and c.value:
            counts[c.subject.lower()] = _number_words().get(c.value, c.value)
    phrases: list[str] = []
    for c in checks:
        key = c.subject.lower()
        if c.kind == "entity":
            before = [a for a in attributes.get(key, []) if len(a.split()) == 1]
            after = [a for a in attributes.get(key, []) if len(a.split()) > 1]
            phrases.append(" ".join([counts.get(key, ""), *before, c.subject, *after]).strip())
        elif c.kind == "relation" and c.object:
            phrases.append(f"{c.subject} {c.value or 'with'} {c.object}")
        elif c.kind == "text" and c.value:
            phrases.append(f'{c.subject} reading "{c.value}"')
    return list(dict.fromkeys(p for p in phrases if p))


# -- negatives as positives ------------------------------------------------------------------------------------
def positive_negative(
    terms: Sequence[str], absent: Sequence[str], already: str = ""
) -> tuple[list[str], list[str], list[str]]:
    """For a family without a negative prompt: prose sentences saying the negative positively.

    Terms with the same positive form are said once, and not at all when `already` (the prose so far) says it; those
    whose form is a plain "no X" are said together ("no watermark, signature or border"). At most `MAX_SAID` other
    forms are said, so the sentence stays a sentence: the data's `always_said` terms (generic defects every image
    should avoid) first, then the rest in order (the subject's presets before the generic ones). Returns the
    sentences, the terms said and the terms left out (no positive form known, or past the limit).
    """
    table: dict[str, str] = _data()["positive_for_negative"]
    templates = _data()["sentences"]
    always = set(_data().get("always_said", []))
    ordered = sorted(terms, key=lambda t: t.lower().strip() not in always)
    said: list[str] = []
    phrases: list[str] = []
    nos: list[str] = []
    left: list[str] = []
    for term in ordered:
        phrase = table.get(term.lower().strip())
        if phrase is None:
            left.append(term)
            continue
        if phrase.lower() in already.lower():
            said.append(term)
            continue
        bucket = nos if phrase.startswith("no ") else phrases
        form = phrase.removeprefix("no ") if bucket is nos else phrase
        if form not in bucket and bucket is phrases and len(phrases) >= MAX_SAID:
            left.append(term)
            continue
        said.append(term)
        if form not in bucket:
            bucket.append(form)
    out: list[str] = []
    for group in _chunks(phrases):
        out.append(sentence(templates["positive_negative"].replace("{list}", listing(group))))
    if nos:
        out.append(sentence(templates["none"].replace("{list}", listing(nos).replace(" and ", " or "))))
    if absent:
        out.append(sentence(templates["absent"].replace("{list}", listing(list(absent)))))
    order = {t: i for i, t in enumerate(terms)}
    return out, sorted(said, key=order.__getitem__), sorted(left, key=order.__getitem__)


MAX_SAID = 8


# -- writing the family's prompts ------------------------------------------------------------------------------
@dataclass
class Written:
    """The family's prompts for one spec, with their token counts and what the writer could not do."""

    positive: str
    negative: str
    positive_2: str | None = None
    positive_3: str | None = None
    negative_note: str | None = None
    tokens: dict[str, int] | None = None
    estimated: list[str] | None = None
    warnings: list[str] | None = None

    def fields(self) -> dict[str, Any]:
        """The PromptSpec fields this sets."""
        return {
            "positive": self.positive, "negative": self.negative, "positive_2": self.positive_2,
            "positive_3": self.positive_3, "negative_note": self.negative_note, "tokens": self.tokens or {},
            "estimated_tokens": self.estimated or [],
        }


def prompt_for(spec: Any, encoder: str) -> str:
    """The prompt text encoder `encoder` reads of a spec (per its family): `positive`, `positive_2` or `positive_3`."""
    field = prompt_family(spec.family).reads.get(encoder, "positive")
    return getattr(spec, field, None) or spec.positive


def count_all(family: PromptFamily, texts: Mapping[str, str | None], clip: Any,
              tokenizers: Mapping[str, Any] | None = None) -> tuple[dict[str, int], list[str]]:
    """Tokens of the prompt each encoder reads (`texts`: spec field -> text), and the encoders estimated."""
    tokens: dict[str, int] = {}
    estimated: list[str] = []
    for encoder, field in family.reads.items():
        text = texts.get(field) or texts.get("positive") or ""
        tokens[encoder], guessed = count_for(encoder, text, clip, tokenizers)
        if guessed:
            estimated.append(encoder)
    return tokens, estimated


def _chunks(items: Sequence[str], size: int = 3) -> list[list[str]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def details_sentence(terms: Sequence[str], medium: str | None = None) -> str:
    """Style, lighting and composition terms as short sentences of at most three items each ('Wildlife photography
    with soft natural light and sharp focus. It also has ...'), so that they read as prose, not as a tag list."""
    templates = _data()["sentences"]
    terms = [t for t in terms if t and t != medium]
    groups = _chunks(terms)
    out: list[str] = []
    if medium:
        first = groups.pop(0) if groups else []
        out.append(sentence(templates["details"].replace("{Medium}", medium).replace("{list}", listing(first)))
                   if first else sentence(medium))
    for i, group in enumerate(groups):
        template = templates["details_no_medium"] if i == 0 and not out else templates["more"]
        out.append(sentence(template.replace("{list}", listing(group))))
    return " ".join(out)


def style_sentence(preset: Mapping[str, str]) -> str:
    """A style preset as a sentence: its kind of picture, with its own terms ('Watercolor painting, with soft ...')."""
    head, _, rest = preset["prompt"].partition("{prompt}")
    kind = re.sub(r"\s+(of|depicting)\s*$", "", head.strip(" ,")) or preset["description"].lower()
    tail = [t.strip() for t in (head.split(",")[:-1] + rest.split(",")) if t.strip() and t.strip() not in kind]
    return details_sentence(tail, kind)


def _names_word(text: str, word: str) -> bool:
    if word.lower() in text.lower():
        return True
    return bool(_forms(word.lower()) & {f for w in words(text) for f in _forms(w)})


def _phrases_for(lost: Sequence[str], checks: Sequence[LLMCheck]) -> list[str]:
    """The checks' phrases that name a word of `lost`, without one whose words another chosen phrase says."""
    phrases = [p for p in check_phrases(checks) if any(_names_word(p, w) for w in lost)]
    sets = [set(words(p)) for p in phrases]
    return [p for i, p in enumerate(phrases) if not any(i != j and sets[i] <= sets[j] and
                                                        (sets[i] != sets[j] or j < i) for j in range(len(sets)))]


def _with_checks(lead: list[str], checks: Sequence[LLMCheck], budget: int, clip_count: Any) -> tuple[list[str], list[str]]:
    """The leading sentences that carry the checks' words within `budget`: as written; reordered; the first ones
    completed by a sentence of the checks ('It shows ...'); the later ones condensed (articles and prepositions
    dropped); or built from the checks alone. The first of these that carries every word, else the one that misses
    fewest. Returns the sentences and the words still missing."""
    fitted, _ = fit_sentences(lead, budget, clip_count)
    if covered(fitted, checks):
        return sentences(fitted) if len(lead) > 1 else [fitted], []
    # The sentences that say more of the checklist first (an LLM may open with the mood).
    ranked = sorted(lead, key=lambda s: len(missing(s, checks)))
    fitted, _ = fit_sentences(ranked, budget, clip_count)
    if covered(fitted, checks):
        return sentences(fitted), []
    tries: list[list[str]] = []
    kept = sentences(fitted)
    for n in range(len(kept), 0, -1):
        phrases = _phrases_for(missing(" ".join(kept[:n]), checks), checks)
        tries.append([*kept[:n], sentence(_data()["sentences"]["checks"].replace("{list}", listing(phrases)))])
    # The idea's own sentences, the later ones without their articles and prepositions (CLIP reads words, not
    # grammar), as many left whole as fit.
    whole = [s for p in lead for s in sentences(p)]
    for n in range(len(whole) - 1, -1, -1):
        tries.append([*whole[:n], *(sentence(compact_words(s, _stopwords())) for s in whole[n:])])
    tries.append([sentence(listing(check_phrases(checks)))])
    best: tuple[list[str], list[str]] | None = None
    for trial in tries:
        text = " ".join(t for t in trial if t)
        if clip_count(text) > budget:
            continue
        lost = missing(text, checks)
        if not lost:
            return [t for t in trial if t], []
        if best is None or len(lost) < len(best[1]):
            best = [t for t in trial if t], lost
    if best is not None:
        return best
    alone, _ = fit_sentences(tries[-1], budget, clip_count)
    return [alone], missing(alone, checks)


def write_prose(
    family: PromptFamily,
    lead: Sequence[str],
    details: Sequence[str],
    checks: Sequence[LLMCheck],
    negative: str,
    negative_terms: Sequence[str],
    negated: Sequence[str],
    clip: Any,
    tokenizers: Mapping[str, Any] | None = None,
) -> Written:
    """A prose family's prompts: the CLIP prompts (subject and the checks' words within 77 tokens, then the style as
    fits) and the T5 prose (the whole lead, the style, and for FLUX the negative said positively) within its budget.

    `lead` are the subject's sentences, the idea's own words first; `details` the style, lighting and composition
    sentences; `negative` the negative prompt as written for a family that takes one, `negative_terms` and `negated`
    its content for one that does not.
    """
    warnings: list[str] = []
    lead = [s for s in lead if s]
    details = [s for s in details if s]
    content = [c for c in checks if c.kind in CONTENT_KINDS]

    def clip_count(text: str) -> int:
        return count_for("clip_l", text, clip, tokenizers)[0]

    clip_budget = min((n for e, n in family.budgets.items() if e.startswith("clip")), default=None)
    t5_encoder = next((e for e in family.budgets if not e.startswith("clip")), None)
    if clip_budget is None:  # a generic pipeline without CLIP encoders: its own encoder's budget
        clip_budget = family.budget_of("positive")
    head, lost = _with_checks(lead, content, clip_budget, clip_count)
    if lost:
        warnings.append(
            f"the checks' words {', '.join(map(repr, lost[:6]))} do not fit in the first {clip_budget} CLIP tokens "
            "with the subject; the CLIP encoders and the critic may not see them"
        )
    compact, _ = fit_sentences([*head, *details], clip_budget, clip_count)
    neg_sentences: list[str] = []
    note = None
    if not family.negative_prompt:
        terms = [t for t in negative_terms if t.lower() not in {n.lower() for n in negated}]
        neg_sentences, said, left = positive_negative(terms, negated, " ".join([*lead, *details]))
        parts = []
        if said or negated:
            shown = [*negated, *said]
            parts.append("said positively in the prompt instead (" + ", ".join(shown) + ")")
        if left:
            parts.append("left out (no positive form, or past the sentence's length): " + ", ".join(left))
        if parts:
            note = f"the {family.name} family takes no negative prompt; its content was " + "; ".join(parts)
            warnings.append(note)
        negative = ""
    # T5 reads the whole lead in its own order; a sentence of the checks only where the lead lacks their words.
    extra = [] if covered(" ".join(lead), content) else [s for s in head if s not in lead]
    t5_parts = [*lead, *extra, *details, *neg_sentences]
    written = Written(positive=compact, negative=negative, negative_note=note, warnings=warnings)
    if t5_encoder is not None and family.name != "generic":
        t5_budget = family.budgets[t5_encoder]
        prose, dropped = fit_sentences(t5_parts, t5_budget,
                                       lambda text: count_for(t5_encoder, text, clip, tokenizers)[0])
        if dropped:
            warnings.append(f"the prose was cut at a sentence boundary to fit {t5_encoder.upper()}'s {t5_budget} "
                            f"tokens; left out: {' '.join(dropped)[:120]!r}")
        setattr(written, family.reads[t5_encoder], prose)
        if family.reads.get("clip_g") == "positive_2":
            written.positive_2 = compact
    elif family.name == "generic":
        def widest(text: str) -> int:
            return max(count_for(e, text, clip, tokenizers)[0] for e in family.budgets)

        written.positive, _ = fit_sentences([*head, *[p for p in t5_parts if p not in head]],
                                            family.budget_of("positive"), widest)
    texts = {"positive": written.positive, "positive_2": written.positive_2, "positive_3": written.positive_3}
    written.tokens, written.estimated = count_all(family, texts, clip, tokenizers)
    return written
