"""The checklist: an idea read as atomic yes/no checks (entities, attributes, counts, relations, text, absent, style).

`analyze(idea_en)` is the rules engine's reader: offline, deterministic, driven by `prompts/checklist.json`. It
tags words with closed word lists and lemminflect's dictionary of English word forms (shipped in its wheel: no
download at run time), groups them into noun phrases and reads the words between phrases as relations, in the way
of a shallow parser. It also finds what the idea says must *not* be there ("a street without vehicles"), so the
prompt can leave it out and the negative prompt can name it.

`link(checks)` gives any list of checks (the rules engine's or a language model's) ids, yes/no questions and
DSG-style dependencies: an attribute, count, text or relation check presupposes the existence checks of the things
it is about.

Example:
    >>> from ideaforge.agent.checklist import analyze
    >>> a = analyze("a street without vehicles")
    >>> a.positive, a.negated
    ('an empty street', ['vehicles'])
    >>> [(c.kind, c.subject) for c in a.checks]
    [('entity', 'street'), ('absent', 'vehicles')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ideaforge import prompts
from ideaforge.agent.models import Check, LLMCheck
from ideaforge.tools._lazy import heavy_import

MAX_CHECKS = 48

# A quoted span, a word (inner hyphens and apostrophes kept: "rubik's", "car-free"), or punctuation.
_TOKEN = re.compile(
    r"(?P<q>\"[^\"]+\"|“[^”]+”|‘[^’]+’|(?<![\w'’])'[^']+'(?![\w]))"
    r"|(?P<w>[^\W_]+(?:[-'’.][^\W_]+)*)"
    r"|(?P<p>[.,;:!?()\[\]–—-])"
)
_SENTENCE_END = {".", ";", "!", "?", ":", "(", ")", "[", "]"}


# -- data ------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    d = dict(prompts.read_json("checklist.json"))
    sets = ["determiners", "pronouns", "pronouns_that_refer", "auxiliaries", "conjunctions", "relative", "adverbs",
            "particles", "colors", "materials", "sizes", "shapes", "textures", "not_attributes", "side_words",
            "verbs", "noun_ing", "ing_adjectives", "text_cues", "text_subjects", "frame_words", "skip_entities",
            "quantity_nouns", "container_nouns", "person_words", "plural_only", "mass_nouns", "body_parts", "clothing", "frame_of", "place_words", "time_words"]
    for name in sets:
        d["_" + name] = set(d[name])
    d["_attr"] = d["_colors"] | d["_materials"] | d["_sizes"] | d["_shapes"] | d["_textures"]
    d["_spatial"] = set(d["spatial_prepositions"])
    d["_prepositions_set"] = {p for p in d["prepositions"] if " " not in p}
    vocab = prompts.vocabulary()["categories"]
    d["_animate"] = d["_person_words"] | set(vocab["people"]["keywords"]) | set(vocab["animals"]["keywords"])
    d["_material_preps"] = set(d["material_prepositions"])
    neg = d["negation"]
    # Multi-word phrases by their first word, longest first: prepositions, numbers, negation and style cues.
    phrases: dict[str, list[tuple[tuple[str, ...], str, Any]]] = {}

    def add(text: str, kind: str, value: Any = None) -> None:
        ws = tuple(text.split())
        phrases.setdefault(ws[0], []).append((ws, kind, value))

    for t in neg["not_cues"]:
        add(t, "notneg")
    for t in neg["before"]:
        add(t, "neg")
    for t, n in d["number_words"].items():
        add(t, "num", n)
    for t in d["vague_counts"]:
        if " " in t and t not in d["number_words"] and t not in ("a group of",):
            add(t, "num", t.removesuffix(" of").removeprefix("a ") if t != "a few" else t)
    d["_vague"] = {t for t in d["vague_counts"] if " " not in t}
    for t in d["prepositions"]:
        add(t, "prep")
    for t in d["style_cues"]:
        add(t, "stylecue")
    for first in phrases:
        phrases[first].sort(key=lambda p: -len(p[0]))
    d["_phrases"] = phrases
    d["_style_words"] = sorted((tuple(s.split()) for s in d["style_words"]), key=len, reverse=True)
    d["_lead_in"] = sorted((tuple(s.split()) for s in neg["lead_in"]), key=len, reverse=True)
    d["_numbers_back"] = {v: k for k, v in d["number_words"].items() if " " not in k and v <= 20 and k not in
                          ("both", "single", "lone", "twin", "twins", "dozen")}
    return d


def _lemmas(word: str) -> dict[str, tuple[str, ...]]:
    lemminflect = heavy_import("lemminflect")
    return lemminflect.getAllLemmas(word)


@lru_cache(maxsize=65536)
def _forms(word: str) -> tuple[frozenset[str], str]:
    """The parts of speech a word can be, and its noun (else verb, else own) lemma."""
    found = _lemmas(word)
    tags = frozenset(found)
    for upos in ("NOUN", "VERB", "ADJ", "ADV", "PROPN"):
        if upos in found:
            return tags, found[upos][0]
    return tags, word


def lemma(word: str) -> str:
    """The dictionary form of an English word ('cats' -> 'cat', 'running' -> 'run'), lower case."""
    w = word.lower().strip("'’")
    if w.endswith(("'s", "’s")):
        w = w[:-2]
    return _forms(w)[1].lower()


# -- tokens ----------------------------------------------------------------------------------------------------------
@dataclass
class Tok:
    text: str
    low: str
    start: int
    end: int
    tag: str = ""  # DET NUM ADJ NOUN VERB AUX PREP CONJ REL PRON ADV NEG PUNCT QUOTE STYLE NEGSUF
    value: Any = None  # NUM: the number; PREP/NEG/STYLE: the phrase; QUOTE: the text


def _tokens(text: str) -> list[Tok]:
    out: list[Tok] = []
    for m in _TOKEN.finditer(text):
        if m.group("q"):
            raw = m.group("q")
            out.append(Tok(raw, raw.lower(), m.start(), m.end(), "QUOTE", raw[1:-1].strip()))
        elif m.group("w"):
            w = m.group("w").rstrip(".")
            out.append(Tok(w, w.lower().replace("’", "'"), m.start(), m.start() + len(w)))
            if len(w) < len(m.group("w")):
                out.append(Tok(".", ".", m.start() + len(w), m.end(), "PUNCT"))
        else:
            out.append(Tok(m.group("p"), m.group("p"), m.start(), m.end(), "PUNCT"))
    return out


_PART_OF = {"back", "side", "top", "front", "bottom", "edge", "corner", "tip", "roof", "door", "window", "handle",
            "surface", "face", "screen", "wall", "base", "rim", "lid", "cover", "seat", "wheel", "wheels", "legs"}
_ENDS = {"up", "down", "out", "off", "over", "away", "back", "forward", "around", "apart", "aside", "inside", "outside"}
_HAVE = {"with", "has", "have", "having", "wearing", "wears", "wear", "wore"}
_TEXT_LEADS = {"text", "words", "word", "caption", "message", "title", "slogan", "says", "saying", "reads", "reading",
               "titled", "entitled", "captioned", "labeled", "labelled"}


def _unquoted_text(toks: list[Tok], text: str) -> list[Tok]:
    """Text to be written without quotes: 'with the text Coffee is what i like', 'Show: MAY THE LORD OPEN'."""
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        lead = not t.tag and t.low in _TEXT_LEADS and i + 1 < len(toks) and not toks[i + 1].tag \
            and toks[i + 1].text[:1].isupper() and toks[i + 1].low not in ("on", "in", "at", "of", "with")
        caps = not t.tag and len(t.text) > 1 and t.text.isupper() and t.text.isalpha() and i + 1 < len(toks) \
            and toks[i + 1].text.isupper() and toks[i + 1].text.isalpha() and len(toks[i + 1].text) > 1
        if not (lead or caps):
            out.append(t)
            i += 1
            continue
        if lead:
            out.append(t)
            i += 1
        j = i
        while j < len(toks) and not toks[j].tag and (lead or toks[j].text.isupper()):
            j += 1
        span = toks[i:j]
        raw = text[span[0].start:span[-1].end]
        out.append(Tok(raw, raw.lower(), span[0].start, span[-1].end, "QUOTE", raw.strip()))
        i = j
    return out


def _merge_phrases(toks: list[Tok]) -> list[Tok]:
    """Multi-word cues become one token: 'in front of', 'a pair of', 'without any', 'in the style of'."""
    d = _data()
    out: list[Tok] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        match = None
        if not t.tag:
            for ws, kind, value in d["_phrases"].get(t.low, ()):
                n = len(ws)
                if tuple(x.low for x in toks[i:i + n]) == ws and all(not x.tag for x in toks[i:i + n]):
                    match = (n, kind, value)
                    break
        if match is None:
            out.append(t)
            i += 1
            continue
        n, kind, value = match
        span = toks[i:i + n]
        phrase = " ".join(x.low for x in span)
        merged = Tok(" ".join(x.text for x in span), phrase, span[0].start, span[-1].end)
        if kind == "notneg":
            # "no one", "not more than": not a negated object. Keep the words as ordinary tokens.
            for x in span:
                x.tag = "ADV" if x.low in ("no", "not", "more", "less", "than", "longer", "matter", "wonder") else ""
            out.extend(span)
            i += n
            continue
        merged.tag = {"neg": "NEG", "num": "NUM", "prep": "PREP", "stylecue": "STYLECUE"}[kind]
        merged.value = value if kind == "num" else phrase
        if n == 1:
            merged.tag = ""  # single words are tagged in context below
            merged.value = None
            out.append(t)
        else:
            out.append(merged)
        i += n
    return out


def _tag(toks: list[Tok]) -> None:
    """Parts of speech in context. Closed word classes come from the data file, open ones from lemminflect."""
    d = _data()
    n = len(toks)
    # First pass: what each word can be, on its own.
    for i, t in enumerate(toks):
        if t.tag:
            continue
        w = t.low
        if w.isascii() and w.isdigit() and len(w) < 7:
            t.tag, t.value = "NUM", int(w)
        elif w in d["_vague"] and i + 1 < len(toks) and toks[i + 1].tag in ("", "ADJ", "NOUN"):
            t.tag, t.value = "NUM", w  # "several people", "few leaves"
        elif w in d["number_words"] and w not in ("one", "single", "lone", "both"):
            t.tag, t.value = "NUM", d["number_words"][w]
        elif w in ("no", "without", "zero", "minus", "sans", "lacking"):
            t.tag, t.value = "NEG", w
        elif w.endswith("-free") and len(w) > 5:
            t.tag, t.value = "NEGSUF", t.text[: -len("-free")]
        elif w in d["_relative"]:
            t.tag = "REL"
        elif w in d["_determiners"]:
            t.tag = "DET"
        elif w in d["_pronouns"] and w != "one":
            t.tag = "PRON"
        elif w in d["_auxiliaries"] and w not in ("has", "have", "had", "looks", "look"):
            t.tag = "AUX"
        elif w in d["_conjunctions"]:
            t.tag = "CONJ"
        elif w.endswith(("'s", "’s")) and len(w) > 2:
            t.tag = "POSS"
        elif w.endswith(("-colored", "-coloured", "-haired", "-eyed", "-shaped", "-sized", "-tipped", "-striped")):
            t.tag = "ADJ"
    # Second pass: ambiguous words by their neighbours.
    for i, t in enumerate(toks):
        if t.tag:
            continue
        w = t.low
        prev = toks[i - 1] if i else None
        nxt = toks[i + 1] if i + 1 < n else None
        tags, _ = _forms(w)
        after_head = prev is not None and prev.tag in ("NOUN", "PRON", "QUOTE")
        if w == "one":
            t.tag, t.value = ("NUM", 1) if (nxt is not None and not nxt.tag and nxt.low not in d["_prepositions_set"]) else ("PRON", None)
            if prev is not None and prev.tag == "DET":
                t.tag = "PRON"
            continue
        if w == "both":
            t.tag, t.value = ("NUM", 2) if nxt is not None and nxt.tag in ("", "ADJ", "NOUN") else ("ADV", None)
            continue
        if w in d["_prepositions_set"]:
            if w in d["_adverbs"] and (nxt is None or nxt.tag in ("PUNCT", "CONJ", "REL")):
                t.tag = "ADV"
            else:
                t.tag, t.value = "PREP", w
            continue
        if w in ("has", "have", "had", "looks", "look"):
            t.tag = "VERB"
            continue
        if (w in d["_attr"] and w not in ("light", "dark")) or w in d["_not_attributes"]:
            t.tag = "ADJ"
            continue
        if w in d["_adverbs"] or (tags == {"ADV"}) or (w.endswith("ly") and "ADV" in tags and "NOUN" not in tags):
            t.tag = "ADV"
            continue
        if prev is not None and prev.tag == "REL" and "VERB" in tags and w not in d["_attr"]:
            t.tag = "VERB"  # "letters that read ..."
            continue
        if w.endswith("ing") and prev is not None and prev.tag == "AUX" and "VERB" in tags:
            t.tag = "VERB"
            continue
        if w.endswith("ing") and w not in d["_noun_ing"] and "VERB" in tags:
            before_noun = nxt is not None and (not nxt.tag or nxt.tag in ("NOUN", "ADJ")) and not _verbish(nxt.low)
            if (prev is None or prev.tag in ("DET", "ADJ", "NUM", "POSS", "PUNCT")) and before_noun:
                # "a flying car" (a participle) but "a dining table" (a compound noun)
                t.tag = "ADJ" if w in d["_ing_adjectives"] else "NOUN"
            elif prev is not None and prev.tag in ("DET", "POSS") and "NOUN" in tags:
                t.tag = "NOUN"  # "a painting"
            else:
                t.tag = "VERB"
            continue
        if w in d["_noun_ing"]:
            t.tag = "NOUN"
            continue
        if (w.endswith(("ed", "en")) or w in d["_verbs"]) and "VERB" in tags and "NOUN" not in tags:
            if prev is not None and prev.tag in ("DET", "ADJ", "POSS", "NUM") and nxt is not None and not nxt.tag:
                t.tag = "ADJ"  # "a crowded beach"
            else:
                t.tag = "VERB"
            continue
        if prev is not None and prev.tag == "AUX" and "VERB" in tags and (w.endswith(("ing", "ed", "en")) or w in d["_verbs"]):
            t.tag = "VERB"  # "is surfing", "is bent over"
            continue
        if w in d["_verbs"] and "VERB" in tags and after_head and (
                _starts_np_word(nxt) or (nxt is not None and (nxt.tag == "PREP" or nxt.low in d["_prepositions_set"]))):
            t.tag = "VERB"  # "person wear hat", "skis in box. basket has skis"
            continue
        if "ADJ" in tags and nxt is not None and nxt.tag in ("", "ADJ") and _open_class(nxt.low) and (
                {"NOUN", "ADJ"} & _forms(nxt.low)[0]) and not _verbish(nxt.low):
            t.tag = "ADJ"  # "two partial faces"
            continue
        if "NOUN" in tags or "PROPN" in tags or not tags:
            t.tag = "NOUN"
            continue
        if "ADJ" in tags:
            t.tag = "ADJ"
            continue
        if "VERB" in tags:
            t.tag = "VERB"
            continue
        t.tag = "NOUN"
    # Colour and material words that end a phrase are nouns of it ("dressed in black" keeps black as a value).
    for i, t in enumerate(toks):
        if t.tag == "ADJ" and t.low in ("light", "dark"):
            nxt = toks[i + 1] if i + 1 < n else None
            if nxt is None or nxt.tag not in ("ADJ", "NOUN", ""):
                t.tag = "NOUN" if i and toks[i - 1].tag in ("DET",) else "ADJ"


def _open_class(word: str) -> bool:
    """Not a word of the data file's closed classes (prepositions, determiners, conjunctions, pronouns...)."""
    d = _data()
    return not (word in d["_prepositions_set"] or word in d["_determiners"] or word in d["_conjunctions"]
                or word in d["_pronouns"] or word in d["_auxiliaries"] or word in d["_relative"])


