"""The rules engine on the public idea set, and its data-driven behaviour."""

from __future__ import annotations

import csv

import pytest
from conftest import DATA

from ideaforge import prompts
from ideaforge.agent.checklist import analyze
from ideaforge.agent.families import _QUOTED
from ideaforge.agent.rules import _vocab, categories, extract_elements, rules_spec
from ideaforge.agent.text import words
from ideaforge.errors import InputError
from ideaforge.tools.clip_tokenizer import count_tokens

IDEAS = list(csv.DictReader(open(DATA / "public_ideas.tsv", encoding="utf-8"), delimiter="\t"))


def content_words(text: str) -> set[str]:
    stop = _vocab()["_stopwords"]
    return {w for w in words(text) if w not in stop}


def test_idea_set_is_complete() -> None:
    assert len(IDEAS) == 1242
    assert {r["language"] for r in IDEAS} >= {"en", "zh", "ru", "ja", "es", "de", "fr"}


def test_public_ideas_fit_keep_words_and_never_contradict(clip_tokenizer) -> None:
    over, contradictions, missing = [], [], []
    for row in IDEAS:
        spec = rules_spec(row["idea"], tokenizer=clip_tokenizer)
        if count_tokens(spec.positive, clip_tokenizer) > 77 or count_tokens(spec.negative, clip_tokenizer) > 77:
            over.append(row["idea"])
        # What the idea keeps: its words less what it says must not be there ("a street without vehicles"); quoted
        # text is to be written, not drawn ("a bar without a wrapper, with the word 'WRAPPER'").
        kept = analyze(row["idea"]).positive if row["language"] == "en" else row["idea"]
        idea_words = content_words(_QUOTED.sub(" ", kept)) if row["language"] == "en" else content_words(kept)
        if idea_words & set(words(spec.negative)):
            contradictions.append((row["idea"], idea_words & set(words(spec.negative))))
        if row["language"] == "en":
            lost = idea_words - set(words(spec.positive))
            if lost:
                missing.append((row["idea"], lost))
        assert spec.positive_tokens == count_tokens(spec.positive, clip_tokenizer)
        assert spec.engine == "rules"
    assert over == []
    assert contradictions == []
    assert missing == []


def test_idea_words_lead_the_positive(clip_tokenizer) -> None:
    spec = rules_spec("a red kitten in a basket", tokenizer=clip_tokenizer)
    assert spec.positive.startswith("a red kitten in a basket, ")
    assert len(spec.positive) > len("a red kitten in a basket") + 20  # something was added
    assert spec.elements == ["red kitten", "basket"]


def test_blurry_rain_keeps_blurry_out_of_the_negative(clip_tokenizer) -> None:
    spec = rules_spec("a blurry photo of rain", tokenizer=clip_tokenizer)
    assert "blurry" not in spec.negative
    assert "sharp focus" not in spec.positive  # the idea asked for blur
    assert "lowres" in spec.negative


def test_negative_preset_follows_the_subject(clip_tokenizer) -> None:
    person = rules_spec("an old fisherman mending a net", tokenizer=clip_tokenizer)
    landscape = rules_spec("a misty valley with a river at dawn", tokenizer=clip_tokenizer)
    assert "bad hands" in person.negative and "extra fingers" in person.negative
    assert "bad hands" not in landscape.negative and "bad anatomy" not in landscape.negative
    animal = rules_spec("a fox in the snow", tokenizer=clip_tokenizer)
    assert "extra legs" in animal.negative


def test_text_ideas_do_not_forbid_text(clip_tokenizer) -> None:
    spec = rules_spec('a storefront sign that says "OPEN"', tokenizer=clip_tokenizer)
    assert categories(spec.idea)[0] == "text"
    assert "text" not in {t.strip() for t in spec.negative.split(",")}
    assert "watermark" not in spec.negative


def test_night_ideas_get_night_light(clip_tokenizer) -> None:
    spec = rules_spec("cozy cabin at night", tokenizer=clip_tokenizer)
    assert "night lighting" in spec.positive
    assert "golden hour" not in spec.positive and "natural light" not in spec.positive


def test_non_english_passes_through_with_warning(clip_tokenizer) -> None:
    spec = rules_spec("一只坐在篮子里的红色小猫", tokenizer=clip_tokenizer)
    assert spec.language == "zh"
    assert spec.positive.startswith("一只坐在篮子里的红色小猫")
    assert any("cannot translate" in w for w in spec.warnings)
    assert rules_spec("Рыжий кот спит на подоконнике", tokenizer=clip_tokenizer).language == "ru"
    assert rules_spec("桜の木の下で本を読む少女", tokenizer=clip_tokenizer).language == "ja"
    assert rules_spec("eine gemütliche Bibliothek mit Kamin", tokenizer=clip_tokenizer).language == "de"
    assert rules_spec("bond", tokenizer=clip_tokenizer).language == "en"


def test_overlong_idea_is_cut_to_budget_with_warning(clip_tokenizer) -> None:
    idea = " ".join(["a tiny red fox jumping over a sleeping brown dog near the river"] * 8)
    spec = rules_spec(idea, tokenizer=clip_tokenizer)
    assert count_tokens(spec.positive, clip_tokenizer) <= 77
    assert any("77" in w for w in spec.warnings)


def test_is_deterministic(clip_tokenizer) -> None:
    a = rules_spec("a castle on a hill under a stormy sky", tokenizer=clip_tokenizer)
    b = rules_spec("a castle on a hill under a stormy sky", tokenizer=clip_tokenizer)
    assert a == b


def test_style_presets_are_data_with_a_prompt_slot() -> None:
    styles = prompts.styles()
    assert len(styles) >= 20
    for name in ("photo", "cinematic", "anime", "oil-painting", "watercolor", "3d-render", "pixel-art", "isometric", "line-art"):
        assert name in styles
    for s in styles.values():
        assert s["prompt"].count("{prompt}") == 1 and s["negative"] and s["description"]


def test_style_is_applied_and_fits(clip_tokenizer) -> None:
    spec = rules_spec("cozy cabin at night", style="watercolor", tokenizer=clip_tokenizer)
    assert spec.positive.startswith("watercolor painting of cozy cabin at night")
    assert "photorealistic" in spec.negative
    assert spec.style == "watercolor"
    assert count_tokens(spec.positive, clip_tokenizer) <= 77


def test_unknown_style_lists_valid_names() -> None:
    with pytest.raises(InputError) as err:
        rules_spec("a cat", style="vaporwave-deluxe")
    assert "vaporwave-deluxe" in str(err.value) and "watercolor" in str(err.value)


def test_elements_drop_medium_words() -> None:
    assert extract_elements("a photo of a dog wearing a blue hat") == ["dog", "blue hat"]
