"""Poses: what a body part does, read as one predicate ("left arm out to the side", "legs spread far apart").

Descriptions of a pose (PoseScript and the like) chain small clauses with no verb or punctuation between them:
"legs spread right arm up at shoulder level left arm bent at the elbow". Each clause is a body part and a
predicate; the predicate runs up to the next clause boundary (punctuation, "with", a relative or a subordinating
word, or a new body part) and is kept whole, with its adverbs, particles and places ("up at shoulder level").
"""

from __future__ import annotations

from typing import Any

from ideaforge.agent.checklist.phrases import AP, NP
from ideaforge.agent.checklist.words import Tok, _data, _forms, lemma

_STOPS = {"with", "while", "as", "when", "whereas", "because", "so", "but", "though", "although", "like", "if",
          "until", "then", "also"}
_MAX_WORDS = 10


def body_part(np: NP) -> bool:
    return lemma(np.head) in _data()["_body_parts"]


def participle(word: str) -> bool:
    """A past participle or a word that reads as one: 'bent', 'spread', 'crossed', 'raised'."""
    d = _data()
    return word in d["_verbs"] and not word.endswith(("s", "ing")) or (
        word.endswith("ed") and "VERB" in _forms(word)[0])


def new_clause(units: list[Any], j: int) -> bool:
    """Whether units[j] starts a new clause of a pose: a body part with no article before it ('right arm')."""
    u = units[j]
    if not isinstance(u, NP) or not body_part(u):
        return False
    before = units[j - 1] if j else None
    return not (isinstance(before, Tok) and before.tag == "PREP")


def predicate(text: str, units: list[Any], k: int) -> str | None:
    """The predicate of the body part at units[k], as written: 'bent back behind', 'out to the side'.

    After the part, an optional 'is'/'are', then words up to the clause's end. None when the part is not
    followed by a predicate of this kind (a verb that takes an object, as in 'hand holding a cup', is a relation).
    """
    d = _data()
    j = k + 1
    while j < len(units) and isinstance(units[j], Tok) and units[j].tag == "AUX":
        j += 1
    if j >= len(units):
        return None
    first = units[j]
    if isinstance(first, NP) or (j == k + 1 and isinstance(first, Tok) and first.tag == "PREP"
                                 and first.low not in d["_adverbs"]):
        return None  # "a hand on the table": a relation, read as one ("an arm up at shoulder level" is not)
    if isinstance(first, Tok) and first.tag not in ("ADV", "VERB", "PREP", "ADJ"):
        return None
    if isinstance(first, Tok) and first.tag == "VERB" and not participle(first.low) and j + 1 < len(units) \
            and isinstance(units[j + 1], NP):
        return None  # "hand holding a cup": the cup is an object, read as a relation
    start = first.start
    end = start
    words = 0
    m = j
    while m < len(units):
        u = units[m]
        if isinstance(u, Tok):
            if u.tag in ("PUNCT", "REL", "NEG", "QUOTE") or u.low in _STOPS:
                break
            if u.low in ("and", "or") and m + 1 < len(units) and (
                    isinstance(units[m + 1], NP) or (isinstance(units[m + 1], Tok) and units[m + 1].tag in (
                        "PRON", "DET", "AUX", "NUM"))):
                break  # "... and the left arm is ...", "... and he is ..."
            if u.tag == "CONJ" and u.low not in ("and", "or"):
                break
            if u.tag == "PRON" and u.low not in ("them", "it", "him", "her", "themselves", "himself", "herself"):
                break
        elif isinstance(u, NP):
            if new_clause(units, m):
                break
        elif not isinstance(u, AP):
            break
        end = u.end
        words += 1
        m += 1
    if end <= start or words > _MAX_WORDS:
        return None
    value = text[start:end].strip()
    if value.lower().split()[-1] in ("and", "or") or value.lower() in d["_determiners"]:
        value = " ".join(value.split()[:-1])
    return value or None
