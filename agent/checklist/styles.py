"""Style: the medium, the artist and the look of the picture, read from the idea's words."""

from __future__ import annotations

from collections.abc import Callable

from ideaforge.agent.checklist.words import Tok, _data, _forms


def read_styles(toks: list[Tok], add: Callable[..., None]) -> None:
    """Medium and artist words ("a watercolor painting", "art by X", "in the style of Y") become style checks."""
    d = _data()
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
                add("style", "image", f"{t.low} {' '.join(name)}")
                t.tag = "PUNCT"
                t.low = ","
            i = j
            continue
        if t.low == "by" and t.tag == "PREP" and _name_at(toks, i + 1) and not (i and toks[i - 1].tag == "VERB"):
            j = i + 1
            while j < len(toks) and _name_at(toks, j):
                j += 1
            add("style", "image", " ".join(x.text for x in toks[i:j]))  # "by Ralph Steadman": the artist
            for x in toks[i:j]:
                x.tag = "STYLE"
            i = j
            continue
        for ws in d["_style_starts"].get(t.low, ()):
            if tuple(lows[i:i + len(ws)]) == ws:
                add("style", "image", " ".join(ws))
                i += len(ws) - 1
                break
        i += 1


def _name_at(toks: list[Tok], i: int) -> bool:
    """A word of a person's name: capitalised and no common word of its own ('Peter Elson'), or unknown ('kyle')."""
    if i >= len(toks) or toks[i].tag in ("PUNCT", "DET", "NUM", "QUOTE", "CONJ", "PREP", "AUX", "REL", "PRON"):
        return False
    t = toks[i]
    tags = _forms(t.low)[0]
    return t.low.isalpha() and (not tags or (t.text[:1].isupper() and tags <= {"PROPN", "NOUN", "VERB"} and i > 0
                                             and (toks[i - 1].low == "by" or toks[i - 1].text[:1].isupper())))


_FRAGMENT_ENDS = {",", ".", ";", ":", "!", "?", "(", ")", "[", "]"}


def _flag(toks: list[Tok], i: int) -> int:
    """How many dashes start a command-line flag here: '--ar 16:9', '—ar 3:2', '--w 512' (not '--no people')."""
    dashes = 0
    while i + dashes < len(toks) and toks[i + dashes].tag == "PUNCT" and toks[i + dashes].low in ("-", "—", "–") \
            and (dashes == 0 or toks[i + dashes].start == toks[i + dashes - 1].end):
        dashes += 1
    if not dashes or i + dashes >= len(toks) or (dashes == 1 and toks[i].low == "-"):
        return 0
    word = toks[i + dashes]
    ok = word.start == toks[i + dashes - 1].end and word.low.isalpha() and len(word.low) <= 10 and word.low != "no"
    return dashes if ok else 0


def read_fragments(toks: list[Tok]) -> list[tuple[str, str]]:
    """Comma-separated modifiers of a run-on prompt ('…, 2d, matte, 8k, ultra wide angle, --ar 16:9').

    Such a fragment names no thing of its own: it says how the picture (its main subject) looks. Its words are
    tagged STYLE, so that they are not read as things or relation objects, and it is returned as a check's kind
    (`attribute` for plain properties like "matte red", `style` for the rest) and value.
    """
    d = _data()
    spans: list[tuple[int, int, bool]] = []  # start, end (token indices), follows a flag
    start, flagged = 0, False
    i = 0
    while i < len(toks):
        t = toks[i]
        dashes = _flag(toks, i)
        if dashes:
            spans.append((start, i, flagged))
            i += dashes
            start, flagged = i, True
            continue
        if t.tag == "PUNCT" and t.low in _FRAGMENT_ENDS and not (t.low == ":" and flagged):
            spans.append((start, i, flagged))
            start, flagged = i + 1, False
        i += 1
    spans.append((start, len(toks), flagged))
    commas = sum(1 for t in toks if t.low == ",")
    out: list[tuple[str, str]] = []
    previous_ok = False
    for n, (a, b, flagged) in enumerate(spans):
        words = [t for t in toks[a:b] if t.tag != "PUNCT"]
        if not words:
            continue
        if flagged:
            out.append(("style", " ".join(t.text for t in words)))
            for t in toks[a:b]:
                t.tag = "STYLE"
            previous_ok = True
            continue
        before = toks[a - 1] if a else None
        after_comma = before is not None and before.low in (",", ":", ";")
        modifier = n > 0 and after_comma and commas >= 1 and _modifier(words)
        if modifier and not previous_ok:
            last = toks[a - 2] if a >= 2 else None  # "the shirt is red, white and blue": one list of colours
            modifier = last is None or last.tag not in ("ADJ", "ADV", "AUX")
        previous_ok = modifier
        if not modifier:
            continue
        plain = all(t.low in d["_attr"] or t.tag == "ADV" or t.low in ("and", "or", "&") for t in words)
        out.append(("attribute" if plain else "style", " ".join(t.text for t in words)))
        for t in words:
            t.tag = "STYLE"
    return out


def _modifier(words: list[Tok]) -> bool:
    """Only adjectives, adverbs, participles, numbers and words about the picture's look; not just adverbs."""
    d = _data()
    if all(t.tag == "ADV" for t in words):
        return False
    for k, t in enumerate(words):
        if t.tag in ("ADJ", "ADV", "NUM", "STYLE"):
            continue
        if t.low in ("and", "or", "&") and 0 < k < len(words) - 1:
            continue  # "yellow and teal"
        if t.tag == "VERB" and t.low.endswith(("ed", "en")):
            continue
        if t.tag == "NOUN" and (t.low in d["_look_nouns"] or t.low in d["_skip_entities"]):
            continue
        if t.tag == "NOUN" and k + 1 < len(words) and words[-1].low in d["_look_nouns"]:
            continue  # "zenith view", "pincushion lens effect": a kind of view, of effect
        if t.tag == "NOUN" and k < _style_tail(words):
            continue  # "fantasy digital art", "portrait photography": a kind of the medium
        return False
    return True


def _style_tail(words: list[Tok]) -> int:
    """Where a medium word that ends the fragment starts ("… digital art" -> its index), or 0 if none does."""
    lows = tuple(t.low for t in words)
    starts = [len(lows) - len(ws) for ws in _data()["_style_words"] if len(ws) < len(lows) and lows[-len(ws):] == ws]
    return min(starts, default=0)
