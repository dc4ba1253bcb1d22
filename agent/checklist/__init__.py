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

from ideaforge.agent.checklist.questions import elements, link, question
from ideaforge.agent.checklist.reader import Analysis, analyze
from ideaforge.agent.checklist.words import MAX_CHECKS, lemma

__all__ = ["Analysis", "analyze", "link", "question", "elements", "lemma", "MAX_CHECKS"]
