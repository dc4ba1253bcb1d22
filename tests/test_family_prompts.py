"""The prompt written for the family: tags for sd, tags and phrases for sdxl, prose for sd3, flux and generic."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from llm_server import GOOD, FakeOpenAI, Reply

from ideaforge import prompts
from ideaforge.agent.chain import PromptChain
from ideaforge.agent.families import (
    CONTENT_KINDS,
    estimate_t5_tokens,
    first_tokens,
    missing,
    prompt_family,
    prompt_for,
    prose_like,
)
from ideaforge.agent.models import PromptSpec
from ideaforge.agent.record import PngRecord
from ideaforge.agent.rules import rules_spec
from ideaforge.agent.settings import load_settings
from ideaforge.errors import InputError
from ideaforge.tools.clip_tokenizer import count_tokens, load_clip_tokenizer
from ideaforge.tools.diffusion import family_names

IDEAS = [
    "a red kitten in a basket",
    "three green apples on a table",
    "a street without cars",
    'a sign that says "OPEN" on a wooden door',
    "an old lighthouse on a cliff at dusk, two seagulls flying over a stormy sea, a small wooden boat with a red "
    "sail near the rocks, and a woman in a yellow raincoat walking her black dog along the narrow path below, "
    "fishing nets drying on a wooden pier beside a white cottage with a blue door",
    # A paragraph of sentences longer than 77 CLIP tokens (DSG-1k has many): the CLIP prompts condense it.
    "Watercolor painting of a quiet harbor town at dawn. A tall white lighthouse stands on the rocky point to the "
    "left. Three small fishing boats with orange sails drift across the calm green water. Behind the houses, a dark "
    "pine forest climbs the steep hills toward snowy mountains. A flock of gulls circles above the old stone bridge "
    "near the crowded market square. On the right, two children in red coats fly a yellow kite from the end of the "
    "long wooden pier.",
]
FAMILIES = ["sd", "sdxl", "sd3", "flux", "flux-schnell", "generic"]


@pytest.fixture(scope="module")
def tok():
    return load_clip_tokenizer()


def within_budgets(spec: PromptSpec) -> bool:
    family = prompt_family(spec.family)
    return all(spec.tokens[e] <= n for e, n in family.budgets.items()) and set(spec.tokens) == set(family.budgets)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("idea", IDEAS)
def test_every_family_keeps_budgets_and_the_checks_in_the_first_77_clip_tokens(family, idea, tok) -> None:
    spec = rules_spec(idea, family=family, tokenizer=tok)
    assert spec.family == family and within_budgets(spec), spec.tokens
    content = [c for c in spec.checks if c.kind in CONTENT_KINDS]
    for encoder in prompt_family(family).budgets:
        text = prompt_for(spec, encoder)
        if encoder.startswith("clip"):
            assert count_tokens(text, tok) <= 77
            assert missing(first_tokens(text, tok), content) == [], (encoder, text)
    if family in ("sd3", "flux", "flux-schnell", "generic"):
        assert prose_like(spec.positive), spec.positive
    assert spec.positive_tokens == count_tokens(spec.positive, tok) <= 77


def test_sd_stays_tags_and_the_default_is_sd(tok) -> None:
    default = rules_spec("a red kitten in a basket", tokenizer=tok)
    sd = rules_spec("a red kitten in a basket", tokenizer=tok, family="sd")
    assert default == sd and sd.family == "sd" and sd.positive_2 is None and sd.positive_3 is None
    assert sd.positive.startswith("a red kitten in a basket, ") and not prose_like(sd.positive)
    assert sd.tokens == {"clip_l": sd.positive_tokens} and sd.estimated_tokens == []


def test_sdxl_writes_tags_with_short_phrases(tok) -> None:
    spec = rules_spec("a red kitten in a basket", tokenizer=tok, family="sdxl")
    assert spec.positive.startswith("a red kitten in a basket, ") and "photography with soft natural light" in spec.positive
    assert "masterpiece" not in spec.positive and not prose_like(spec.positive)
    assert set(spec.tokens) == {"clip_l", "clip_g"} and spec.negative


@pytest.mark.parametrize("family", ["sd3", "flux", "generic"])
def test_prose_families_write_sentences_without_weighting(family, tok) -> None:
    spec = rules_spec("three green apples on a table", tokenizer=tok, family=family)
    assert spec.positive.startswith("Three green apples on a table.")
    for text in (spec.positive, spec.positive_2, spec.positive_3):
        if text:
            assert prose_like(text) and "(" not in text and "masterpiece" not in text, text


def test_sd3_fills_its_three_prompts_deliberately(tok) -> None:
    long = IDEAS[-1]
    spec = rules_spec(long, tokenizer=tok, family="sd3")
    assert count_tokens(spec.positive, tok) <= 77 and count_tokens(spec.positive_2, tok) <= 77
    assert spec.positive_3 is not None and count_tokens(spec.positive_3, tok) > 77  # T5 reads the whole idea
    assert long.split(",")[0].lower() in spec.positive_3.lower() and estimate_t5_tokens(spec.positive_3) <= 256
    assert spec.tokens["t5"] == estimate_t5_tokens(spec.positive_3) and spec.estimated_tokens == ["t5"]
    assert spec.negative  # SD 3 takes a negative prompt


def test_flux_has_no_negative_and_says_it_positively_with_a_warning(tok) -> None:
    spec = rules_spec("a street without cars, photo", tokenizer=tok, family="flux")
    assert spec.negative == "" and spec.positive_3 is None
    assert "cars" not in spec.positive  # CLIP draws every noun it reads
    t5 = spec.positive_2
    assert t5 is not None and t5.startswith(spec.positive.split(".")[0])
    assert "sharp focus" in t5 and "high resolution" in t5 and "There is no sign of cars anywhere." in t5
    assert spec.negative_note and spec.negative_note in spec.warnings
    assert "takes no negative prompt" in spec.negative_note and "cars" in spec.negative_note
    # Nothing silently dropped: every term of the sd negative is said or named as left out.
    for term in rules_spec("a street without cars, photo", tokenizer=tok).negative.split(", "):
        assert term in spec.negative_note


def test_flux_schnell_reads_256_t5_tokens_and_long_prose_is_cut_at_a_sentence(tok) -> None:
    assert prompt_family("flux-schnell").budgets == {"clip_l": 77, "t5": 256}
    idea = ", ".join(["a small red house beside a tall green tree"] * 12)
    spec = rules_spec(idea, tokenizer=tok, family="flux-schnell")
    assert spec.tokens["t5"] <= 256 and spec.positive_2 and spec.positive_2.endswith((".", "tree"))


def test_t5_counts_use_the_models_tokenizer_when_given(tok) -> None:
    class Words:
        def __call__(self, text, **_):
            return {"input_ids": text.split() + ["</s>"]}

    spec = rules_spec("a red kitten in a basket", tokenizer=tok, family="flux", tokenizers={"t5": Words()})
    assert spec.tokens["t5"] == len(spec.positive_2.split()) + 1 and spec.estimated_tokens == []


def test_the_estimate_is_above_one_piece_a_word() -> None:
    for idea in IDEAS:
        assert estimate_t5_tokens(idea) >= len(idea.split()) + 1


def test_every_family_of_the_generation_side_has_prompt_data() -> None:
    data = prompts.read_json("families.json")["families"]
    assert set(data) == set(family_names())
    for name in family_names():
        family = prompt_family(name)
        assert set(family.reads) == set(family.budgets)
        assert family.form == ("tags" if name == "sd" else "tags+phrases" if name == "sdxl" else "prose")
    assert prompt_family("sd").instruction == ""  # today's LLM request, unchanged
    with pytest.raises(InputError, match=r"family 'dalle' is unknown; use one of: sd, sdxl, sd3, flux, generic"):
        prompt_family("dalle")


def test_a_loaded_generic_pipelines_own_encoders_set_the_budget(tok) -> None:
    from ideaforge.tools.diffusion.families import Encoder, family_named

    generic = family_named("generic")
    loaded = type(generic)(**{**generic.__dict__, "encoders": (Encoder("clip", "tokenizer", "text_encoder", 60, 60),)})
    spec = PromptChain(load_settings(engine="rules"), tokenizer=tok).optimize("a red kitten in a basket", family=loaded)
    assert spec.family == "generic" and spec.tokens["clip"] <= 60 and prose_like(spec.positive)


def test_python_api_shows_the_family_prompt_without_a_model(tok) -> None:
    from ideaforge import IdeaForge

    forge = IdeaForge(engine="rules")
    spec = forge.optimize("a red fox in the snow", family="flux")
    assert spec.family == "flux" and spec.negative == "" and spec.positive_2
    assert forge._generator is None  # nothing loaded


def test_old_records_and_specs_still_load() -> None:
    old = {"idea": "a red kitten", "idea_en": "a red kitten", "positive": "red kitten, basket", "negative": "blurry",
           "elements": ["red kitten"], "language": "en", "engine": "rules", "positive_tokens": 6}
    spec = PromptSpec.model_validate(old)
    assert (spec.family, spec.positive_2, spec.positive_3, spec.tokens, spec.negative_note) == ("sd", None, None, {}, None)
    record = PngRecord.from_data({"idea": "a red kitten", "positive": "red kitten, basket", "seed": 7})
    assert record.spec().family == "sd" and record.spec().positive_2 is None
    flux = PngRecord.from_data({"idea": "a fox", "positive": "A fox.", "seed": 7, "family": "flux",
                                "prompts": {"prompt_2": "A fox. It has sharp focus."}})
    assert (flux.spec().family, flux.spec().positive_2) == ("flux", "A fox. It has sharp focus.")
    assert PromptSpec.model_validate_json(spec.model_dump_json()) == spec


# -- the LLM engine ------------------------------------------------------------------------------------------
PROSE = dict(
    GOOD,
    language="en",
    positive="A small red kitten sits curled up in a round wicker basket. Soft natural light falls across the "
    "scene, photographed as warm pet photography with a shallow depth of field.",
)


def test_llm_engine_writes_prose_for_flux(tok) -> None:
    with FakeOpenAI(default=lambda request: Reply.spec(**PROSE)) as server:
        chain = PromptChain(load_settings(engine="openai", llm_base_url=server.url, llm_max_retries=0), tokenizer=tok)
        spec = chain.optimize("a red kitten sitting in a basket", family="flux")
        system = server.requests[-1]["messages"][0]["content"]
        example = server.requests[-1]["messages"][2]["content"]
    assert "Model family: FLUX.1" in system and "512 tokens" in system and "flowing description" in system
    assert json.loads(example)["positive"] == prompts.examples()[0]["prose"]  # the examples in prose too
    assert spec.engine == "openai" and spec.family == "flux" and spec.negative == ""
    assert spec.positive.startswith("A small red kitten sits curled up in a round wicker basket.")
    assert spec.positive_2 and spec.positive_2.startswith(spec.positive.split(". ")[0])
    assert "sharp focus" in spec.positive_2 and spec.negative_note and within_budgets(spec)
    assert missing(spec.positive, [c for c in spec.checks if c.kind in CONTENT_KINDS]) == []


def test_llm_prose_that_misses_the_checks_gets_them_back_first(tok) -> None:
    mood = dict(PROSE, positive=("A quiet, sunlit afternoon in a cosy farmhouse kitchen, warm light pooling on the "
                                 "old floorboards, dust drifting in the air by the window, everything calm and still "
                                 "and golden. " * 2).strip()
                + " A small red kitten sits in a wicker basket.")
    with FakeOpenAI(default=lambda request: Reply.spec(**mood)) as server:
        chain = PromptChain(load_settings(engine="openai", llm_base_url=server.url, llm_max_retries=0), tokenizer=tok)
        spec = chain.optimize("a red kitten sitting in a basket", family="sd3")
    assert count_tokens(spec.positive, tok) <= 77 and "kitten" in spec.positive and "basket" in spec.positive
    assert missing(spec.positive, [c for c in spec.checks if c.kind in CONTENT_KINDS]) == []
    assert spec.positive_3 and "farmhouse kitchen" in spec.positive_3


def test_sd_requests_to_the_llm_are_unchanged(tok) -> None:
    with FakeOpenAI(default=lambda request: Reply.spec(**GOOD)) as server:
        chain = PromptChain(load_settings(engine="openai", llm_base_url=server.url, llm_max_retries=0), tokenizer=tok)
        chain.optimize("a red kitten")
        system = server.requests[-1]["messages"][0]["content"]
    assert "Model family" not in system


# -- the CLI -------------------------------------------------------------------------------------------------
def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    return subprocess.run([sys.executable, "-m", "ideaforge.app.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_prompt_family_flux_json() -> None:
    out = cli("prompt", "a street without cars", "--family", "flux", "--json")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)
    assert spec["family"] == "flux" and spec["negative"] == "" and spec["positive"].startswith("An empty street.")
    assert spec["positive_2"].endswith("There is no sign of cars anywhere.") and spec["tokens"]["t5"] <= 512
    assert spec["estimated_tokens"] == ["t5"] and "takes no negative prompt" in spec["negative_note"]


def test_cli_bad_family_is_one_line_naming_the_value_and_the_choices() -> None:
    out = cli("prompt", "a cat", "--family", "dalle")
    assert out.returncode == 2 and out.stdout == ""
    [line] = out.stderr.strip().splitlines()
    assert "'dalle'" in line and "sd, sdxl, sd3, flux, generic" in line