def _verbish(word: str) -> bool:
    return word in _data()["_verbs"] and "NOUN" not in _forms(word)[0]


def _starts_np_word(t: Tok | None) -> bool:
    if t is None:
        return False
    if t.tag in ("DET", "NUM", "ADJ", "POSS", "QUOTE", "NOUN"):
        return True
    if t.tag:
        return False
    tags, _ = _forms(t.low)
    return "NOUN" in tags or "ADJ" in tags or not tags


# -- noun phrases ----------------------------------------------------------------------------------------------------
@dataclass
class NP:
    head: str  # the head noun as written
    words: list[str]  # compound: noun modifiers and head, as written ("traffic light", "person's head")
    adjectives: list[str] = field(default_factory=list)
    count: int | str | None = None  # a number, or a vague amount ("several")
    quote: str | None = None
    start: int = 0
    end: int = 0
    negated: bool = False
    quantity: str | None = None  # "a group of women": group
    owner: str | None = None  # "their left leg": their (resolved to whose leg while reading)
    owned: bool = False  # named with its owner ("the girl's hair"), which says the relation
    whole: NP | None = None  # "the back of an elephant": the elephant

    @property
    def subject(self) -> str:
        return " ".join(self.words)


@dataclass
class AP:
    """An adjective phrase with no noun: 'white', 'red and black', 'very tall'."""

    adjectives: list[str]
    start: int = 0
    end: int = 0


