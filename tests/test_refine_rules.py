"""Offline refinement as edits (ideaforge.agent.refine): the follow-ups people type, applied to the idea."""

from __future__ import annotations

import pytest

from ideaforge.agent.chain import PromptChain
from ideaforge.agent.checklist import lemma
from ideaforge.agent.settings import load_settings
from ideaforge.agent.text import words

INSTRUCTIONS = {"make", "add", "remove", "please", "turn", "change", "closer"}


@pytest.fixture(scope="module")
def chain() -> PromptChain:
    return PromptChain(load_settings(engine="rules"))


def _refine(chain: PromptChain, idea: str, request: str):
    return chain.refine(chain.optimize(idea), request)


def _check_words(spec) -> set[str]:
    return {w for c in spec.checks for part in (c.subject, c.value or "", c.object or "") for w in words(part)}


def test_the_lighthouse_example(chain: PromptChain) -> None:
    spec = _refine(chain, "a lighthouse in a storm at dusk", "make it night, add a ship")
    assert spec.positive.startswith("a lighthouse in a storm at night with a ship")
    assert "dusk" not in spec.positive
    assert not INSTRUCTIONS & set(words(spec.positive)) and not INSTRUCTIONS & _check_words(spec)
    assert "make it night" not in spec.elements and "add a ship" not in spec.elements
    assert any(c.kind == "entity" and c.subject == "ship" for c in spec.checks)
    assert spec.idea == "a lighthouse in a storm at dusk; make it night, add a ship"


@pytest.mark.parametrize(("idea", "request_", "gone", "kept"), [
    ("a city street at golden hour", "make it night", "golden", "at night"),
    ("a harbour at sunset", "make it dawn", "sunset", "at dawn"),
    ("a beach on a sunny day", "make it rainy", "sunny", "in the rain"),
])
def test_time_and_weather_replace_what_was_there(chain, idea, request_, gone, kept) -> None:
    spec = _refine(chain, idea, request_)
    assert kept in spec.positive and gone not in spec.idea_en


def test_removals_become_absent_checks(chain: PromptChain) -> None:
    spec = _refine(chain, "a park with people", "no people")
    assert "people" not in words(spec.positive) and spec.negative.startswith("people")
    assert any(c.kind == "absent" and c.subject == "people" for c in spec.checks)
    car = _refine(chain, "a street with a car and a dog", "remove the car")
    assert "car" not in words(car.positive) and "dog" in words(car.positive)
    assert car.negative.startswith("car")
    assert [c.subject for c in car.checks if c.kind == "absent"] == ["car"]
    assert not any(c.kind == "entity" and lemma(c.subject) == "car" for c in car.checks)


def test_additions(chain: PromptChain) -> None:
    spec = _refine(chain, "a cat on a sofa", "with a dog")
    assert "dog" in words(spec.positive)
    assert any(c.kind == "entity" and c.subject == "dog" for c in spec.checks)


@pytest.mark.parametrize(("request_", "style"), [
    ("as a watercolor", "watercolor"),
    ("more like an oil painting", "oil-painting"),
    ("in anime style", "anime"),
])
def test_style_switches_pick_the_preset(chain, request_, style) -> None:
    spec = _refine(chain, "a cabin in the woods", request_)
    assert spec.style == style
    assert spec.idea_en == "a cabin in the woods"  # the style's words are the preset's, not the idea's
    assert any(c.kind == "style" and c.value == style for c in spec.checks)


@pytest.mark.parametrize(("request_", "frame"), [
    ("closer", "close-up"), ("wide shot", "wide shot"), ("from above", "view from above"),
])
def test_framing(chain, request_, frame) -> None:
    spec = _refine(chain, "a cat on a sofa", request_)
    assert frame in spec.positive and "closer" not in spec.positive
    assert not any(c.kind == "entity" and frame in c.subject for c in spec.checks)


def test_colour_change_replaces_the_colour(chain: PromptChain) -> None:
    spec = _refine(chain, "a red car on a road", "make the car blue")
    assert spec.positive.startswith("a blue car on a road") and "red" not in words(spec.positive)
    assert any(c.kind == "attribute" and c.subject == "car" and c.value == "blue" for c in spec.checks)


def test_refinements_chain(chain: PromptChain) -> None:
    spec = chain.refine(chain.refine(chain.optimize("a lighthouse in a storm at dusk"), "make it night"), "add a ship")
    assert spec.positive.startswith("a lighthouse in a storm at night with a ship")


def test_what_cannot_be_read_is_said(chain: PromptChain) -> None:
    spec = _refine(chain, "a cat", "more dramatic")
    assert "dramatic" in spec.positive and "more" not in words(spec.positive)
    assert any("more dramatic" in w for w in spec.warnings)
