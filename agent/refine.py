"""Offline refinement: a follow-up request ("make it night, add a ship") applied to a spec as edits, not pasted in.

Each clause of the request is read against `prompts/refine_rules.json`: removals ("no people", "remove the car"),
additions ("add a ship", "with a dog"), framing ("closer", "from above"), time of day and weather ("make it night"
replaces "at dusk"), style switches ("as a watercolor"), colour changes ("make the car blue"). The edited idea is
then written out again by the rules engine, so the checklist follows the edit: what is removed becomes an `absent`
check, what is added an entity. Instruction words ("make", "add", "please") never reach the prompt or the checks.

Example:
    >>> from ideaforge.agent.refine import edit_idea
    >>> edit_idea("a lighthouse in a storm at dusk", "make it night, add a ship")[0]
    'a lighthouse in a storm at night with a ship'
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ideaforge import prompts
from ideaforge.agent.checklist import lemma
from ideaforge.agent.models import PromptSpec
from ideaforge.agent.rules import rules_spec
from ideaforge.agent.text import MAX_IDEA_CHARS
from ideaforge.errors import InputError


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    d = dict(prompts.read_json("refine_rules.json"))
    colours = prompts.read_json("checklist.json")["colors"]
    d["_colours"] = sorted(colours, key=len, reverse=True)
    d["_instruction"] = set(d["instruction_words"])
    return d


def _alternation(phrases: list[str]) -> str:
    return "|".join(re.escape(p) for p in sorted(phrases, key=len, reverse=True))


def _has(text: str, phrases: list[str]) -> bool:
    return re.search(rf"(?<![\w-])(?:{_alternation(phrases)})(?![\w-])", text) is not None


def _clauses(request: str) -> list[str]:
    verbs = r"add|make|remove|put|include|turn|change|give|no|without|as|from|closer|wider|zoom|delete|paint|drop"
    parts = re.split(rf"\s*(?:[,;]|\bthen\b|\band\b(?=\s+(?:{verbs})\b))\s*", request.strip().rstrip(".!"))
    return [p.strip() for p in parts if p and p.strip()]


def _replace_group(idea: str, groups: dict[str, list[str]], new: str) -> str:
    """Take out every phrase of the group ('at dusk', 'golden hour'), put `new` where the first one was."""
    phrases = [p for ps in groups.values() for p in ps]
    pattern = re.compile(rf"(?i)(?:\s*,)?\s*(?:\b(?:at|in|during|on|under|by)\s+(?:the\s+|a\s+|an\s+)?)?"
                         rf"(?<![\w-])(?:{_alternation(phrases)})(?![\w-])")
    first = pattern.search(idea)
    if first is None:
        return f"{idea} {new}"
    out = idea[: first.start()] + " " + new + pattern.sub("", idea[first.end():])
    return re.sub(r"\s{2,}", " ", out).strip()


def _strip_instructions(text: str) -> str:
    words = [w for w in re.findall(r"[\w'-]+", text) if w.lower() not in _data()["_instruction"]]
    return " ".join(words)


def _thing(text: str) -> str:
    """What a clause names, without cue words: 'remove the red car' -> 'the red car'."""
    d = _data()
    cues = sorted(d["remove_cues"] + d["add_cues"], key=len, reverse=True)
    text = re.sub(rf"(?i)^(?:{_alternation(cues)})\s+", "", text.strip())
    text = re.sub(r"(?i)\b(?:please|too|as well|also|in it|to it|to the image|to the picture|from it|from the image|from the picture)\b", "", text)
    return re.sub(r"\s{2,}", " ", text).strip(" ,.")


_LINK = r"(?:with|and|in|on|of|at|under|near|by|to|from|without|behind|beside|over)"


def _np(head: str) -> str:
    """A noun phrase of the idea whose head is `head`: an article or number, up to two words, the head."""
    stem = re.escape(lemma(head))
    return (rf"(?:\b(?:a|an|the|some|two|three|four|five|\d+)\s+)?(?:(?!{_LINK}\b)[\w-]+\s+){{0,2}}?"
            rf"\b{stem}(?:s|es)?\b")


def _remove(idea: str, thing: str) -> str:
    head = thing.split()[-1] if thing.split() else thing
    np = _np(head)
    out = idea
    for pattern, by in ((rf"\bwith\s+{np}\s+and\b", "with"), (rf"\s*(?:,|\band\b|\bwith\b)\s+{np}", ""),
                        (rf"{np}\s*(?:,|\band\b)\s*", ""), (np, "")):
        out, n = re.subn(rf"(?i){pattern}", by, idea, count=1)
        if n:
            break
    out = re.sub(r"\s{2,}", " ", out).strip(" ,")
    bare = re.sub(r"(?i)^(?:the|a|an|any|some|all)\s+", "", thing)
    return f"{out} without {bare}"


def _recolour(idea: str, thing: str, colour: str) -> str | None:
    head = thing.split()[-1]
    m = re.search(rf"(?i)\b{re.escape(lemma(head))}(?:s|es)?\b", idea)
    if m is None:
        return None
    before = idea[: m.start()]
    colours = _alternation(_data()["_colours"])
    # The colour words right before the thing go; the new colour takes their place.
    before = re.sub(rf"(?i)(?:\b(?:{colours})\b(?:\s+and\s+|\s*,\s*|\s+))+$", "", before)
    return f"{before}{colour} {idea[m.start():]}"


def edit_idea(idea: str, request: str, style: str | None = None) -> tuple[str, str | None, list[str]]:
    """The idea with the request's edits applied, the style to use, and what could not be read."""
    d = _data()
    notes: list[str] = []
    for clause in _clauses(request):
        low = clause.lower()
        colours = _alternation(d["_colours"])
        if re.match(rf"^(?:{_alternation(d['remove_cues'])})\b", low):
            thing = _thing(clause)
            if thing:
                idea = _remove(idea, thing)
                continue
        if re.match(r"^(?:add|adding|include|put|place|insert|plus|with|there should be|give it)\b", low):
            thing = _thing(clause)
            if thing:
                idea = f"{idea} with {thing}"
                continue
        frame = next((name for name, ps in d["framing"].items() if _has(low, ps)), None)
        if frame is not None:
            idea = _replace_group(idea, d["framing"], f", {frame}")
            continue
        time = next((name for name, ps in d["time"].items() if _has(low, ps)), None)
        if time is not None:
            idea = _replace_group(idea, d["time"], d["time_phrase"][time])
            continue
        weather = next((name for name, ps in d["weather"].items() if _has(low, ps)), None)
        if weather is not None:
            idea = _replace_group(idea, d["weather"], d["weather_phrase"][weather])
            continue
        m = re.match(rf"^(?:{_alternation(d['color_cues'])})\s+(?:the\s+|its\s+|it\s+)?(?P<thing>.+?)\s+(?:to\s+|into\s+)?"
                     rf"(?P<colour>(?:{colours})(?:\s+and\s+(?:{colours}))?)$", low)
        if m is not None:
            recoloured = _recolour(idea, m["thing"], m["colour"])
            idea = recoloured if recoloured is not None else f"{idea} with a {m['colour']} {m['thing']}"
            continue
        named = next((name for name, ps in d["style_aliases"].items()
                      if re.fullmatch(rf"(?:(?:{_alternation(d['style_cues'])})\s+)?(?:a\s+|an\s+|the\s+)?"
                                      rf"(?:{_alternation(ps)})(?:\s+style|\s+painting|\s+art)?", low)), None)
        if named is not None:
            style = named
            continue
        words = _strip_instructions(clause)
        if words:
            idea = f"{idea}, {words}"
            if words.lower() != low:
                notes.append(f"the rules engine read {clause!r} as {words!r}")
        else:
            notes.append(f"the rules engine could not read {clause!r} as a change; configure an LLM for free-form requests")
    idea = re.sub(r"\s+,", ",", idea)
    return re.sub(r"\s{2,}", " ", idea).strip(" ,"), style, notes


def refine_rules(spec: PromptSpec, request: str, tokenizer: Any) -> PromptSpec:
    """Apply a follow-up request to a spec offline: the idea is edited, then written out by the rules engine."""
    idea, style, notes = edit_idea(spec.idea_en, request, spec.style)
    if len(idea) > MAX_IDEA_CHARS:
        raise InputError(
            f"the refined idea is {len(idea):,} characters long, over the {MAX_IDEA_CHARS:,}-character limit; "
            "start a new idea that says the picture's essentials"
        )
    out = rules_spec(idea, style=style, tokenizer=tokenizer)
    return out.model_copy(update={"idea": f"{spec.idea}; {request}", "warnings": [*notes, *out.warnings]})
