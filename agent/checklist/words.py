"""Words of an idea: the data file, lemminflect's word forms, tokens and their parts of speech in context."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ideaforge import prompts
from ideaforge.tools._lazy import heavy_import

MAX_CHECKS = 48

# Text in quotes, the way ideas quote it: "…", “…”, ‘…’ or '…' (an apostrophe inside a word is not a quote).
QUOTED = r"\"[^\"]+\"|“[^”]+”|‘[^’]+’|(?<![\w'’])'[^']+'(?![\w])"
# A quoted span, a word (inner hyphens and apostrophes kept: "rubik's", "car-free"), or punctuation.
_TOKEN = re.compile(
    rf"(?P<q>{QUOTED})"
    r"|(?P<w>\d+:\d+(?![\w:])|[^\W_]+(?:[-'’.][^\W_]+)*)"
    r"|(?P<p>[.,;:!?()\[\]–—-])"
)
# A number with a unit or an ordinal ending: "2d", "8k", "35mm", "1080p", "20th", "1980s", "16:9".
_TECH = re.compile(r"^\d+(?:st|nd|rd|th|s|d|k|mm|cm|px|p|x|fps)$|^\d+:\d+$")
_SENTENCE_END = {".", ";", "!", "?", ":", "(", ")", "[", "]"}

# -- data ------------------------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    d = dict(prompts.read_json("checklist.json"))
    sets = ["determiners", "pronouns", "pronouns_that_refer", "auxiliaries", "conjunctions", "relative", "adverbs",
            "particles", "colors", "materials", "sizes", "shapes", "textures", "not_attributes", "side_words",
            "verbs", "noun_ing", "ing_adjectives", "text_cues", "text_subjects", "frame_words", "skip_entities",
            "quantity_nouns", "container_nouns", "person_words", "plural_only", "mass_nouns", "body_parts", "clothing", "frame_of", "place_words", "time_words",
            "look_nouns", "origins", "covering_verbs", "colour_shades", "classifiers"]
    for name in sets:
        d["_" + name] = set(d[name]["words"] if isinstance(d[name], dict) else d[name])
    d["_attr"] = d["_colors"] | d["_materials"] | d["_sizes"] | d["_shapes"] | d["_textures"] | d["_origins"]
    d["_spatial"] = set(d["spatial_prepositions"])
    d["_prepositions_set"] = {p for p in d["prepositions"] if " " not in p}
    vocab = prompts.vocabulary()["categories"]
    d["_animate"] = (d["_person_words"] | set(vocab["people"]["keywords"]) | set(vocab["animals"]["keywords"])) \
        - d["_body_parts"] - {w + "s" for w in d["_body_parts"]}  # "hands" tell of a person, but own nothing
    d["_material_preps"] = set(d["material_prepositions"])
    # What can have which parts: part lemma -> the owner lemmas of every kind of thing that has it.
    owners_of: dict[str, set[str]] = {}
    for kind, spec in d["parts_of"].items():
        if not kind.startswith("_"):
            for part in spec["parts"]:
                owners_of.setdefault(part, set()).update(spec["owners"])
    d["_owners_of"] = owners_of
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
    d["_style_starts"] = {}
    for ws in d["_style_words"]:  # longest first under each first word
        d["_style_starts"].setdefault(ws[0], []).append(ws)
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


@lru_cache(maxsize=65536)
def lemma(word: str) -> str:
    """The dictionary form of an English word ('cats' -> 'cat', 'running' -> 'run'), lower case."""
    w = word.lower().strip("'’")
    if w.endswith(("'s", "’s")):
        w = w[:-2]
    return _forms(w)[1].lower()


def _plural(subject: str) -> bool:
    last = subject.split()[-1].lower() if subject.split() else ""
    if last in _data()["_plural_only"]:
        return True
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ys")) and lemma(last) != last


def possessive(owner: str) -> str:
    """The owner as it is written before what it owns: "the girl's", "the apples'" (a plural in s takes just ')."""
    return f"{owner}'" if owner.endswith("s") and _plural(owner) else f"{owner}'s"


_OWNED = re.compile(r"(?:'s|(?<=s)')\s")


def owned(subject: str) -> tuple[str, str] | None:
    """A name written with its owner, split at the last possessive: "tree's leaves" -> ("tree", "leaves")."""
    found = list(_OWNED.finditer(subject))
    if not found:
        return None
    m = found[-1]
    return subject[:m.start()], subject[m.end():]


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
        elif _TECH.match(w):
            t.tag = "ADJ"  # "2d", "8k", "35mm", "20th", "1980s": a property of the picture or the thing
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
        if w in d["_colour_shades"] and nxt is not None and nxt.low in d["_colors"]:
            t.tag = "ADJ"  # "baby blue", "deep red": a shade of the colour
            continue
        if w in d["_classifiers"] and nxt is not None and not nxt.tag and "NOUN" in _forms(nxt.low)[0] \
                and nxt.low not in d["_colors"] \
                and not _verbish(nxt.low) and (prev is None or prev.tag != "AUX"):
            t.tag = "NOUN"  # "a human skeleton": a kind of skeleton, named so
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
            before_noun = nxt is not None and (not nxt.tag or nxt.tag in ("NOUN", "ADJ")) and not _verbish(nxt.low) \
                and nxt.low not in d["_prepositions_set"] and nxt.low not in _ENDS  # not "pointing down"
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
        back = i - 1
        while back > 0 and toks[back].tag == "ADV":
            back -= 1  # "and slightly bent"
        conj = toks[back] if back >= 0 and back < i else None
        before = toks[back - 1] if back >= 1 else None
        participle = ("VERB" in tags and (w in d["_verbs"] or w.endswith("ed"))) and (
            nxt is None or nxt.tag in ("PUNCT", "CONJ", "ADV", "PREP") or nxt.low in d["_prepositions_set"])
        if conj is not None and conj.low in ("and", "or", "but") and before is not None and ({"VERB", "ADJ"} & tags) \
                and ((before.tag in ("ADJ", "ADV", "VERB") and (w.endswith(("ed", "en")) or w in d["_verbs"]
                                                                 or "NOUN" not in tags)) or participle):
            # "legs forward and bent at the knees", "raised and bent": a second predicate, not a thing
            t.tag = "VERB" if before.tag == "VERB" and "VERB" in tags else ("ADJ" if "ADJ" in tags else "VERB")
            continue
        if (w.endswith(("ed", "en")) or w in d["_verbs"]) and "VERB" in tags and "NOUN" not in tags:
            lead = i - 1
            while lead >= 0 and toks[lead].tag == "ADV":
                lead -= 1  # "highly detailed art", "a professionally designed logo"
            ahead = lead >= 0 and toks[lead]
            title = t.text[:1].isupper() and prev is not None and prev.text[:1].isupper() and (i == 1 or toks[i - 2].tag == "PUNCT")
            if prev is not None and nxt is not None and not nxt.tag and (prev.tag in ("DET", "ADJ", "POSS", "NUM") or (
                    title and "NOUN" in _forms(nxt.low)[0]) or (
                    (prev.low in ("with", "of") or (prev.tag == "ADV" and (not ahead or ahead.tag in (
                        "DET", "ADJ", "POSS", "NUM", "PUNCT") or ahead.low in ("with", "of"))))
                    and "NOUN" in _forms(nxt.low)[0] and not _verbish(nxt.low))):
                t.tag = "ADJ"  # "a crowded beach", "with aged bones"
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
                ({"NOUN", "ADJ"} & _forms(nxt.low)[0]) or (nxt.low.endswith("ed") and i + 2 < n and not toks[i + 2].tag
                                                            and "NOUN" in _forms(toks[i + 2].low)[0])) \
                and not _verbish(nxt.low):
            t.tag = "ADJ"  # "two partial faces"
            continue
        if not tags and w.isalpha() and w.endswith("y") and nxt is not None and nxt.tag in ("", "ADJ") \
                and ({"NOUN", "ADJ"} & _forms(nxt.low)[0]):
            t.tag = "ADJ"  # "a floofy fluffy cat": a word no dictionary has, in an adjective's place
            continue
        if "NOUN" in tags or "PROPN" in tags or not tags:
            t.tag = "NOUN"
            continue
        if "ADJ" in tags:
            t.tag = "ADJ"
            continue
        if "VERB" in tags and prev is not None and prev.tag in ("NUM", "DET") and not w.endswith(("ing", "ed")) \
                and nxt is not None and not nxt.tag and "NOUN" in _forms(nxt.low)[0] and not _verbish(nxt.low):
            t.tag = "NOUN"  # "four ace cards", "a walk sign": a noun naming the kind
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


