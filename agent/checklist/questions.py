"""Checks as yes/no questions, with ids, DSG-style dependencies and the compatible `elements`."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ideaforge.agent.checklist.words import MAX_CHECKS, _data, _forms, _lemmas, _plural, lemma, owned, possessive
from ideaforge.agent.models import Check, LLMCheck
from ideaforge.tools._lazy import heavy_import


# -- questions, ids, dependencies, elements --------------------------------------------------------------------------
def _article(subject: str) -> str:
    if _plural(subject) or (subject.split() and subject.split()[-1].lower() in _data()["_mass_nouns"]):
        return subject
    return ("an " if subject[:1].lower() in "aeiou" else "a ") + subject


def _the(subject: str) -> str:
    """'the cat', but 'your left leg' and 'someone' as they are."""
    first = subject.split()[0].lower() if subject.split() else ""
    return subject if first in ("your", "my", "our", "someone", "somebody", "everyone", "everybody") else f"the {subject}"


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
    split = owned(s) if check.kind == "entity" else None
    if split is not None:
        owner, part = split
        return f"{'Do' if _plural(owner) else 'Does'} {_the(owner)} have {_article(part)}?"
    if check.kind == "entity":
        return f"{'Are' if _plural(s) else 'Is'} there {_article(s)}?"
    if check.kind == "attribute":
        if v.split()[0] in _data()["_material_preps"] if v else False:
            return f"{be} {_the(s)} {v}?"
        word = v.lower()
        verb = " " not in word and word not in _data()["_attr"] and (
            word in _data()["_verbs"] or _forms(word)[0] == frozenset({"VERB"}))
        return f"{be} {_the(s)} {_ing(v) if verb else v}?"
    if check.kind == "count":
        n = int(v) if v.isascii() and v.isdigit() and len(v) < 7 else None
        if n is None:
            return f"Are there {v} {s}?"  # "Are there several people?"
        word = _data()["_numbers_back"].get(n, v)
        return f"Are there exactly {word} {s}?" if n != 1 else f"Is there exactly one {s}?"
    if check.kind == "relation":
        if o.lower().startswith(f"{possessive(s).lower()} "):
            o = o[len(possessive(s)) + 1:]  # "the girl's hair": the girl has hair
        if v in ("with", "has", "have", "had", "having"):
            return f"{'Do' if _plural(s) else 'Does'} {_the(s)} have {_article(o)}?"
        if o != (check.object or ""):
            return f"{be} {_the(s)} {_ing(v)} {_article(o)}?"
        return f"{be} {_the(s)} {_ing(v)} {_the(o)}?"
    if check.kind == "text":
        where = "the image" if s.lower() in ("text", "image") else _the(s)
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

