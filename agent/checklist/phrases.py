"""Noun phrases (NP) and adjective phrases (AP) from tagged tokens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ideaforge.agent.checklist.words import _ENDS, _PART_OF, _SENTENCE_END, Tok, _data, _forms, lemma, possessive


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
    counted: str | None = None  # what the count is of, when not the whole name ("a set of six plates": plates)

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
        other = False
        side: list[str] = []
        adverb: list[str] = []
        while i < n:
            t = toks[i]
            if t.tag == "DET":
                if nouns:
                    break
                if t.low in ("his", "her", "their", "its", "your", "my", "our"):
                    owner = t.low
                elif t.low == "other":
                    other = True  # "the other hand": not the one named before
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
                elif adjectives and i and toks[i - 1].tag == "ADJ" and t.low in d["_colors"] and not adverb \
                        and adjectives[-1].split()[-1] in d["_colors"] | d["_colour_shades"]:
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
        if words[-1].lower() in ("color", "colour", "colors", "colours", "tones", "hues", "shades") and adjectives \
                and len(words) == 1:
            if words[-1].lower() not in ("color", "colour"):
                adjectives = [f"{' '.join(adjectives)} {words[-1].lower()}"]  # "muted pastel colors": said as a whole
            out.append(AP(adjectives, span[0].start, span[-1].end))  # "in yellow and green color"
            continue
        if other:
            words.insert(0, "other")
        if owner in ("your", "my", "our"):
            words.insert(0, owner)  # "your left leg": no one else's, and so named
        # "a Disney graveyard photo": the photo is the frame, the graveyard the thing.
        # But "an oil painting of a ship", "a pencil sketch of a horse": a picture of what follows, made with that.
        picture_of = i < n and toks[i].low == "of" and len(words) > 1 and words[-2].lower() not in d["_frame_of"]
        if len(words) > 1 and words[-1].lower() in d["_frame_of"] and not picture_of:
            words = words[:-1]
        out.append(NP(words[-1], words, adjectives, count, quote, span[0].start, span[-1].end, owner=owner))
    return out


def _proper(t: Tok) -> bool:
    return t.text[:1].isupper() and not _forms(t.low)[0]


def _np_ahead(toks: list[Tok], i: int) -> bool:
    """An adverb begins a noun phrase only when adjectives and a noun follow ('a very tall tree')."""
    d = _data()
    j = i
    while j < len(toks) and toks[j].tag == "ADV":
        if toks[j].low in _ENDS or toks[j].low == "apart":
            return False  # "legs spread far apart left arm down": the adverbs end a clause
        j += 1
    return j < len(toks) and toks[j].tag == "ADJ" and toks[j].low not in d["_side_words"]


# "a group of women" -> women (a group); "a bottle of red wine" stays two things, related by "of".
def of_phrases(text: str, units: list[Any], add: Callable[..., None]) -> list[Any]:
    """Noun phrases joined by "of": names, parts of a whole, quantities of a thing, pictures of it."""
    d = _data()
    out: list[Any] = []
    i = 0
    while i < len(units):
        u = units[i]
        if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                and isinstance(units[i + 2], NP) and text[u.start:u.end].split()[-1][:1].isupper()
                and text[units[i + 2].start:units[i + 2].end].split()[-1][:1].isupper()):
            name: NP = units[i + 2]  # "the Statue of Liberty", "Bank of America": one name
            name.words = [*u.words, "of", *name.words]
            name.head = name.words[-1]
            name.adjectives = u.adjectives + name.adjectives
            name.start = u.start
            out.append(name)
            i += 3
            continue
        if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                and isinstance(units[i + 2], NP) and len(u.words) == 1 and lemma(u.head) in d["named_collectives"]
                and (lemma(u.head) != "body" or units[i + 2].head.lower() in d["_mass_nouns"])):
            group: NP = units[i + 2]  # "a set of six plates", "a wall of windows", "a body of water": one thing
            if group.count is not None and u.count is None:
                group.counted = group.subject  # six plates, in one set
            group.words = [f"{u.head.lower()} of", *group.words]
            group.adjectives = u.adjectives + group.adjectives
            group.count = group.count if u.count is None else u.count
            group.start = u.start
            out.append(group)
            i += 3
            continue
        if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                and isinstance(units[i + 2], NP) and len(u.words) == 1 and not units[i + 2].owner
                and (u.head.lower() in _PART_OF or lemma(u.head) in d["_body_parts"])):
            whole: NP = units[i + 2]  # "the back of an elephant": the elephant's back
            u.whole = whole
            u.words = [possessive(whole.subject), *u.words]
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
            if len(u.words) > 1:  # "Crocheted Pot Holders set of three": three pot holders
                u.words = u.words[:-1]
                u.head = u.words[-1]
                u.count = units[i + 2].value
                out.append(u)
                i += 3
                continue
            before = next((x for x in reversed(out) if isinstance(x, NP)), None)
            if before is not None and before.count is None:
                before.count = units[i + 2].value  # "cocktail napkins, set of four"
            i += 3
            continue
        if (isinstance(u, NP) and i + 2 < len(units) and isinstance(units[i + 1], Tok) and units[i + 1].low == "of"
                and isinstance(units[i + 2], NP) and u.head.lower() in d["_frame_of"]):
            if u.adjectives or len(u.words) > 1:  # "a beautiful portrait of a woman", "an oil painting of": the kind
                add("style", "image", " ".join([*u.adjectives, *u.words[:-1], u.head.lower()]))
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