def _chunk(toks: list[Tok]) -> list[Any]:
    """Group tokens into noun phrases (NP) and adjective phrases (AP); other tokens pass through."""
    d = _data()
    out: list[Any] = []
    i, n = 0, len(toks)
    while i < n:
        t = toks[i]
        if t.tag not in ("DET", "NUM", "ADJ", "NOUN", "POSS", "ADV", "QUOTE") or (t.tag == "ADV" and not _np_ahead(toks, i)):
            out.append(t)
            i += 1
            continue
        if t.tag == "QUOTE" and not (i + 1 < n and toks[i + 1].tag == "NOUN"):
            out.append(t)
            i += 1
            continue
        start = i
        count: int | str | None = None
        adjectives: list[str] = []
        nouns: list[Tok] = []
        quote: str | None = None
        owner: str | None = None
        side: list[str] = []
        adverb: list[str] = []
        while i < n:
            t = toks[i]
            if t.tag == "DET":
                if nouns:
                    break
                if t.low in ("his", "her", "their", "its"):
                    owner = t.low
            elif t.tag == "NUM":
                if nouns:
                    break
                count = t.value
            elif t.tag == "ADV":
                if nouns or not _np_ahead(toks, i):
                    break
                adverb.append(t.low)  # "a very tall tree": very tall
            elif t.tag == "ADJ":
                if nouns and nouns[-1].tag != "POSS":
                    break
                if t.low in d["_side_words"] and i + 1 < n and toks[i + 1].tag == "NOUN":
                    side.append(t.low)  # "left leg" names a part; "left" is not a property of it
                elif adjectives and i and toks[i - 1].tag == "ADJ" and t.low in d["_colors"] \
                        and adjectives[-1].split()[-1] in d["_colors"] and not adverb:
                    adjectives[-1] = f"{adjectives[-1]} {t.low}"  # "dark brown", "light green"
                elif adjectives and i and toks[i - 1].low in ("and", "or", ",") and t.low in d["_colors"] \
                        and adjectives[-1].split()[-1] in d["_colors"]:
                    joint = " or " if toks[i - 1].low == "or" else " and "
                    adjectives[-1] = f"{adjectives[-1].replace(' and ', ', ')}{joint}{t.low}"  # "black and white"
                else:
                    adjectives.append(" ".join([*adverb, t.low]))
                adverb = []
            elif t.tag == "QUOTE":
                if nouns or not (i + 1 < n and toks[i + 1].tag == "NOUN"):
                    break
                quote = t.value
            elif t.tag in ("NOUN", "POSS"):
                nouns.append(t)
                if t.tag == "NOUN" and i + 1 < n and toks[i + 1].tag == "POSS":
                    pass
            elif t.tag in ("CONJ", "PUNCT") and t.low in ("and", ",", "or") and adjectives and not nouns \
                    and i + 1 < n and toks[i + 1].tag in ("ADJ", "ADV"):
                pass  # "a black and white cat", "a big, red ball"
            else:
                break
            i += 1
        if i == start:
            out.append(toks[i])
            i += 1
            continue
        span = toks[start:i]
        last_tok = toks[i - 1]
        clause_start = start == 0 or toks[start - 1].low in _SENTENCE_END
        if not nouns and adjectives and (span[0].tag == "DET" or clause_start) and last_tok.tag == "ADJ" \
                and " " not in adjectives[-1] and "NOUN" in _forms(last_tok.low)[0] and last_tok.low not in d["_sizes"]:
            # "a glass", "a remote and a joystick": a word that can be a noun, after an article, is one
            adjectives.pop()
            out.append(NP(last_tok.low, [last_tok.low], adjectives, count, quote, span[0].start, last_tok.end, owner=owner))
            continue
        if not nouns:
            if adjectives:
                # "straight down", "bent forward": a particle after the adjective belongs to it
                while i < n and toks[i].low in _ENDS and toks[i].tag in ("ADV", "PREP") and not (
                        i + 1 < n and toks[i + 1].tag in ("DET", "NUM", "ADJ", "NOUN", "POSS")):
                    adjectives[-1] = f"{adjectives[-1]} {toks[i].low}"
                    i += 1
                out.append(AP(adjectives, span[0].start, toks[i - 1].end))
            else:
                out.extend(span)
            continue
        # Colour and material nouns before the head are attributes ("a stone pedestal": stone); the rest is the name.
        words: list[str] = list(side)
        for k, nt in enumerate(nouns):
            last = k == len(nouns) - 1
            if not last and nt.low in ("color", "colour", "colored", "coloured"):
                continue  # "yellow color objects": the colour is said by the adjective
            if not last and nt.low in d["_attr"] and len(words) == len(side):
                adjectives.append(nt.low)
            else:
                words.append(nt.text if nt.text.isupper() or _proper(nt) else nt.low)
        if words[-1].lower() in ("color", "colour", "colors", "colours") and adjectives and len(words) == 1:
            out.append(AP(adjectives, span[0].start, span[-1].end))  # "in yellow and green color"
            continue
        # "a Disney graveyard photo": the photo is the frame, the graveyard the thing.
        if len(words) > 1 and words[-1].lower() in d["_frame_of"]:
            words = words[:-1]
        out.append(NP(words[-1], words, adjectives, count, quote, span[0].start, span[-1].end, owner=owner))
    return out


