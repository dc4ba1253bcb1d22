"""The openai engine's checklist: the model's checks through every structured-output method, the rules reader's
when a model sends none, and negation ("a street without vehicles") kept out of the prompt whoever read it.

The real langchain-openai client talks to the loopback server in tests/llm_server.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from llm_server import GOOD, OLDER, FakeOpenAI, Reply

from ideaforge import prompts
from ideaforge.agent.chain import PromptChain, idea_prompt
from ideaforge.agent.checklist import analyze
from ideaforge.agent.models import LLMSpec, PromptSpec
from ideaforge.agent.settings import load_settings

METHODS = ["json_schema", "function_calling", "json_mode"]
STREET = dict(
    idea_en="a street without vehicles",
    # What a careless model writes: the negated thing in the positive prompt, and as a thing to show.
    positive="a street without vehicles, parked vehicles on the side, wet asphalt, dusk, cinematic lighting",
    negative="lowres, blurry, cars",
    checks=[{"kind": "entity", "subject": "street"}, {"kind": "entity", "subject": "vehicles"},
            {"kind": "attribute", "subject": "street", "value": "wet"}],
    language="en",
)


def chain(url: str, method: str = "json_schema") -> PromptChain:
    return PromptChain(load_settings(engine="openai", llm_base_url=url, llm_max_retries=0, llm_timeout=10,
                                     llm_method=method))


def facts(spec: PromptSpec) -> list[tuple[str, str, str | None, str | None]]:
    return [(c.kind, c.subject, c.value, c.object) for c in spec.checks]


def by_fact(spec: PromptSpec, kind: str, subject: str) -> Any:
    [check] = [c for c in spec.checks if c.kind == kind and c.subject == subject]
    return check


def schema_sent(request: dict[str, Any], method: str) -> dict[str, Any] | None:
    if method == "function_calling":
        return dict(request["tools"][0]["function"]["parameters"])
    if method == "json_schema":
        return dict(request["response_format"]["json_schema"]["schema"])
    return None  # json_mode: the system prompt names the fields


@pytest.mark.parametrize("method", METHODS)
def test_the_checks_come_from_the_models_reply_with_ids_questions_and_parents(method: str) -> None:
    with FakeOpenAI() as server:
        spec = chain(server.url, method).optimize("一只坐在篮子里的红色小猫")
    assert spec.engine == "openai" and spec.llm_method == method and spec.warnings == []
    # The model's "wicker basket", not the rules reader's "basket": these are the reply's checks.
    assert facts(spec) == [("entity", "kitten", None, None), ("entity", "wicker basket", None, None),
                           ("attribute", "kitten", "red", None), ("relation", "kitten", "sitting in", "wicker basket")]
    assert [c.id for c in spec.checks] == [1, 2, 3, 4]
    assert by_fact(spec, "attribute", "kitten").depends_on == [1]
    assert by_fact(spec, "relation", "kitten").depends_on == [1, 2]
    assert by_fact(spec, "attribute", "kitten").question == "Is the kitten red?"
    assert spec.elements == ["red kitten", "wicker basket"]
    request = server.requests[-1]
    assert "`checks`" in request["messages"][0]["content"] and "absent" in request["messages"][0]["content"]
    schema = schema_sent(request, method)
    if schema is not None:
        assert "checks" in schema["properties"] and "elements" not in schema["properties"]


@pytest.mark.parametrize("method", METHODS)
def test_a_check_without_its_entity_gets_one_and_depends_on_it(method: str) -> None:
    reply = dict(GOOD, checks=[{"kind": "count", "subject": "kittens", "value": "2"},
                               {"kind": "attribute", "subject": "kittens", "value": "red"}])
    with FakeOpenAI(default=lambda request: Reply.spec(**reply)) as server:
        spec = chain(server.url, method).optimize("two red kittens")
    assert facts(spec)[0] == ("entity", "kittens", None, None)
    assert [c.depends_on for c in spec.checks[1:]] == [[1], [1]]
    assert spec.elements == ["two red kittens"]


@pytest.mark.parametrize("method", METHODS)
def test_a_reply_without_checks_gets_the_rules_readers_and_a_warning(method: str) -> None:
    with FakeOpenAI(default=lambda request: Reply.spec(**OLDER)) as server:
        spec = chain(server.url, method).optimize("一只坐在篮子里的红色小猫")
    assert spec.engine == "openai" and spec.llm_method == method  # an older model's reply is still used
    assert spec.positive.startswith("a small red kitten sitting in a wicker basket")
    reader = analyze(OLDER["idea_en"]).checks
    assert spec.checks == reader and any(c.kind == "relation" for c in reader)
    assert any("no checklist" in w and "rules reader" in w for w in spec.warnings)
    assert spec.elements == ["red kitten", "basket"]  # from the checks, not the reply's own elements


@pytest.mark.parametrize("method", METHODS)
def test_a_negated_thing_leaves_the_positive_leads_the_negative_and_is_an_absent_check(method: str) -> None:
    with FakeOpenAI(default=lambda request: Reply.spec(**STREET)) as server:
        spec = chain(server.url, method).optimize("a street without vehicles")
    assert "vehicle" not in spec.positive.lower()
    assert spec.positive.startswith("an empty street, wet asphalt, dusk")
    terms = spec.negative.split(", ")
    assert terms[0] == "vehicles" and "cars" in terms and "lowres" in terms
    assert not any("removed negative terms" in w for w in spec.warnings)
    assert by_fact(spec, "absent", "vehicles").depends_on == []
    assert not [c for c in spec.checks if c.kind != "absent" and "vehicle" in f"{c.subject} {c.object}"]
    assert by_fact(spec, "attribute", "street").value == "wet"  # the rest of the model's checks stay
    assert "vehicles" not in " ".join(spec.elements)


def test_a_negated_thing_only_the_model_found_is_honoured() -> None:
    idea = "a beach, umbrellas nowhere in sight"
    assert analyze(idea).negated == []  # the rules reader misses this one
    reply = dict(idea_en=idea, positive="a sunny beach, no umbrellas, turquoise water", negative="blurry",
                 checks=[{"kind": "entity", "subject": "beach"}, {"kind": "absent", "subject": "umbrellas"}],
                 language="en")
    with FakeOpenAI(default=lambda request: Reply.spec(**reply)) as server:
        spec = chain(server.url).optimize(idea)
    assert spec.positive.startswith("a sunny beach, turquoise water") and "umbrella" not in spec.positive
    assert spec.negative.startswith("umbrellas, blurry")
    assert [c.kind for c in spec.checks] == ["entity", "absent"]


def test_an_absent_check_for_something_the_idea_asks_for_is_dropped() -> None:
    reply = dict(GOOD, checks=[*GOOD["checks"], {"kind": "absent", "subject": "basket"}])
    with FakeOpenAI(default=lambda request: Reply.spec(**reply)) as server:
        spec = chain(server.url).optimize("a red kitten sitting in a basket")
    assert "absent" not in [c.kind for c in spec.checks] and "basket" not in spec.negative
    assert "wicker basket" in spec.positive
    assert any("'basket' is absent" in w for w in spec.warnings)


def test_the_rules_readers_negation_is_merged_when_the_model_misses_it() -> None:
    reply = dict(STREET, positive="a quiet street, dusk", negative="lowres",
                 checks=[{"kind": "entity", "subject": "street"}])
    with FakeOpenAI(default=lambda request: Reply.spec(**reply)) as server:
        spec = chain(server.url).optimize("a street without vehicles")
    assert facts(spec) == [("entity", "street", None, None), ("absent", "vehicles", None, None)]
    assert spec.positive == "a quiet street, dusk" and spec.negative == "vehicles, lowres"


def test_text_to_be_written_gets_a_warning_about_older_models() -> None:
    reply = dict(GOOD, idea_en='a shop sign that says "OPEN"', positive='a shop sign that says "OPEN", neon',
                 checks=[{"kind": "entity", "subject": "shop sign"},
                         {"kind": "text", "subject": "shop sign", "value": "OPEN"}])
    with FakeOpenAI(default=lambda request: Reply.spec(**reply)) as server:
        spec = chain(server.url).optimize('a shop sign that says "OPEN"')
        server.push(Reply.spec(**GOOD))
        plain = chain(server.url).optimize("a red kitten")  # no text check, no warning
    assert by_fact(spec, "text", "shop sign").question == 'Does the shop sign show the text "OPEN"?'
    [warning] = spec.warnings
    assert "written text" in warning and "SDXL" in warning and "FLUX" in warning
    assert plain.warnings == []


def test_refine_shows_the_current_checks_and_returns_the_new_ones() -> None:
    changed = dict(GOOD, idea_en="a red kitten sitting in a basket with a blue ball",
                   positive="a small red kitten sitting in a wicker basket with a blue ball, soft light",
                   checks=[*GOOD["checks"], {"kind": "entity", "subject": "ball"},
                           {"kind": "attribute", "subject": "ball", "value": "blue"}])
    with FakeOpenAI() as server:
        prompts_ = chain(server.url)
        spec = prompts_.optimize("a red kitten sitting in a basket")
        server.push(Reply.spec(**changed))
        refined = prompts_.refine(spec, "add a blue ball")
    asked = server.requests[-1]["messages"][-1]["content"]
    assert "  - attribute: kitten = red\n" in asked and "  - relation: kitten sitting in wicker basket" in asked
    assert "Their request: add a blue ball" in asked and "`checks`" in asked
    assert refined.engine == "openai" and refined.warnings == []
    ball = by_fact(refined, "entity", "ball")
    assert by_fact(refined, "attribute", "ball").depends_on == [ball.id]
    assert ("attribute", "kitten", "red", None) in facts(refined)
    assert refined.elements == ["red kitten", "wicker basket", "blue ball"]


def test_refine_without_checks_in_the_reply_reads_the_changed_idea() -> None:
    changed = dict(OLDER, idea_en="a red kitten sitting in a basket at night, without a blanket")
    with FakeOpenAI() as server:
        prompts_ = chain(server.url)
        spec = prompts_.optimize("a red kitten sitting in a basket")
        server.push(Reply.spec(**changed))
        refined = prompts_.refine(spec, "at night, and no blanket")
    assert refined.checks == analyze(changed["idea_en"]).checks
    assert by_fact(refined, "absent", "blanket") and refined.negative.startswith("blanket")
    assert any("no checklist" in w for w in refined.warnings)


def test_revise_keeps_the_checks_unless_the_reply_brings_new_ones() -> None:
    with FakeOpenAI() as server:
        prompts_ = chain(server.url)
        spec = prompts_.optimize("a red kitten sitting in a basket")
        server.push(Reply.spec(**dict(OLDER, positive="a red kitten, wicker basket, close-up")))
        kept = prompts_.revise(spec, "- round 1: score 20", "the basket is missing")
        fixed = dict(GOOD, positive="a red kitten in a round wicker basket, close-up",
                     checks=[{"kind": "entity", "subject": "kitten"}, {"kind": "entity", "subject": "basket"}])
        server.push(Reply.spec(**fixed))
        new = prompts_.revise(spec, "- round 1: score 20", "the basket is missing")
    assert kept.positive.startswith("a red kitten, wicker basket") and kept.checks == spec.checks
    assert not any("checklist" in w for w in kept.warnings)
    assert facts(new) == [("entity", "kitten", None, None), ("entity", "basket", None, None)]


def test_the_few_shot_examples_carry_correct_checks() -> None:
    examples = prompts.examples()
    for ex in examples:
        spec = LLMSpec.model_validate(ex["spec"])
        assert spec.checks and "elements" not in ex["spec"]
        kinds = {c.kind for c in spec.checks}
        assert "entity" in kinds
    apples = LLMSpec.model_validate(next(e["spec"] for e in examples if e["idea"] == "桌子上有三个青苹果"))
    assert {(c.kind, c.subject, c.value, c.object) for c in apples.checks} >= {
        ("count", "apples", "3", None), ("attribute", "apples", "green", None), ("relation", "apples", "on", "table")}
    [negation] = [LLMSpec.model_validate(e["spec"]) for e in examples
                  if any(c["kind"] == "absent" for c in e["spec"]["checks"])]
    [absent] = [c.subject for c in negation.checks if c.kind == "absent"]
    assert absent not in negation.positive and negation.negative.startswith(absent)
    # The examples reach the model as JSON messages, braces and all.
    messages = idea_prompt().format_messages(idea="a cat", style_hint="")
    assert json.loads(messages[2].content)["checks"] == examples[0]["spec"]["checks"]


def test_the_compact_prompt_asks_for_checks_and_stays_short() -> None:
    [system, human] = idea_prompt(compact=True).format_messages(idea="a cat", style_hint="")
    assert "`checks`" in system.content and "absent" in system.content and "elements" not in system.content
    assert len(system.content) < 1200 and human.content == "Idea: a cat"


def test_a_term_that_rules_the_thing_out_keeps_the_rest_of_its_words() -> None:
    idea = "a photograph of sand with a bucket, lots of scattered shells but no sandpipers"
    reply = dict(idea_en=idea, positive=f"{idea}, golden hour", negative="lowres", language="en",
                 checks=[{"kind": "entity", "subject": "sand"}, {"kind": "entity", "subject": "shells"}])
    with FakeOpenAI(default=lambda request: Reply.spec(**reply)) as server:
        spec = chain(server.url).optimize(idea)
    assert spec.positive == "a photograph of sand with a bucket, lots of scattered shells, golden hour"
    assert spec.negative == "sandpipers, lowres" and facts(spec)[-1] == ("absent", "sandpipers", None, None)
