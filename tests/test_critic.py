"""The CLIP critic, on a tiny random CLIP loaded from a folder exactly as `--clip-model DIR` would load it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ideaforge.errors import InputError, ModelNotFoundError
from ideaforge.tools.critic import (
    FALLBACK_THRESHOLD,
    KNOWN_THRESHOLDS,
    CLIPCritic,
    clear_cache,
    critique,
    default_threshold,
)

IDEA = "a red kitten in a basket"
ELEMENTS = ["red kitten", "basket", "warm sunlight"]
REPO = Path(__file__).resolve().parent.parent


def noise_images(n: int, size: int = 64, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def critic(tiny_clip_dir: Path) -> CLIPCritic:
    return CLIPCritic(str(tiny_clip_dir), device="cpu").load()


# --- scoring through the real model -------------------------------------------------------------------------


def test_scores_match_torchmetrics_definition_computed_independently(critic: CLIPCritic, tiny_clip_dir: Path):
    import torch
    from transformers import CLIPModel, CLIPProcessor

    images = noise_images(3)
    [first, *_] = scores = critic.score(images, IDEA, ELEMENTS)
    assert len(scores) == 3 and list(first.elements) == ELEMENTS

    # The same numbers from the model's own forward pass: 100 x cosine = logits / logit_scale.exp() x 100.
    model = CLIPModel.from_pretrained(str(tiny_clip_dir)).eval()
    processor = CLIPProcessor.from_pretrained(str(tiny_clip_dir))
    batch = processor(text=[IDEA, *ELEMENTS], images=images, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model(**batch)
    expected = (100 * out.logits_per_image / model.logit_scale.exp()).clamp(min=0)
    got = torch.tensor([[s.idea, *s.elements.values()] for s in scores])
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=0)


def test_scores_are_on_0_100_and_deterministic(critic: CLIPCritic):
    images = noise_images(4) + [Image.new("RGB", (64, 64), c) for c in ("red", "blue", "white")]
    first = critic.score(images, IDEA, ELEMENTS)
    again = critic.score(images, IDEA, ELEMENTS)
    values = [v for s in first for v in (s.idea, *s.elements.values())]
    assert all(0.0 <= v <= 100.0 for v in values)
    assert max(values) > 0.0 and len(set(values)) > len(values) // 2  # real, varied scores, not all clamped
    assert [(s.idea, s.elements) for s in again] == [(s.idea, s.elements) for s in first]


def test_batch_equals_one_by_one(critic: CLIPCritic):
    images = noise_images(4, seed=1)
    batched = critic.score(images, IDEA, ELEMENTS)
    single = [critic.score([im], IDEA, ELEMENTS)[0] for im in images]
    for b, s in zip(batched, single):
        assert b.idea == pytest.approx(s.idea, abs=1e-4)
        assert b.elements == pytest.approx(s.elements, abs=1e-4)


def test_each_image_gets_the_critique_of_its_own_scores(critic: CLIPCritic):
    for s in critic.score(noise_images(3, seed=2), IDEA, ELEMENTS):
        assert s.critique == critique(s.idea, s.elements)


def test_long_idea_is_truncated_explicitly_and_recorded(critic: CLIPCritic, clip_tokenizer):
    long_idea = ", ".join(["a red kitten in a wicker basket"] * 12)
    assert len(clip_tokenizer(long_idea, verbose=False)["input_ids"]) > 77
    [s] = critic.score(noise_images(1), long_idea, ["basket"])
    assert s.truncated == [long_idea]
    assert "77 CLIP tokens" in s.critique.text
    # Only the first 77 tokens count: a different ending leaves the score unchanged.
    [t] = critic.score(noise_images(1), long_idea + " and a purple dragon breathing fire", ["basket"])
    assert t.idea == pytest.approx(s.idea, abs=1e-4)
    [short] = critic.score(noise_images(1), IDEA, ["basket"])
    assert short.truncated == []


def test_accepts_paths_and_non_rgb_images(critic: CLIPCritic, tmp_path: Path):
    rgb = noise_images(1)[0]
    rgb.save(tmp_path / "a.png")
    from_path = critic.score([tmp_path / "a.png"], IDEA, ELEMENTS)[0]
    assert from_path.elements == pytest.approx(critic.score([rgb], IDEA, ELEMENTS)[0].elements, abs=1e-4)
    rgba, grey = critic.score([rgb.convert("RGBA"), rgb.convert("L")], IDEA, ELEMENTS)
    assert rgba.idea == pytest.approx(critic.score([rgb.convert("RGBA").convert("RGB")], IDEA, ELEMENTS)[0].idea, abs=1e-4)
    assert grey.idea == pytest.approx(critic.score([rgb.convert("L").convert("RGB")], IDEA, ELEMENTS)[0].idea, abs=1e-4)


def test_elements_are_stripped_and_deduplicated(critic: CLIPCritic):
    [s] = critic.score(noise_images(1), IDEA, [" basket ", "basket", "", "red kitten"])
    assert list(s.elements) == ["basket", "red kitten"]


def test_bad_input_is_refused_before_the_model_runs(critic: CLIPCritic, tmp_path: Path):
    with pytest.raises(InputError, match="idea"):
        critic.score(noise_images(1), "  ", ELEMENTS)
    with pytest.raises(InputError, match="missing.png"):
        critic.score([tmp_path / "missing.png"], IDEA, ELEMENTS)
    assert critic.score([], IDEA, ELEMENTS) == []


# --- the critique, a pure function ----------------------------------------------------------------------------


def test_critique_names_the_element_far_below_the_best():
    c = critique(24.0, {"red kitten": 27.9, "basket": 14.2})
    assert c.weak == ["basket"]
    assert "'basket' (14.2, vs 27.9 for 'red kitten')" in c.text
    assert "'red kitten' (" not in c.text


def test_critique_margin_and_floor():
    # 26.0 is within the 5-point margin of the best (30.0); 24.9 is not.
    assert critique(30.0, {"a": 30.0, "b": 26.0, "c": 24.9}).weak == ["c"]
    assert critique(30.0, {"a": 30.0, "b": 26.0, "c": 24.9}, margin=10.0).weak == []
    # Everything below the floor is weak, most-needed (lowest) first, the best included.
    c = critique(15.0, {"x": 18.0, "y": 12.0, "z": 16.0}, floor=20.0)
    assert c.weak == ["y", "z", "x"]
    assert "'x' (18.0, below 20.0)" in c.text


def test_critique_with_nothing_missing_says_so():
    c = critique(31.0, {"red kitten": 27.0, "basket": 25.5})
    assert c.weak == []
    assert "31.0" in c.text and "none is missing" in c.text


def test_critique_without_elements_reports_the_idea_score():
    c = critique(22.5, {})
    assert c.weak == [] and "22.5" in c.text


@given(
    st.dictionaries(st.text(min_size=1, max_size=8), st.floats(0, 100, allow_nan=False), max_size=6),
    st.floats(0, 40),
    st.floats(0.5, 20),
)
def test_critique_weak_set_follows_its_rule(scores: dict[str, float], floor: float, margin: float):
    c = critique(20.0, scores, floor=floor, margin=margin)
    best = max(scores.values(), default=0.0)
    assert set(c.weak) == {k for k, v in scores.items() if v < floor or best - v >= margin}
    assert [scores[k] for k in c.weak] == sorted(scores[k] for k in c.weak)
    assert all(repr(k) in c.text for k in c.weak)


# --- thresholds ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("openai/clip-vit-base-patch32", 30.0),
        ("openai/clip-vit-base-patch16", 30.0),
        ("openai/clip-vit-large-patch14", 26.0),
        ("openai/clip-vit-large-patch14-336", 26.0),
        # A Hugging Face cache snapshot is recognised by its path.
        ("/home/u/.cache/huggingface/hub/models--openai--clip-vit-large-patch14-336/snapshots/abc123", 26.0),
        ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", FALLBACK_THRESHOLD),
        ("someone/my-clip", FALLBACK_THRESHOLD),
    ],
)
def test_default_threshold_per_model(model: str, expected: float):
    assert default_threshold(model) == expected


def test_threshold_of_a_folder_comes_from_its_architecture(tmp_path: Path, tiny_clip_dir: Path):
    saved = tmp_path / "my-clip"
    saved.mkdir()
    (saved / "config.json").write_text(
        json.dumps({"vision_config": {"hidden_size": 1024, "patch_size": 14, "image_size": 336}})
    )
    assert default_threshold(str(saved)) == KNOWN_THRESHOLDS["clip-vit-large-patch14-336"]
    assert CLIPCritic(str(tiny_clip_dir)).threshold == FALLBACK_THRESHOLD  # a 32-wide toy is no known CLIP
    assert CLIPCritic().threshold == 30.0


# --- loading, errors and the cache ----------------------------------------------------------------------------


def test_missing_hub_model_offline_is_one_line_naming_model_and_fix():
    with pytest.raises(ModelNotFoundError) as err:
        CLIPCritic("ideaforge-tests/no-such-clip", device="cpu").load()
    message = str(err.value)
    assert "\n" not in message
    assert "'ideaforge-tests/no-such-clip'" in message
    assert "HF_HUB_OFFLINE" in message and "--clip-model" in message


def test_missing_folder_is_named(tmp_path: Path):
    missing = tmp_path / "nowhere" / "clip"
    with pytest.raises(ModelNotFoundError, match="does not exist") as err:
        CLIPCritic(str(missing), device="cpu").load()
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


def test_incomplete_and_corrupt_folders_are_clear_errors(tmp_path: Path, tiny_clip_dir: Path):
    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_clip_dir, incomplete)
    (incomplete / "model.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"incomplete \(missing model weights"):
        CLIPCritic(str(incomplete), device="cpu").load()

    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_clip_dir, corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelNotFoundError) as err:
        CLIPCritic(str(corrupt), device="cpu").load()
    assert str(corrupt) in str(err.value) and "\n" not in str(err.value)


def test_unknown_dtype_or_device_is_an_input_error(tiny_clip_dir: Path):
    with pytest.raises(InputError, match="'float8'"):
        CLIPCritic(str(tiny_clip_dir), device="cpu", dtype="float8").load()
    with pytest.raises(InputError, match="'tpu'"):
        CLIPCritic(str(tiny_clip_dir), device="tpu").load()


def test_loaded_model_is_cached_per_model_device_and_dtype(tiny_clip_dir: Path):
    clear_cache()
    a = CLIPCritic(str(tiny_clip_dir), device="cpu").load()
    b = CLIPCritic(str(tiny_clip_dir), device="cpu", dtype="float32").load()
    assert a.clip is b.clip
    other_dtype = CLIPCritic(str(tiny_clip_dir), device="cpu", dtype="bfloat16").load()
    assert other_dtype.clip is not a.clip
    clear_cache()
    assert CLIPCritic(str(tiny_clip_dir), device="cpu").load().clip is not a.clip


def test_concurrent_loads_share_one_model(tiny_clip_dir: Path):
    clear_cache()
    with ThreadPoolExecutor(4) as pool:
        critics = list(pool.map(lambda _: CLIPCritic(str(tiny_clip_dir), device="cpu").load(), range(4)))
    assert len({id(c.clip) for c in critics}) == 1


def test_importing_the_critic_does_not_import_torch():
    code = "import sys, ideaforge.tools.critic; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_docstring_examples_run():
    import doctest
    import importlib
    import pkgutil

    import ideaforge.tools.critic as package

    modules = [package] + [importlib.import_module(m.name) for m in pkgutil.iter_modules(package.__path__, "ideaforge.tools.critic.")]
    results = [doctest.testmod(module, optionflags=doctest.ELLIPSIS) for module in modules]
    assert sum(r.failed for r in results) == 0
    assert all(r.attempted >= 2 for r in results), results  # every module shows how it is used