def _proper(t: Tok) -> bool:
    return t.text[:1].isupper() and not _forms(t.low)[0]


def _np_ahead(toks: list[Tok], i: int) -> bool:
    """An adverb begins a noun phrase only when adjectives and a noun follow ('a very tall tree')."""
    j = i
    while j < len(toks) and toks[j].tag == "ADV":
        j += 1
    return j < len(toks) and toks[j].tag == "ADJ"


# -- reading the phrases ---------------------------------------------------------------------------------------------
@dataclass
class Analysis:
    """What the rules reader found in an idea."""

    checks: list[Check]
    negated: list[str]  # the objects that must not be there, as written
    positive: str  # the idea with its negated parts removed (rephrased where natural)
    removed: list[tuple[int, int]] = field(default_factory=list)  # character spans of the idea left out


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.d = _data()
        self.raw: list[tuple[str, str, str | None, str | None]] = []  # kind, subject, value, object
        self.negated: list[NP] = []
        self.removed: list[tuple[int, int]] = []
        self.rephrase: dict[int, str] = {}  # NP start offset -> adjective to insert ("empty")
        self.history: list[NP] = []  # noun phrases read so far, for pronouns

    def add(self, kind: str, subject: str, value: str | None = None, obj: str | None = None) -> None:
        item = (kind, subject, value, obj)
        if subject and item not in self.raw:
            self.raw.append(item)

    def entity(self, np: NP) -> None:
        d = self.d
        if np.negated:
            return
        skip = (np.head.lower() in d["_skip_entities"] or np.subject.lower() in d["_skip_entities"]
                or np.subject.lower() in d["_time_words"] or (np.head.lower() in d["_place_words"] and len(np.words) == 1))
        if not skip:
            self.add("entity", np.subject)
        if np.quote:
            self.add("text", np.subject if not skip else "text", np.quote)
        if skip:
            return
        if np.count is not None and np.count != 0:
            self.add("count", np.subject, str(np.count))
        for adj in np.adjectives:
            if adj not in d["_not_attributes"] and adj not in d["_determiners"]:
                self.add("attribute", np.subject, adj)
        if np.quantity:
            self.add("attribute", np.subject, np.quantity)

    def run(self) -> None:
        toks = _merge_phrases(_unquoted_text(_tokens(self.text), self.text))
        _tag(toks)
        self._styles(toks)
        units = _chunk(toks)
        sentences: list[list[Any]] = [[]]
        for u in units:
            if isinstance(u, Tok) and u.tag == "PUNCT" and u.low in _SENTENCE_END:
                sentences.append([])
            else:
                sentences[-1].append(u)
        for s in sentences:
            if s:
                self._sentence(self._of_phrases(s))

    # "a group of women" -> women (a group); "a bottle of red wine" stays two things, related by "of".
    def _of_phrases(self, units: list[Any]) -> list[Any]:
        d = self.d
        out: list[Any] = []
        i = 0
        while i < len(units):
            u = units[i]
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and self.text[u.start:u.end].split()[-1][:1].isupper()
                    and self.text[units[i + 2].start:units[i + 2].end].split()[-1][:1].isupper()):
                name: NP = units[i + 2]  # "the Statue of Liberty", "Bank of America": one name
                name.words = [*u.words, "of", *name.words]
                name.head = name.words[-1]
                name.adjectives = u.adjectives + name.adjectives
                name.start = u.start
                out.append(name)
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and len(u.words) == 1 and not units[i + 2].owner
                    and (u.head.lower() in _PART_OF or lemma(u.head) in d["_body_parts"])):
                whole: NP = units[i + 2]  # "the back of an elephant": the elephant's back
                u.whole = whole
                u.words = [f"{whole.subject}'s", *u.words]
                out.append(u)
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and u.head.lower() in d["_quantity_nouns"] and len(u.words) == 1):
                inner: NP = units[i + 2]
                inner.start = u.start
                if inner.count is None and u.count is not None:
                    inner.count = u.count
                head = u.head.lower()
                if head in ("slice", "slices", "piece", "pieces", "bar", "bars", "loaf", "scoop", "chunk", "strip"):
                    inner.words = [f"{head} of", *inner.words]  # "a square slice of pizza": the slice is the thing
                    inner.adjectives = u.adjectives + inner.adjectives
                elif head not in ("set", "sets", "collection", "series", "variety", "varieties", "assortment", "array",
                                  "kinds", "types", "sorts", "number", "selection",
                                  "lot", "lots", "kind", "type", "sort", "bit", "bits", "amount", "plenty", "top",
                                  "side", "front", "back", "middle", "center", "centre", "edge", "corner", "rest",
                                  "part", "most", "view", "image", "picture", "shape", "full", "pair", "couple",
                                  "dozens", "hundreds", "thousands"):
                    inner.quantity = " ".join(["in a", *u.adjectives, head])  # "a tall stack of books": in a tall stack
                else:
                    inner.adjectives = u.adjectives + inner.adjectives
                out.append(inner)
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], Tok) and units[i + 2].tag == "NUM" and u.head.lower() in d["_quantity_nouns"]
                    and isinstance(units[i + 2].value, int)):
                before = next((x for x in reversed(out) if isinstance(x, NP)), None)
                if before is not None and before.count is None:
                    before.count = units[i + 2].value  # "cocktail napkins, set of four"
                i += 3
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], NP) and u.head.lower() in d["_frame_of"] and len(u.words) == 1):
                if u.adjectives:  # "a beautiful portrait of a woman": what kind of picture
                    self.add("style", "image", " ".join([*u.adjectives, u.head.lower()]))
                i += 2  # "a photo of a robot": the robot, read again ("a painting of the Statue of Liberty")
                continue
            if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                    and isinstance(units[i + 2], AP)):
                u.adjectives = u.adjectives + units[i + 2].adjectives  # "ten squares of purple"
                out.append(u)
                i += 3
                continue
            out.append(u)
            i += 1
        return out

    def _styles(self, toks: list[Tok]) -> None:
        """Medium and artist words ("a watercolor painting", "art by X", "in the style of Y") become style checks."""
        d = self.d
        lows = [t.low for t in toks]
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.tag == "STYLECUE":
                name = []
                j = i + 1
                while j < len(toks) and toks[j].tag != "PUNCT" and (
                        toks[j].low not in ("and", "with", "in", "on", "at")
                        or (toks[j].low == "and" and j + 1 < len(toks) and toks[j + 1].tag == "NOUN")):
                    name.append(toks[j].text)
                    toks[j].tag = "STYLE"  # the artist's name is the style, not a thing in the picture
                    j += 1
                if name:
                    self.add("style", "image", f"{t.low} {' '.join(name)}")
                    t.tag = "PUNCT"
                    t.low = ","
                i = j
                continue
            for ws in d["_style_words"]:
                if tuple(lows[i:i + len(ws)]) == ws:
                    self.add("style", "image", " ".join(ws))
                    i += len(ws) - 1
                    break
            i += 1

    def resolve(self, pronoun: str, exclude: list[NP], animate: bool = False) -> NP | None:
        """What a pronoun refers to: the latest fitting noun phrase ('it' a thing, 'they' many, 'he' a person).

        `animate`: the pronoun owns a body part ("its mouth"), so only a person or an animal fits.
        """
        d = self.d
        for np in reversed(self.history):
            if np in exclude or np.negated or "'s" in np.subject:
                continue
            if animate:
                if np.head.lower() in d["_animate"] or lemma(np.head) in d["_animate"]:
                    if pronoun not in ("they", "them", "their") or _plural(np.subject) or np.head.lower() in d["_person_words"]:
                        return np
                continue
            plural = _plural(np.subject) or np.count not in (None, 1) or np.quantity is not None
            if pronoun in ("they", "them", "their", "themselves") and not plural and np.head.lower() not in d["_person_words"]:
                continue
            if pronoun in ("it", "its", "itself") and (plural or np.head.lower() in d["_person_words"]):
                continue
            if pronoun in ("he", "him", "his", "himself", "she", "her", "herself") and (
                    plural or np.head.lower() not in d["_person_words"]):
                continue
            return np
        if pronoun in ("he", "him", "his", "himself", "she", "her", "herself", "they", "them", "their") and self.history:
            return self.history[0]  # the idea's first subject
        return None

    def _sentence(self, units: list[Any]) -> None:
        d = self.d
        subject: NP | None = None  # the clause's subject
        last: NP | None = None  # the last noun phrase
        group: list[NP] = []  # coordinated noun phrases ("a cat and a dog", "a hat, a vest and a tie")
        objects = False  # the group is the object of the last relation
        pred: list[str] = []  # the relation being read ("sitting on")
        pred_subject: list[NP] = []
        pred_verb = False
        last_pred: tuple[list[NP], str, bool] | None = None  # subjects, predicate, ends with a preposition
        front_prep: str | None = None  # "In the background, there is a tree": in
        front_place: NP | None = None  # ... the background
        neg: Tok | None = None
        neg_start: int | None = None
        after_aux = False
        prev: Any = None

        def flush() -> None:
            """A verb with no object: a state of its subject ("a person running", "a man is shaving")."""
            nonlocal pred
            if pred and pred_verb and pred_subject and (pred[-1] not in d["_prepositions_set"] or pred[-1] in _ENDS):
                for np in pred_subject:
                    if np is not None and not np.negated:
                        self.add("attribute", np.subject, " ".join(pred))
            pred = []

        def relate(np: NP) -> None:
            nonlocal pred, last_pred, objects, group
            predicate = " ".join(pred)
            self._relate(pred_subject, predicate, np)
            last_pred = (list(pred_subject), predicate, pred[-1] in d["_spatial"])
            pred = []
            group, objects = [np], True

        for k, u in enumerate(units):
            if isinstance(u, NP):
                if pred and not pred_subject:
                    pred = []  # "we can see a car": a verb with no subject in the picture says nothing about it
                if neg is not None:
                    u.negated = True
                    self._negate(u, neg_start if neg_start is not None else u.start, units, k, last or subject)
                    neg, neg_start = None, None
                    prev = u
                    continue
                part = (lemma(u.head) in d["_body_parts"] or u.head.lower() in d["_clothing"]) and "'s" not in u.subject
                own = self.text[u.start:u.end].lower()
                if part and not u.owner and (own.startswith("the ") or not own.startswith(("a ", "an ", "some "))):
                    u.owner = "its"  # "The right arm is extended" in a text about a person: the person's arm
                    ref = self.resolve("its", exclude=[u], animate=True)
                    if ref is not None:
                        u.words = [f"{ref.subject}'s", *u.words]
                elif u.owner:
                    ref = self.resolve(u.owner, exclude=[u], animate=part)
                    if ref is not None and ref.subject.lower() not in (w.lower() for w in u.words):
                        u.words = [f"{ref.subject}'s", *u.words]
                after = units[k + 1] if k + 1 < len(units) else None
                coordinated = isinstance(prev, Tok) and bool(group) and (
                    prev.low in ("and", "or") or (prev.low == "," and objects and not (
                        isinstance(after, Tok) and after.tag in ("REL", "VERB", "AUX"))))
                owner_pred = pred if pred and pred_subject else (last_pred[1].split() if coordinated and objects and last_pred else [])
                owners = pred_subject if pred else (last_pred[0] if last_pred else [])
                worn = u.head.lower() in d["_clothing"] or lemma(u.head) in d["_body_parts"]
                if owner_pred and (owner_pred[-1] in _HAVE or (owner_pred == ["in"] and worn)) and len(owners) == 1 \
                        and owners[0] is not None \
                        and (owner_pred[-1] not in ("with", "in") or ((u.adjectives or worn) and owners[0] is subject)) \
                        and owners[0].head.lower() not in d["_time_words"] | d["_skip_entities"] \
                        and not u.owner and "'s" not in u.subject and u.head.lower() not in d["_skip_entities"]:
                    u.words = [f"{owners[0].subject}'s", *u.words]  # "a girl with rainbow hair": the girl's hair
                    u.owned = True
                if u.whole is not None:
                    self.entity(u.whole)
                    self.history.append(u.whole)
                self.entity(u)
                self.history.append(u)
                if front_prep is not None and front_place is None and subject is None:
                    front_place = u  # the place of a fronted "In the background, ..."
                    prev = u
                    pred = []
                    continue
                if pred and pred_subject:
                    relate(u)
                elif coordinated and objects and last_pred is not None:
                    self._relate(last_pred[0], last_pred[1], u)  # "wearing a hat and a scarf"
                    group.append(u)
                elif coordinated:
                    group.append(u)
                else:
                    if front_place is not None and front_prep is not None and subject is None:
                        self._relate([u], front_prep, front_place)
                    group, objects = [u], False
                if subject is None:
                    subject = u
                last = u
                after_aux = False
            elif isinstance(u, AP):
                target = pred_subject if (pred or after_aux) and pred_subject else ([last] if last else [])
                for np in target:
                    if np is not None and not np.negated:
                        for adj in u.adjectives:
                            if pred and pred_verb:
                                self.add("attribute", np.subject, f"{' '.join(pred)} {adj}")  # "pressed back"
                            elif adj not in d["_not_attributes"]:
                                self.add("attribute", np.subject, adj)
                pred = []
            elif u.tag == "QUOTE":
                owner: NP | None = None
                if isinstance(prev, NP):
                    owner = prev  # "the word 'START'", "a computer with the word 'delete'": the word
                elif isinstance(prev, Tok) and prev.tag == "VERB" and pred_subject:
                    owner = pred_subject[0]  # "a sign that says ..."
                elif isinstance(prev, Tok) and prev.low in ("with", ":") and last is not None:
                    owner = last
                else:
                    owner = last
                self.add("text", owner.subject if owner is not None else "text", u.value)
                pred = []
            elif u.tag == "NEG":
                neg = u
                neg_start = self._lead_in(units, k)
            elif u.tag == "NEGSUF":
                self.negated.append(NP(u.value, [u.value], start=u.start, end=u.end, negated=True))
                self.removed.append((u.start, u.end))
            elif u.tag == "PRON":
                if u.low in d["_pronouns_that_refer"]:
                    ref = self.resolve(u.low, exclude=pred_subject if pred else [])
                    if ref is not None:
                        if pred and pred_subject:
                            relate(ref)
                        else:
                            subject = subject or ref
                            last = ref
                            group, objects = [ref], False
                        prev = ref
                        continue
            elif u.tag == "VERB":
                if pred and pred_verb and isinstance(prev, Tok) and prev.tag in ("VERB", "ADV", "AUX"):
                    pred.append(u.low)  # "appears to be leaning", "is being held"
                else:
                    flush()
                    if isinstance(prev, Tok) and prev.tag == "REL" and last is not None:
                        who = group if objects is False and last in group else [last]
                    elif isinstance(prev, NP):
                        if objects and last_pred is not None and last_pred[2]:
                            who = last_pred[0]  # "a man standing on the beach vacuuming sand": the man
                        elif objects and prev.owned and last_pred is not None:
                            who = last_pred[0]  # "a poodle wearing a cap holding a book": the poodle holds it
                        elif objects:
                            who = [prev]  # "a meme showing a cat attacking a shoe": the cat
                        else:
                            who = group if prev in group else [prev]
                    elif after_aux and pred_subject:
                        who = pred_subject
                    else:
                        who = group if (group and not objects) else ([subject] if subject else [])
                    pred_subject = [w for w in who if w is not None]
                    pred = [u.low]
                    pred_verb = True
                after_aux = False
            elif u.tag == "AUX":
                if not pred:
                    if objects and last_pred is not None:
                        pred_subject = last_pred[0]  # "a man in a white uniform is standing": the man
                    else:
                        pred_subject = group if (group and not objects) else ([last] if last else [])
                    pred_verb = False
                after_aux = True
            elif u.tag == "PREP":
                prep = u.value or u.low
                if pred and (pred_verb or (isinstance(prev, Tok) and prev.tag == "PREP")) and (
                        pred[-1] not in d["_spatial"] or isinstance(prev, Tok)):
                    pred.append(prep)  # "sitting on", "looking out of", "are down to"
                elif after_aux and not pred and pred_subject:
                    pred = [prep]  # "is on"
                    pred_verb = False
                elif last is None:
                    front_prep = prep  # a fronted place: the next noun phrase is where
                    pred = []
                else:
                    if objects and last_pred is not None and last_pred[2] and (prep in d["_spatial"] or prep == "with") \
                            and prev is last:
                        pred_subject = last_pred[0]  # "a cat on a mat under a tree": the cat, under the tree
                    else:
                        pred_subject = group if group and last in group else [last]
                    pred = [prep]
                    pred_verb = False
                after_aux = False
            elif u.tag in ("CONJ", "PUNCT"):
                if pred_verb and pred and u.low in (",", "and", "but", "while", "as", "when", "whereas", "–", "—", "-"):
                    flush()
                if u.low in ("while", "as", "when", "but", "whereas"):
                    pred = []
                    group, objects = [], False
                    after_aux = False
            elif u.tag == "REL":
                pred = []
            elif u.tag == "ADV" and pred_subject and (after_aux or (pred and pred_verb)) and u.low not in ("there", "also", "too", "all", "each", "both"):
                pred = [*pred, u.low]  # "the right arm is straight down", "bent forward"
                pred_verb = True
                if after_aux:
                    prev = u
                    continue
            prev = u
        flush()

    def _relate(self, subjects: list[NP], predicate: str, obj: NP) -> None:
        d = self.d
        head = obj.head.lower()
        for s in subjects:
            if s is None or s is obj or s.negated or obj.negated:
                continue
            if head in ("color", "colour", "colors", "colours", "shade", "tone"):
                continue
            if head in d["_frame_of"] and len(obj.words) == 1:
                if " of" in predicate:  # "in the center of the image": where in the picture
                    self.add("attribute", s.subject, f"{predicate} the {obj.subject}")
                continue  # "a woman in the image"
            if head in d["_time_words"] or obj.subject.lower() in d["_time_words"]:
                self.add("attribute", s.subject, f"{predicate} {obj.subject}")  # "at dusk"
                continue
            if head in d["_place_words"] and len(obj.words) == 1:
                self.add("attribute", s.subject, f"{predicate} the {obj.subject}")  # "in the center"
                continue
            if predicate in d["_material_preps"]:
                self.add("attribute", s.subject, f"{predicate} {obj.subject}")
                continue
            if s.head.lower() in d["_skip_entities"] or obj.head.lower() in d["_skip_entities"]:
                if obj.head.lower() in d["_skip_entities"] and predicate in d["_spatial"] and s.head.lower() not in d["_skip_entities"]:
                    self.add("attribute", s.subject, f"{predicate} the {obj.subject}")  # "in the center"
                continue
            self.add("relation", s.subject, predicate, obj.subject)

    def _lead_in(self, units: list[Any], k: int) -> int:
        """Where the negation's words start: 'that has no bananas', 'but no sandpipers', 'with no windows'."""
        start = units[k].start
        j = k - 1
        words: list[Tok] = []
        while j >= 0 and isinstance(units[j], Tok) and len(words) < 2:
            words.insert(0, units[j])
            j -= 1
        lows = tuple(t.low for t in words)
        for ws in self.d["_lead_in"]:
            if lows[-len(ws):] == ws:
                start = words[-len(ws)].start
                break
        return start

    def _negate(self, np: NP, start: int, units: list[Any], k: int, host: NP | None) -> None:
        """A negated object: out of the prompt (with what only refers to it: 'on it'), into `absent`."""
        end = np.end
        # The thing as the idea names it, adjectives included ("orange juice"), articles and quantifiers aside.
        name = re.sub(r"(?i)^(?:(?:a|an|the|any|some|its|their|his|her|single)\s+)+", "", self.text[np.start:np.end]).strip()
        name = name or np.subject
        j = k + 1
        # "a statue of a horse": the whole phrase is what must be absent.
        if j + 1 < len(units) and isinstance(units[j], Tok) and units[j].low == "of" and isinstance(units[j + 1], NP):
            units[j + 1].negated = True
            name = f"{name} of {self.text[units[j + 1].start:units[j + 1].end]}"
            end = units[j + 1].end
            j += 2
        # "without any books on it": the trailing place refers back to the host.
        if j + 1 < len(units) and isinstance(units[j], Tok) and units[j].tag == "PREP" \
                and (units[j].value or units[j].low) in ("on", "in", "inside", "within", "on top of", "at") \
                and isinstance(units[j + 1], Tok) and units[j + 1].tag == "PRON":
            end = units[j + 1].end
            if j + 2 < len(units) and isinstance(units[j + 2], Tok) and units[j + 2].tag == "POSS":
                end = units[j + 2].end
        elif j + 1 < len(units) and isinstance(units[j], Tok) and units[j].tag == "PREP" and isinstance(units[j + 1], NP) \
                and units[j + 1].words and units[j + 1].start < len(self.text) \
                and self.text[units[j + 1].start:units[j + 1].end].lower().startswith(("its ", "their ", "his ", "her ")):
            end = units[j + 1].end  # "no letters on its keyboard": the keyboard is the host's
        self.negated.append(NP(np.head, [name], start=start, end=end, negated=True))
        self.removed.append((start, end))
        if host is not None:
            word = self.d["negation"]["rephrase"].get(lemma(np.head))
            if word == "empty" and lemma(host.head) not in self.d["negation"]["empty_hosts"]:
                word = None  # "an empty street", but not "an empty dog"
            written = self.text[host.start:host.end].split()
            if (len(written) > 1 and written[-1][:1].isupper()) or host.head[:1].isupper() \
                    or host.head.lower() in self.d["_time_words"] | self.d["_skip_entities"]:
                word = None  # not "Ha empty Long Bay", not "at empty night"
            if word and word not in host.adjectives:
                self.rephrase[host.start] = word

    def positive(self) -> str:
        """The idea without its negated parts, rephrased where a word says it ("a street" -> "an empty street")."""
        text = self.text
        pieces: list[str] = []
        pos = 0
        inserts = sorted(self.rephrase.items())
        for start, end in sorted(self.removed):
            if start < pos:
                continue
            pieces.append(text[pos:start])
            pos = end
        pieces.append(text[pos:])
        out = "".join(pieces)
        # The insertions refer to offsets in the original; apply them before the cut, from the back.
        if inserts:
            out = text
            for start, end in sorted(self.removed, reverse=True):
                out = out[:start] + out[end:]
            for at, word in sorted(inserts, reverse=True):
                shift = sum(e - s for s, e in self.removed if e <= at)
                at -= shift
                out = _insert_adjective(out, at, word)
        out = re.sub(r"\s+([,.;:!?])", r"\1", out)
        out = re.sub(r"([,;:])\1+", r"\1", out)
        out = re.sub(r"\s{2,}", " ", out).strip(" ,;:")
        out = re.sub(r"(^|[.;!?]\s*)[,;:]\s*", r"\1", out)
        return out


