"""Offline repair: a new prompt for exactly the checks an image failed (the rules engine's side of the loop).

Each failed check becomes a phrase that goes to the front of the positive prompt with emphasis (compel's
`(phrase)1.15`, a little more each round it keeps failing), the way people fix a Stable Diffusion prompt by hand:

- entity, attribute, style, text: the thing with its attribute ("red kitten"), the style, the quoted text;
- count: the number spelled out, and said to be exact ("exactly three apples");
- relation: the whole relation ("cat under a table");
- absent: the object is taken out of the positive prompt and goes first in the negative, emphasized.

Example:
    >>> from ideaforge.agent.rules import rules_spec
    >>> spec = rules_spec("a red circle and three blue squares, no triangles")
    >>> ids = {c.kind: c.id for c in spec.checks}
    >>> fixed = repair_rules(spec, [ids["count"], ids["absent"]])
    >>> fixed.positive.split(", ")[0], fixed.negative.split(", ")[0]
    ('(exactly three blue squares)1.15', '(triangles)1.3')
"""

from __future__ import annotations

import re
from typing import Any

from ideaforge.agent.budget import count
from ideaforge.agent.models import Check, PromptSpec
from ideaforge.agent.rules import _WEIGHTED, revise_rules
from ideaforge.agent.text import join_terms, split_terms
from ideaforge.tools.diffusion.weighting import plain_prompt

_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                 "twelve"]
_ABSENT_WEIGHT = 1.3


def phrase(check: Check, checks: list[Check]) -> str | None:
    """What to put first in the prompt for a failed check; None for `absent` (it goes to the negative)."""
    subject = check.subject
    if check.kind == "absent":
        return None
    if check.kind == "count" and check.value:
        n = check.value.strip()
        word = _NUMBER_WORDS[int(n)] if n.isdigit() and int(n) < len(_NUMBER_WORDS) else None
        colour = _attributes(check, checks)
        thing = f"{colour} {subject}".strip()
        return f"exactly {word or n} {thing}"
    if check.kind == "attribute" and check.value:
        value = check.value.strip()
        return f"{value} {subject}" if len(value.split()) <= 2 and not value.startswith(("in ", "on ")) else f"{subject} {value}"
    if check.kind == "relation" and check.value and check.object:
        return f"{subject} {check.value} {check.object}"
    if check.kind == "text" and check.value:
        return f'{subject} with the text "{check.value}"'
    if check.kind == "style" and check.value:
        return check.value
    return f"{_attributes(check, checks)} {subject}".strip()


def _attributes(check: Check, checks: list[Check]) -> str:
    """Short attributes of the same subject ("red"), so a repaired entity keeps its look."""
    values = [c.value for c in checks
              if c.kind == "attribute" and c.subject == check.subject and c.value and len(c.value.split()) == 1]
    return " ".join(dict.fromkeys(values))


def repair_rules(spec: PromptSpec, failed: list[int], tokenizer: Any = None) -> PromptSpec:
    """The spec with its prompts revised for the failed checks (ids of `spec.checks`), checklist unchanged."""
    from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

    tok = tokenizer if tokenizer is not None else load_clip_tokenizer()
    by_id = {c.id: c for c in spec.checks}
    chosen = [by_id[i] for i in failed if i in by_id]
    # A child check (the kitten is red) repairs its parent too: no separate phrase for "kitten"; a count's phrase
    # carries the thing's colour, so an attribute of a counted subject needs none of its own either.
    covered = {p for c in chosen for p in c.depends_on}
    counted = {c.subject for c in chosen if c.kind == "count"}
    covered |= {c.id for c in chosen if c.kind == "attribute" and c.subject in counted}
    front = [p for c in chosen if c.id not in covered and (p := phrase(c, spec.checks))]
    out = revise_rules(spec, list(dict.fromkeys(front)), tok) if front else spec.model_copy()
    absent = [c.subject for c in chosen if c.kind == "absent"]
    if absent:
        out = _keep_out(out, absent, tok)
    return out.model_copy(update={"checks": spec.checks})


def _keep_out(spec: PromptSpec, things: list[str], tok: Any) -> PromptSpec:
    """Take `things` out of the positive prompt and put them first in the negative, emphasized."""
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in things) + r")\b", re.IGNORECASE)
    positive = join_terms([t for t in split_terms(spec.positive) if not pattern.search(t)]) or spec.positive
    rest = []
    weights = {t.lower(): _ABSENT_WEIGHT for t in things}
    for term in split_terms(spec.negative):
        m = _WEIGHTED.match(term)
        text = m["text"] if m else term
        if text.lower() in weights:
            weights[text.lower()] = min(float(m["weight"]) + 0.1, 1.6) if m else _ABSENT_WEIGHT
        else:
            rest.append(term)
    negative_terms = [f"({t}){weights[t.lower()]:g}" for t in things] + rest
    while len(negative_terms) > len(things) and count(plain_prompt(join_terms(negative_terms)), tok) > 77:
        negative_terms.pop()
    negative = join_terms(negative_terms)
    return spec.model_copy(update={
        "positive": positive, "negative": negative,
        "positive_tokens": count(plain_prompt(positive), tok), "negative_tokens": count(plain_prompt(negative), tok),
    })
