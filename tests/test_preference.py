"""The preference score, on a tiny random CLIP saved to a folder as a PickScore-style model would be."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import ideaforge.tools.critic.preference as preference
from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools.critic import WithQuality, clear_cache
from ideaforge.tools.critic.checks import CLIPCheckCritic
from ideaforge.tools.critic.preference import (
    CLIP_H_PROCESSOR,
    PICKSCORE,
    PreferenceScorer,
    _processor_for,
    preference_probability,
)

PROMPT = "a red kitten in a basket, watercolor"


def noise_images(n: int, size: int = 48, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def model_only(tmp_path: Path, tiny_clip_dir: Path) -> Path:
    """The tiny CLIP without its processor files, as PickScore_v1's repository is."""
    folder = tmp_path / "model-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_clip_dir / name, folder / name)
    return folder


def test_scores_are_pickscores_formula_computed_independently(tiny_clip_dir: Path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    images = noise_images(3)
    scores = PreferenceScorer(str(tiny_clip_dir), device="cpu").score(images, PROMPT)
    assert len(scores) == 3 and all(isinstance(s, float) for s in scores)
    model = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(tiny_clip_dir))
    batch = processor(text=[PROMPT], images=images, return_tensors="pt", padding=True)
    with torch.inference_mode():
        expected = model(**batch).logits_per_image[:, 0]  # logit_scale.exp() x cosine
    torch.testing.assert_close(torch.tensor(scores), expected, atol=1e-4, rtol=0)


def test_scores_are_deterministic_and_batches_equal_single_images(tiny_clip_dir: Path):
    scorer = PreferenceScorer(str(tiny_clip_dir), device="cpu")
    images = noise_images(4, seed=1)
    first = scorer.score(images, PROMPT)
    assert scorer.score(images, PROMPT) == first
    assert [scorer.score([im], PROMPT)[0] for im in images] == pytest.approx(first, abs=1e-4)
    assert len(set(first)) == 4
    assert scorer.score([], PROMPT) == []


def test_same_model_is_loaded_once(tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch):
    clear_cache()
    loads: list[str] = []
    original = preference._load
    monkeypatch.setattr(preference, "_load", lambda *a: loads.append(a[0]) or original(*a))
    a = PreferenceScorer(str(tiny_clip_dir), device="cpu").load()
    b = PreferenceScorer(str(tiny_clip_dir), device="cpu", dtype="float32").load()
    assert a.clip is b.clip and loads == [str(tiny_clip_dir)]
    clear_cache()  # the CLIP critics' cache holds preference models too
    assert PreferenceScorer(str(tiny_clip_dir), device="cpu").load().clip is not a.clip
    assert len(loads) == 2


def test_a_separate_processor_folder(model_only: Path, tiny_clip_dir: Path):
    with pytest.raises(ModelNotFoundError, match="has no processor") as err:
        PreferenceScorer(str(model_only), device="cpu").load()
    assert "processor=" in str(err.value) and "\n" not in str(err.value)
    images = noise_images(2, seed=2)
    separate = PreferenceScorer(str(model_only), processor=str(tiny_clip_dir), device="cpu").score(images, PROMPT)
    together = PreferenceScorer(str(tiny_clip_dir), device="cpu").score(images, PROMPT)
    assert separate == pytest.approx(together, abs=1e-5)


def test_default_processor(tmp_path: Path, tiny_clip_dir: Path):
    assert PreferenceScorer().processor == CLIP_H_PROCESSOR and PreferenceScorer().model == PICKSCORE
    assert _processor_for("someone/my-preference-clip", None) == "someone/my-preference-clip"
    assert _processor_for(str(tiny_clip_dir), None) == str(tiny_clip_dir)
    assert _processor_for(PICKSCORE, "other/processor") == "other/processor"
    clip_h = tmp_path / "pickscore-copy"  # a saved PickScore: CLIP-H/14, no processor of its own
    clip_h.mkdir()
    (clip_h / "config.json").write_text(json.dumps({"model_type": "clip",
                                                    "vision_config": {"hidden_size": 1280, "patch_size": 14}}))
    assert _processor_for(str(clip_h), None) == CLIP_H_PROCESSOR
    with pytest.raises(InputError, match="processor ' '"):
        PreferenceScorer(str(tiny_clip_dir), processor=" ")


def test_bad_models_are_one_line_errors(tmp_path: Path, tiny_clip_dir: Path):
    def message(model: str, error: type[Exception] = ModelNotFoundError) -> str:
        with pytest.raises(error) as err:
            PreferenceScorer(model, device="cpu").load()
        assert "\n" not in str(err.value)
        return str(err.value)

    missing = tmp_path / "nowhere" / "pickscore"
    assert "does not exist" in message(str(missing)) and str(missing) in message(str(missing))
    offline = message("ideaforge-tests/no-such-preference")
    assert "'ideaforge-tests/no-such-preference'" in offline and "HF_HUB_OFFLINE" in offline
    assert "open_clip" in message("xswu/HPSv2", InputError)
    assert "Qwen2-VL" in message("MizzenAI/HPSv3", InputError)

    hps = tmp_path / "hps"
    hps.mkdir()
    (hps / "HPS_v2_compressed.pt").write_bytes(b"\0")
    assert "open_clip" in message(str(hps))

    bert = tmp_path / "bert"
    shutil.copytree(tiny_clip_dir, bert)
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    assert "not a transformers CLIPModel" in message(str(bert))

    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_clip_dir, no_weights)
    (no_weights / "model.safetensors").unlink()
    assert "missing model weights" in message(str(no_weights))

    with pytest.raises(InputError, match="empty"):
        PreferenceScorer(" ")
    with pytest.raises(InputError, match="prompt"):
        PreferenceScorer(str(tiny_clip_dir), device="cpu").score(noise_images(1), "  ")


def test_preference_probability_is_the_softmax_of_two_scores():
    assert preference_probability(21.0, 21.0) == 0.5
    assert preference_probability(23.0, 21.0) == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert preference_probability(0.0, 1000.0) == pytest.approx(0.0, abs=1e-20)  # no overflow


def test_as_the_quality_beside_the_check_verdicts(tiny_clip_dir: Path):
    scorer = PreferenceScorer(str(tiny_clip_dir), device="cpu")
    checks = [SimpleNamespace(id=1, kind="entity", subject="kitten", value=None, object=None, question="",
                              depends_on=[])]
    critic = WithQuality(CLIPCheckCritic(str(tiny_clip_dir), device="cpu"), scorer.score, label=scorer.label)
    images = noise_images(3, seed=4)
    reviews = critic.review(images, checks, PROMPT)
    assert [r.quality for r in reviews] == pytest.approx(scorer.score(images, PROMPT))
    assert [r.calls for r in reviews] == [3, 0, 0]  # text + image pass, then the preference score