def _insert_adjective(text: str, at: int, word: str) -> str:
    """Put `word` before the noun phrase that starts at `at`, after its article ('a street' -> 'an empty street')."""
    m = re.match(r"(?i)(an?|the|this|that|some)\s+", text[at:])
    if m:
        article = m.group(1)
        if article.lower() in ("a", "an"):
            article = ("an" if word[0] in "aeiou" else "a") if article.islower() else ("An" if word[0] in "aeiou" else "A")
        return text[:at] + f"{article} {word} " + text[at + m.end():]
    return text[:at] + f"{word} " + text[at:]


def analyze(idea_en: str) -> Analysis:
    """Read an English idea into checks, negated objects and the positive text without them. Deterministic."""
    reader = _Reader(idea_en)
    reader.run()
    checks = [LLMCheck(kind=kind, subject=subject, value=value, object=obj)  # type: ignore[arg-type]
              for kind, subject, value, obj in reader.raw]
    negated: list[str] = []
    for np in reader.negated:
        if np.subject not in negated:
            negated.append(np.subject)
    checks += [LLMCheck(kind="absent", subject=name) for name in negated]
    return Analysis(link(checks), negated, reader.positive(), sorted(reader.removed))


# -- questions, ids, dependencies, elements --------------------------------------------------------------------------
def _plural(subject: str) -> bool:
    last = subject.split()[-1].lower() if subject.split() else ""
    if last in _data()["_plural_only"]:
        return True
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ys")) and lemma(last) != last


