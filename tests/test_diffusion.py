"""The diffusion tool against tiny random pipelines loaded from disk, as `--model DIR` loads them. No network."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from ideaforge.errors import Cancelled, InputError
from ideaforge.tools.diffusion import (
    MAX_SEED,
    DiffusionTool,
    GenerationParams,
    ImageRequest,
    StepEvent,
    match_profile,
    plain_prompt,
    scheduler_names,
)

# diffusers' schedulers trip numpy 2's __array__/__array_wrap__ deprecations on torch tensors; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

FAST = GenerationParams(steps=2, guidance=7.5, width=64, height=64)
KITTEN = ImageRequest(positive="a red kitten in a basket", negative="blurry", seed=7)


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


@pytest.fixture(scope="module")
def tool(tiny_sd_dir: Path) -> DiffusionTool:
    return DiffusionTool(str(tiny_sd_dir), device="cpu").load()


# --- reproducibility and batching ---------------------------------------------------------------------------


def test_same_seed_gives_same_pixels_even_after_reloading(
    tool: DiffusionTool, tiny_sd_dir: Path, tmp_path: Path
) -> None:
    first = tool.generate([KITTEN], FAST)[0]
    again = tool.generate([KITTEN], FAST)[0]
    copy = DiffusionTool(str(shutil.copytree(tiny_sd_dir, tmp_path / "copy")), device="cpu")  # loads afresh
    reloaded = copy.generate([KITTEN], FAST)[0]
    assert copy.pipeline is not tool.pipeline
    assert first.image.size == (64, 64)
    assert np.array_equal(pixels(first), pixels(again))
    assert np.array_equal(pixels(first), pixels(reloaded))
    assert (first.seed, first.steps, first.guidance, first.width, first.height) == (7, 2, 7.5, 64, 64)


def test_different_seeds_give_different_images(tool: DiffusionTool) -> None:
    a, b = (tool.generate([KITTEN.model_copy(update={"seed": s})], FAST)[0] for s in (7, 8))
    assert np.abs(pixels(a) - pixels(b)).mean() > 1.0


def test_batched_call_matches_one_by_one_for_the_same_seeds(tool: DiffusionTool) -> None:
    events: list[StepEvent] = []
    batch = tool.generate([KITTEN], FAST.model_copy(update={"n": 3}), on_step=events.append)
    singles = [tool.generate([KITTEN.model_copy(update={"seed": s})], FAST)[0] for s in (7, 8, 9)]

    assert [r.seed for r in batch] == [7, 8, 9]
    assert {e.index for e in events} == {0} and events[0].batches == 1  # one pipeline call for all three
    assert events[0].images == [0, 1, 2]
    for together, alone in zip(batch, singles):
        diff = np.abs(pixels(together) - pixels(alone))
        # Batched kernels sum in another order: at most one level of 8-bit rounding on a handful of pixels.
        assert diff.max() <= 1
        assert (diff > 0).mean() < 0.01


def test_requests_with_and_without_negatives_batch_separately_but_keep_order(tool: DiffusionTool) -> None:
    requests = [
        ImageRequest(positive="a cat", seed=1),
        ImageRequest(positive="a dog", negative="blurry", seed=2),
        ImageRequest(positive="a fox", seed=3),
    ]
    events: list[StepEvent] = []
    results = tool.generate(requests, FAST, on_step=events.append)
    assert [(r.positive, r.seed, r.request_index) for r in results] == [
        ("a cat", 1, 0),
        ("a dog", 2, 1),
        ("a fox", 3, 2),
    ]
    calls = {e.index: e.images for e in events}
    assert sorted(calls.values()) == [[0, 2], [1]]  # the two without a negative share one call


def test_missing_seed_is_drawn_recorded_and_reproducible(tool: DiffusionTool) -> None:
    drawn = tool.generate([ImageRequest(positive="a red kitten")], FAST)[0]
    assert isinstance(drawn.seed, int) and 0 <= drawn.seed < 2**32
    again = tool.generate([ImageRequest(positive="a red kitten", seed=drawn.seed)], FAST)[0]
    assert np.array_equal(pixels(drawn), pixels(again))


def test_seeds_of_a_request_wrap_within_0_to_max_seed(tool: DiffusionTool) -> None:
    last = ImageRequest(positive=KITTEN.positive, seed=MAX_SEED)
    wrapped = tool.generate([last], FAST.replace(n=2))
    assert [image.seed for image in wrapped] == [MAX_SEED, 0]
    alone = tool.generate([last.replace(seed=0)], FAST)[0]
    assert np.abs(pixels(wrapped[1]) - pixels(alone)).max() <= 1  # seed 0's image, up to batched-kernel rounding


def test_a_shipped_scheduler_the_catalogue_lacks_is_kept_by_name(tool: DiffusionTool) -> None:
    entry = tool._loaded()
    odd = DiffusionTool(tool.model, device="cpu")
    odd._entry = dataclasses.replace(entry, profile=dataclasses.replace(entry.profile, scheduler="FancyScheduler"))
    assert odd.resolve(GenerationParams(steps=2)).scheduler == "FancyScheduler"  # user input is still checked:
    with pytest.raises(InputError, match="scheduler 'FancyScheduler' is unknown"):
        GenerationParams(scheduler="FancyScheduler")


def test_parallel_callers_share_one_pipeline_and_get_the_serial_result(
    tool: DiffusionTool, tiny_sd_dir: Path
) -> None:
    expected = pixels(tool.generate([KITTEN], FAST)[0])
    other = DiffusionTool(str(tiny_sd_dir), device="cpu").load()
    assert other.pipeline is tool.pipeline
    got: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda t=t: got.append(pixels(t.generate([KITTEN], FAST)[0])))
        for t in (tool, other, tool, other)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(got) == 4 and all(np.array_equal(expected, g) for g in got)


# --- progress, previews, cancellation -----------------------------------------------------------------------


def test_progress_events_arrive_for_every_step_with_previews(tool: DiffusionTool) -> None:
    events: list[StepEvent] = []
    tool.generate([KITTEN], FAST.model_copy(update={"steps": 4}), on_step=events.append, preview_every=2)
    assert [(e.step, e.total) for e in events] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    with_preview = [e.step for e in events if e.preview is not None]
    assert with_preview == [2, 4]
    assert events[-1].preview.size == (8, 8)  # the latent grid: the linear approximation decodes no pixels
    assert events[-1].preview.mode == "RGB"

    quiet: list[StepEvent] = []
    tool.generate([KITTEN], FAST, on_step=quiet.append, preview_every=0)
    assert len(quiet) == 2 and all(e.preview is None for e in quiet)


def test_tiny_autoencoder_gives_full_size_previews(tiny_sd_dir: Path, tmp_path: Path) -> None:
    from tiny_models import build_tiny_taesd

    taesd = build_tiny_taesd(tmp_path / "taesd")
    previewed = DiffusionTool(str(tiny_sd_dir), device="cpu", preview_vae=str(taesd))
    events: list[StepEvent] = []
    previewed.generate([KITTEN], FAST, on_step=events.append, preview_every=1)
    assert [e.preview.size for e in events] == [(64, 64), (64, 64)]


def test_cancel_stops_between_steps(tool: DiffusionTool) -> None:
    cancel = threading.Event()
    events: list[StepEvent] = []

    def stop_after_two(event: StepEvent) -> None:
        events.append(event)
        if event.step == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="after step 2 of 20"):
        tool.generate([KITTEN], FAST.model_copy(update={"steps": 20}), on_step=stop_after_two, cancel=cancel)
    assert [e.step for e in events] == [1, 2]

    events.clear()
    with pytest.raises(Cancelled):  # already cancelled: not a single step runs
        tool.generate([KITTEN], FAST, on_step=events.append, cancel=cancel)
    assert events == []
    assert tool.generate([KITTEN], FAST)[0].image.size == (64, 64)  # the pipeline is usable afterwards


# --- parameters, profiles, schedulers -----------------------------------------------------------------------


def test_unknown_model_falls_back_on_its_pipeline(tool: DiffusionTool) -> None:
    profile = tool.profile
    # No profile matches "tiny-sd": steps and guidance are the SD family's, size is UNet sample_size x VAE
    # factor (8 x 8), the scheduler is the one the model ships (EulerDiscreteScheduler).
    assert (profile.name, profile.family, profile.steps, profile.guidance) == (None, "sd", 30, 7.5)
    assert (profile.width, profile.height, profile.scheduler) == (64, 64, "euler")
    resolved = tool.resolve(GenerationParams(steps=3))
    assert (resolved.steps, resolved.guidance, resolved.width, resolved.scheduler) == (3, 7.5, 64, "euler")


def test_known_model_names_get_their_profile(tiny_sd_dir: Path, tmp_path: Path) -> None:
    expectations = {
        "stabilityai/sd-turbo": ("sd-turbo", 1, 0.0, 512),
        "stabilityai/sdxl-turbo": ("sdxl-turbo", 1, 0.0, 512),
        "stable-diffusion-v1-5/stable-diffusion-v1-5": ("sd-1.5", 30, 7.5, 512),
        "stabilityai/stable-diffusion-2-1": ("sd-2", 30, 7.5, 768),
        "stabilityai/stable-diffusion-2-1-base": ("sd-2-base", 30, 7.5, 512),
        "stabilityai/stable-diffusion-xl-base-1.0": ("sdxl", 30, 5.0, 1024),
        "SimianLuo/LCM_Dreamshaper_v7": ("lcm-dreamshaper", 4, 8.0, 512),
    }
    for model, (name, steps, guidance, side) in expectations.items():
        profile, _ = match_profile(model)
        assert profile is not None, model
        assert (profile["name"], profile["steps"], profile["guidance"], profile["width"]) == (
            name,
            steps,
            guidance,
            side,
        )
    assert match_profile("my/own-finetune") == (None, None)
    assert match_profile("x", ["latent-consistency/lcm-lora-sdv1-5"])[1]["scheduler"] == "lcm"

    # A local copy named like a known model gets that profile, and explicit options still win.
    turbo = DiffusionTool(str(shutil.copytree(tiny_sd_dir, tmp_path / "sd-turbo")), device="cpu")
    resolved = turbo.resolve(GenerationParams())
    assert (resolved.steps, resolved.guidance, resolved.width, resolved.height) == (1, 0.0, 512, 512)
    assert turbo.resolve(GenerationParams(steps=2, width=64, height=64)).steps == 2


@pytest.mark.parametrize("name", scheduler_names())
def test_each_scheduler_name_runs_its_diffusers_class(tool: DiffusionTool, name: str) -> None:
    import diffusers

    from ideaforge.tools.diffusion import _data

    spec = _data()["schedulers"][name]
    result = tool.generate([KITTEN], FAST.model_copy(update={"scheduler": name}))[0]
    used = tool._entry.views[("txt2img", name)].scheduler if name != "euler" else tool.pipeline.scheduler
    assert type(used) is getattr(diffusers, spec["class"])
    assert all(used.config[key] == value for key, value in spec["config"].items())
    assert used.config.beta_schedule == "scaled_linear"  # the model's own betas are kept
    assert (result.scheduler, result.sampler) == (name, spec["a1111"])
    assert result.image.size == (64, 64) and np.ptp(pixels(result)) > 0
    assert (
        type(tool.pipeline.scheduler).__name__ == "EulerDiscreteScheduler"
    )  # the shared pipeline is untouched


def test_scheduler_choice_changes_the_image(tool: DiffusionTool) -> None:
    euler = tool.generate([KITTEN], FAST)[0]
    for name in ("euler_a", "dpm++_2m_karras", "lcm"):
        other = tool.generate([KITTEN], FAST.model_copy(update={"scheduler": name}))[0]
        assert np.abs(pixels(other) - pixels(euler)).mean() > 0.5, name


def test_sampler_names_are_a1111s(tool: DiffusionTool) -> None:
    result = tool.generate([KITTEN], FAST.model_copy(update={"scheduler": "dpm++_2m_karras"}))[0]
    assert (result.scheduler, result.sampler) == ("dpm++_2m_karras", "DPM++ 2M Karras")


# --- warnings -----------------------------------------------------------------------------------------------


def test_negative_prompt_at_guidance_one_or_less_is_reported(tool: DiffusionTool) -> None:
    low = tool.generate([KITTEN], FAST.model_copy(update={"guidance": 1.0}))[0]
    assert any("negative prompt has no effect at guidance 1" in w for w in low.warnings)
    high = tool.generate([KITTEN], FAST)[0]
    assert not any("negative prompt" in w for w in high.warnings)
    no_negative = tool.generate(
        [ImageRequest(positive="a cat", seed=1)], FAST.model_copy(update={"guidance": 0.0})
    )
    assert no_negative[0].warnings == []


def test_prompts_over_77_tokens_are_reported(tool: DiffusionTool) -> None:
    long = ImageRequest(positive=", ".join(["a red kitten in a wicker basket"] * 12), seed=1)
    result = tool.generate([long], FAST)[0]
    assert any("CLIP tokens; the text encoder reads only the first 77" in w for w in result.warnings)


def test_weighted_prompts_are_applied_with_compel(tool: DiffusionTool) -> None:
    plain = tool.generate([ImageRequest(positive="red kitten, basket", seed=3)], FAST)[0]
    weighted = tool.generate([ImageRequest(positive="(red kitten)1.5, basket", seed=3)], FAST)[0]
    again = tool.generate([ImageRequest(positive="(red kitten)1.5, basket", seed=3)], FAST)[0]
    assert plain_prompt("(red kitten)1.5, (basket)++") == "red kitten, basket"
    assert not np.array_equal(pixels(plain), pixels(weighted))
    assert np.array_equal(pixels(weighted), pixels(again))


# --- model shapes and formats -------------------------------------------------------------------------------


def test_tiny_sdxl_pipeline_generates(tiny_sdxl_dir: Path) -> None:
    xl = DiffusionTool(str(tiny_sdxl_dir), device="cpu")
    assert xl.profile.family == "sdxl" and xl.profile.name is None
    first = xl.generate([KITTEN], FAST)[0]
    again = xl.generate([KITTEN], FAST)[0]
    weighted = xl.generate([KITTEN.model_copy(update={"positive": "(a red kitten)1.4 in a basket"})], FAST)[0]
    assert type(xl.pipeline).__name__ == "StableDiffusionXLPipeline"
    assert first.image.size == (64, 64)
    assert np.array_equal(pixels(first), pixels(again))
    assert not np.array_equal(pixels(first), pixels(weighted))


def test_single_file_checkpoint_round_trip(tiny_sd_dir: Path, tmp_path: Path, tool: DiffusionTool) -> None:
    from tiny_models import build_tiny_single_file, single_file_config_dir

    checkpoint = build_tiny_single_file(tmp_path / "tiny.safetensors", source=tiny_sd_dir)
    configs = single_file_config_dir(checkpoint)
    assert not list(configs.rglob("*.safetensors"))  # configs only: every weight comes from the checkpoint
    single = DiffusionTool(str(checkpoint), device="cpu", config=str(configs))
    assert type(single.pipeline).__name__ == "StableDiffusionPipeline"
    from_file = single.generate([KITTEN], FAST)[0]
    from_folder = tool.generate([KITTEN], FAST)[0]
    assert np.array_equal(pixels(from_file), pixels(from_folder))


def test_img2img_reuses_the_loaded_modules(tool: DiffusionTool, tmp_path: Path) -> None:
    start = tool.generate([KITTEN], FAST)[0].image.resize((80, 48))
    path = tmp_path / "start.png"
    start.save(path)
    params = GenerationParams(steps=4, guidance=7.5, width=64, height=64, init_image=path, strength=0.5)
    events: list[StepEvent] = []
    results = tool.generate([KITTEN], params.model_copy(update={"n": 2}), on_step=events.append)
    assert [r.image.size for r in results] == [(64, 64), (64, 64)]
    assert (results[0].strength, results[0].init_image) == (0.5, str(path))
    assert "init image 80x48 was resized to 64x64" in results[0].warnings
    assert events[-1].total == 2  # int(4 steps x 0.5 strength) denoising steps
    once, again = (tool.generate([KITTEN], params)[0] for _ in range(2))
    assert np.array_equal(pixels(once), pixels(again))
    assert np.abs(pixels(once) - pixels(results[0])).max() <= 1  # the batched pair's first image
    view = tool._entry.views[("img2img", "euler")]
    assert type(view).__name__ == "StableDiffusionImg2ImgPipeline" and view.unet is tool.pipeline.unet

    with pytest.raises(InputError, match=r"steps x strength must be at least 1 \(e.g. --steps 2\)"):
        tool.resolve(params.model_copy(update={"steps": 1}))
    assert tool.resolve(GenerationParams(init_image=path, strength=0.3)).steps == 30  # profile steps suffice


def test_safety_checker_flags_are_recorded_and_can_be_turned_off(tmp_path: Path) -> None:
    from tiny_models import build_tiny_sd

    checked = build_tiny_sd(tmp_path / "checked", safety_checker=True)  # its checker flags every image
    flagged = DiffusionTool(str(checked), device="cpu").generate([KITTEN], FAST)[0]
    assert flagged.flagged is True
    assert any("safety checker flagged" in w for w in flagged.warnings)
    assert pixels(flagged).max() == 0  # blacked out by the checker, as diffusers ships it

    unchecked = DiffusionTool(str(checked), device="cpu", safety_checker=False)
    result = unchecked.generate([KITTEN], FAST)[0]
    assert unchecked.pipeline.safety_checker is None
    assert result.flagged is False and pixels(result).max() > 0


def test_lora_changes_the_image_and_scale_zero_does_not(
    tool: DiffusionTool, tiny_sd_dir: Path, tmp_path: Path
) -> None:
    from tiny_models import build_tiny_lora

    lora = build_tiny_lora(tmp_path / "lora", tiny_sd_dir)
    base = tool.generate([KITTEN], FAST)[0]
    styled_tool = DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[f"{lora}:1.0"])
    styled = styled_tool.generate([KITTEN], FAST)[0]
    muted = DiffusionTool(str(tiny_sd_dir), device="cpu", loras=[f"{lora}:0"]).generate([KITTEN], FAST)[0]
    assert styled_tool.pipeline is not tool.pipeline  # another LoRA set is another cached pipeline
    assert styled.loras == [{"source": str(lora), "scale": 1.0, "weight_name": None}]
    assert np.abs(pixels(styled) - pixels(base)).mean() > 1.0
    assert np.abs(pixels(muted) - pixels(base)).max() <= 1