def _article(subject: str) -> str:
    if _plural(subject) or (subject.split() and subject.split()[-1].lower() in _data()["_mass_nouns"]):
        return subject
    return ("an " if subject[:1].lower() in "aeiou" else "a ") + subject


def _ing(predicate: str) -> str:
    """'wear' -> 'wearing', 'sits on' -> 'sitting on'; prepositions and participles unchanged."""
    d = _data()
    first, _, rest = predicate.partition(" ")
    if first in d["_spatial"] or first in d["prepositions"] or first.endswith(("ing", "ed")) or first in d["_verbs"] and first.endswith("en"):
        return predicate
    tags, _ = _forms(first)
    if "VERB" not in tags:
        return predicate
    lemminflect = heavy_import("lemminflect")
    base = _lemmas(first).get("VERB", (first,))[0]
    ing = lemminflect.getInflection(base, "VBG")
    return " ".join([ing[0] if ing else first, rest]).strip()


def question(check: LLMCheck) -> str:
    """The check as a yes/no question in English, 'yes' meaning the image passes."""
    s, v, o = check.subject, check.value or "", check.object or ""
    be = "Are" if _plural(s) else "Is"
    if check.kind == "entity" and "'s " in s:
        owner, _, part = s.rpartition("'s ")
        return f"Does the {owner} have {_article(part)}?"
    if check.kind == "entity":
        return f"{'Are' if _plural(s) else 'Is'} there {_article(s)}?"
    if check.kind == "attribute":
        if v.split()[0] in _data()["_material_preps"] if v else False:
            return f"{be} the {s} {v}?"
        word = v.lower()
        verb = " " not in word and word not in _data()["_attr"] and (
            word in _data()["_verbs"] or _forms(word)[0] == frozenset({"VERB"}))
        return f"{be} the {s} {_ing(v) if verb else v}?"
    if check.kind == "count":
        n = int(v) if v.isascii() and v.isdigit() and len(v) < 7 else None
        if n is None:
            return f"Are there {v} {s}?"  # "Are there several people?"
        word = _data()["_numbers_back"].get(n, v)
        return f"Are there exactly {word} {s}?" if n != 1 else f"Is there exactly one {s}?"
    if check.kind == "relation":
        if o.lower().startswith(f"{s.lower()}'s "):
            o = o[len(s) + 3:]  # "the girl's hair": the girl has hair
        if v in ("with", "has", "have", "had", "having"):
            return f"Does the {s} have {_article(o)}?"
        if o != (check.object or ""):
            return f"{be} the {s} {_ing(v)} {_article(o)}?"
        return f"{be} the {s} {_ing(v)} the {o}?"
    if check.kind == "text":
        where = "the image" if s.lower() in ("text", "image") else f"the {s}"
        return f'Does {where} show the text "{v}"?'
    if check.kind == "absent":
        return f"Is the image free of any {s}?"
    if check.kind == "style":
        style = v or s
        cue = next((c for c in _data()["style_cues"] if style.lower().startswith(c + " ")), None)
        if cue is not None:  # "art by greg rutkowski", "in the style of van gogh"
            return f"Is the image in the style of {style[len(cue):].strip()}?"
        if style.lower().startswith(("in ", "inspired ", "trending ")):
            return f"Is the image {style}?"
        return f"Is the image {_article(style)}?"  # "Is the image a watercolor painting?"
    return f"Does the image show {s}?"


def _key(text: str | None) -> str:
    return " ".join(lemma(w) for w in re.findall(r"[^\W_]+", (text or "").lower()) if w not in ("a", "an", "the"))


def link(checks: Iterable[LLMCheck | Check | dict[str, Any]], limit: int = MAX_CHECKS) -> list[Check]:
    """Ids, questions and dependencies for checks from any engine, entities first for each thing named.

    Duplicates go; every attribute, count, text and relation check gets the entity checks of its subject (and
    object) as parents, adding an entity check where the list has none. `absent` and `style` checks stand alone.
    """
    items = [c if isinstance(c, LLMCheck) else LLMCheck.model_validate(c) for c in checks]
    out: list[Check] = []
    seen: set[tuple[str, str, str, str]] = set()
    entity_of: dict[str, int] = {}

    def push(c: LLMCheck) -> int | None:
        key = (c.kind, _key(c.subject), _key(c.value) if c.kind != "text" else (c.value or ""), _key(c.object))
        if key in seen or not c.subject.strip() or len(out) >= limit:
            return entity_of.get(_key(c.subject)) if c.kind == "entity" else None
        seen.add(key)
        parents: list[int] = []
        if c.kind in ("attribute", "count", "text", "relation"):
            for name in (c.subject, c.object) if c.kind == "relation" else (c.subject,):
                if not name or name.lower() in ("text", "image"):
                    continue
                pid = entity_of.get(_key(name))
                if pid is None:
                    pid = push(LLMCheck(kind="entity", subject=name))
                if pid is not None:
                    parents.append(pid)
        if len(out) >= limit:
            return None
        check = Check(id=len(out) + 1, kind=c.kind, subject=c.subject, value=c.value, object=c.object,
                      question=question(c), depends_on=parents)
        out.append(check)
        if c.kind == "entity":
            entity_of.setdefault(_key(c.subject), check.id)
        return check.id

    for c in items:
        if c.kind == "entity":
            push(c)
    for c in items:
        if c.kind != "entity":
            push(c)
    # Entities first in the idea's order, each followed by nothing else: re-number so that ids follow the list.
    return out


def elements(checks: list[Check], limit: int = 8) -> list[str]:
    """Short noun phrases for the entities, with their one-word attributes and counts: 'three green apples'."""
    out: list[str] = []
    for c in checks:
        if c.kind != "entity":
            continue
        key = _key(c.subject)
        adjs = [a.value for a in checks if a.kind == "attribute" and _key(a.subject) == key and a.value
                and len(a.value.split()) == 1 and a.value.lower() in _data()["_attr"]]
        count = next((a.value for a in checks if a.kind == "count" and _key(a.subject) == key and a.value), None)
        number = int(count) if count and count.isascii() and count.isdigit() and len(count) < 7 else None
        words = ([_data()["_numbers_back"].get(number, count)] if number is not None and count else []) + adjs[:2] + [c.subject]
        phrase = " ".join(words)
        if phrase.lower() not in (o.lower() for o in out):
            out.append(phrase)
        if len(out) == limit:
            break
    return out


__all__ = ["Analysis", "analyze", "link", "question", "elements", "lemma", "MAX_CHECKS"]
