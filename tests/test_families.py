"""Model families (sd, sdxl, sd3, flux, generic) and diffusers' memory and speed options, against tiny random models
of each family loaded from disk, as `--model DIR` loads them. No network."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ideaforge.errors import InputError
from ideaforge.tools.diffusion import (
    DiffusionTool,
    GenerationParams,
    ImageRequest,
    RunOptions,
    encoder_budgets,
    family_named,
    family_of,
)
from ideaforge.tools.metadata import a1111_parameters, read_record, save_png

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]

FAST = GenerationParams(steps=2, guidance=4.0, width=64, height=64)
KITTEN = ImageRequest(positive="a red kitten in a wicker basket, warm light", seed=7)
FAMILIES = ("sd", "sdxl", "sd3", "flux")


def pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.int16)


@pytest.fixture(scope="module")
def tools(tiny_sd_dir: Path, tiny_sdxl_dir: Path, tiny_sd3_dir: Path, tiny_flux_dir: Path) -> dict[str, DiffusionTool]:
    folders = {"sd": tiny_sd_dir, "sdxl": tiny_sdxl_dir, "sd3": tiny_sd3_dir, "flux": tiny_flux_dir}
    return {name: DiffusionTool(str(folder), device="cpu").load() for name, folder in folders.items()}


# --- the family table and detection -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_each_tiny_folder_is_detected_as_its_family(tools: dict[str, DiffusionTool], name: str) -> None:
    tool = tools[name]
    assert family_of(tool.pipeline).name == name == tool.family.name == tool.profile.family
    assert type(tool.pipeline).__name__ == family_named(name).pipeline_class("txt2img")


def test_detection_reads_the_denoiser_and_config_not_only_names(tools: dict[str, DiffusionTool]) -> None:
    sd3, flux = tools["sd3"].pipeline, tools["flux"].pipeline
    custom = type("MyOwnPipeline", (), {})()  # a pipeline class nobody lists: its denoiser decides
    custom.transformer = sd3.transformer
    assert family_of(custom).name == "sd3"
    subclass = type("MyFlux", (type(flux),), {})  # a subclass of a known pipeline class
    assert family_of(subclass.__new__(subclass)).name == "flux"
    # FLUX.1-schnell is the same class; its transformer has no guidance embedding, so T5 reads 256 tokens.
    schnell = type("FluxPipeline", (), {})()
    schnell.transformer = type("FluxTransformer2DModel", (), {"config": {"guidance_embeds": False}})()
    assert (family_of(schnell).key, family_of(schnell).budget("t5")) == ("flux-schnell", 256)
    assert family_of(flux).key == "flux"


def test_an_unknown_pipeline_is_generic_with_its_own_limits(clip_tokenizer) -> None:
    class PixArtLikePipeline:
        tokenizer = clip_tokenizer

        def __call__(self, prompt: str, num_inference_steps: int = 20) -> None: ...

    generic = family_of(PixArtLikePipeline())
    assert (generic.name, generic.prompt_form, generic.weighting, generic.negative_prompt) == (
        "generic",
        "prose",
        False,
        False,
    )
    assert [(e.name, e.max_tokens) for e in generic.encoders] == [("clip", 77)]


def test_the_table_says_how_each_family_reads_prompts() -> None:
    table = {name: family_named(name) for name in (*FAMILIES, "generic")}
    assert {n: f.prompt_form for n, f in table.items()} == {
        "sd": "tags",
        "sdxl": "tags+phrases",
        "sd3": "prose",
        "flux": "prose",
        "generic": "prose",
    }
    assert [n for n, f in table.items() if f.weighting] == ["sd", "sdxl"]
    assert [n for n, f in table.items() if not f.negative_prompt] == ["flux"]
    assert [(e.name, e.max_tokens, e.limit) for e in table["sd3"].encoders] == [
        ("clip_l", 77, 77),
        ("clip_g", 77, 77),
        ("t5", 256, 512),
    ]
    assert family_named("FLUX.1").name == "flux" and family_named("sd3-turbo").steps == 4
    assert table["flux"].sampler("FlowMatchEulerDiscreteScheduler") == ("Euler", "Simple")
    with pytest.raises(InputError, match="family 'dalle' is unknown"):
        family_named("dalle")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sd", [("clip_l", 77)]),
        ("sdxl", [("clip_l", 77), ("clip_g", 77)]),
        ("sd3", [("clip_l", 77), ("clip_g", 77), ("t5", 256)]),
        ("flux", [("clip_l", 77), ("t5", 512)]),
    ],
)
def test_encoder_budgets_use_each_encoders_own_tokenizer(
    tools: dict[str, DiffusionTool], name: str, expected: list[tuple[str, int]]
) -> None:
    pipe = tools[name].pipeline
    budgets = encoder_budgets(pipe)
    assert [(n, b) for n, _, b in budgets] == expected
    attributes = [e.tokenizer for e in family_named(name).encoders]
    assert all(tokenizer is getattr(pipe, attr) for (_, tokenizer, _), attr in zip(budgets, attributes))
    if name in ("sd3", "flux"):  # T5 pieces, not CLIP BPE: the same words count differently
        t5 = budgets[-1][1]
        assert type(t5).__name__.startswith("T5") and t5("a red kitten")["input_ids"][-1] == t5.eos_token_id


# --- generation for each family ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILIES)
def test_txt2img_for_each_family_reproduces_and_writes_a_png(
    tools: dict[str, DiffusionTool], name: str, tmp_path: Path
) -> None:
    tool = tools[name]
    pair = [KITTEN, KITTEN.model_copy(update={"seed": 8})]
    first, other_seed = tool.generate(pair, FAST)
    again = tool.generate(pair, FAST)[0]
    alone = tool.generate([KITTEN], FAST)[0]
    assert first.image.size == (64, 64) and first.usable
    assert np.array_equal(pixels(first), pixels(again))  # the same call reproduces exactly
    # Alone instead of in a batch of two: the same image up to float rounding in batched matmuls (threads vary).
    assert np.abs(pixels(first) - pixels(alone)).max() <= 2
    assert not np.array_equal(pixels(first), pixels(other_seed))
    assert (first.family, first.seed, first.steps) == (name, 7, 2)
    assert first.sampler == "Euler"  # tiny sd/sdxl ship EulerDiscreteScheduler; sd3/flux's flow-matching Euler
    assert first.schedule_type == ("Simple" if name in ("sd3", "flux") else None)
    parameters = a1111_parameters(
        first.positive,
        first.negative,
        steps=first.steps,
        sampler=first.sampler,
        cfg_scale=first.guidance,
        seed=first.seed,
        width=first.width,
        height=first.height,
        model=first.model,
        extra={"Schedule type": first.schedule_type},
    )
    path = save_png(
        first.image, tmp_path, idea="kitten", seed=first.seed, parameters=parameters,
        record={"family": first.family, "options": first.options},
    )
    record = read_record(path)
    assert record["ideaforge"]["family"] == name and record["ideaforge"]["options"]["offload"] == "none"
    assert "Steps: 2, Sampler: Euler" in record["parameters"]


@pytest.mark.parametrize("name", ["sd3", "flux"])
def test_img2img_for_the_dit_families(tools: dict[str, DiffusionTool], name: str, tmp_path: Path) -> None:
    tool = tools[name]
    base = tool.generate([KITTEN], FAST)[0]
    base.image.save(tmp_path / "init.png")
    params = FAST.model_copy(update={"init_image": tmp_path / "init.png", "strength": 0.5, "steps": 4})
    edited = tool.generate([ImageRequest(positive="a blue kitten", seed=7)], params)[0]
    again = tool.generate([ImageRequest(positive="a blue kitten", seed=7)], params)[0]
    assert type(tool._entry.views[("img2img", tool.profile.scheduler)]).__name__ == family_named(name).img2img
    assert edited.image.size == (64, 64) and edited.strength == 0.5
    assert np.array_equal(pixels(edited), pixels(again))


def test_flux_takes_no_negative_prompt_and_says_so(tools: dict[str, DiffusionTool]) -> None:
    flux, sd3 = tools["flux"], tools["sd3"]
    with_negative = flux.generate([KITTEN.model_copy(update={"negative": "blurry"})], FAST)[0]
    without = flux.generate([KITTEN], FAST)[0]
    assert any("negative prompt was not used: the flux family takes none" in w for w in with_negative.warnings)
    assert np.array_equal(pixels(with_negative), pixels(without))  # nothing reached the pipeline
    assert without.warnings == []
    on_sd3 = sd3.generate([KITTEN.model_copy(update={"negative": "blurry"})], FAST)[0]
    assert not any("negative" in w for w in on_sd3.warnings)


@pytest.mark.parametrize("name", ["sd3", "flux"])
def test_weighting_syntax_is_stripped_with_a_warning_on_dit_families(
    tools: dict[str, DiffusionTool], name: str
) -> None:
    tool = tools[name]
    weighted = tool.generate([ImageRequest(positive="(red kitten)1.5, (basket)++", seed=3)], FAST)[0]
    plain = tool.generate([ImageRequest(positive="red kitten, basket", seed=3)], FAST)[0]
    assert np.array_equal(pixels(weighted), pixels(plain))
    assert any(f"does not apply to the {name} family" in w for w in weighted.warnings)
    assert weighted.positive == "(red kitten)1.5, (basket)++"  # the record keeps what was asked


def test_sd3_reads_three_prompts_and_the_t5_budget(tools: dict[str, DiffusionTool]) -> None:
    tool = tools["sd3"]
    same = tool.generate([KITTEN.model_copy(update={"prompt_3": KITTEN.positive})], FAST)[0]
    default = tool.generate([KITTEN], FAST)[0]
    other = tool.generate([KITTEN.model_copy(update={"prompt_3": "an oil painting of a harbour at dusk"})], FAST)[0]
    assert np.array_equal(pixels(same), pixels(default))
    assert not np.array_equal(pixels(other), pixels(default))
    assert other.prompts == {"prompt_3": "an oil painting of a harbour at dusk"}
    long = ImageRequest(positive=" ".join(["a red kitten sleeps in a wicker basket by the window."] * 30), seed=1)
    warnings = tool.generate([long], FAST)[0].warnings
    assert any("T5 tokens; the t5 encoder reads only the first 256" in w for w in warnings)
    assert not any("CLIP tokens" in w for w in warnings)  # prose past 77 CLIP tokens is by design here


def test_dit_families_preview_their_latents(tools: dict[str, DiffusionTool]) -> None:
    for name in ("sd3", "flux"):  # flux's latents are packed 2x2 tokens: unpacked before the 16-channel map
        events = []
        tools[name].generate([KITTEN], FAST, on_step=events.append, preview_every=1)
        assert [e.step for e in events] == [1, 2]
        assert all(e.preview is not None and e.preview.size == (8, 8) for e in events), name


def test_dit_families_run_only_their_own_scheduler(tools: dict[str, DiffusionTool]) -> None:
    flux = tools["flux"]
    with pytest.raises(InputError, match="does not fit the flux family"):
        flux.generate([KITTEN], FAST.model_copy(update={"scheduler": "euler_a"}))
    shipped = flux.generate([KITTEN], FAST.model_copy(update={"scheduler": "FlowMatchEulerDiscreteScheduler"}))[0]
    assert np.array_equal(pixels(shipped), pixels(flux.generate([KITTEN], FAST)[0]))  # a record reproduces


def test_a_profile_applies_only_to_its_own_family(tiny_flux_dir: Path, tmp_path: Path) -> None:
    misnamed = DiffusionTool(str(shutil.copytree(tiny_flux_dir, tmp_path / "sd-turbo")), device="cpu")
    assert (misnamed.profile.family, misnamed.profile.name, misnamed.profile.steps) == ("flux", None, 28)
    schnell = DiffusionTool(str(shutil.copytree(tiny_flux_dir, tmp_path / "FLUX.1-schnell")), device="cpu")
    assert (schnell.profile.name, schnell.profile.steps, schnell.profile.guidance) == ("flux-schnell", 4, 0.0)


def test_tiny_models_cli_builds_any_family(tmp_path: Path) -> None:
    from tiny_models import main

    assert main(["flux-schnell", str(tmp_path / "schnell")]) == 0
    tool = DiffusionTool(str(tmp_path / "schnell"), device="cpu")
    assert tool.family.key == "flux-schnell"
    assert [(n, b) for n, _, b in tool.encoder_budgets()] == [("clip_l", 77), ("t5", 256)]
    assert tool.generate([KITTEN], FAST)[0].family == "flux-schnell"


def test_single_files_are_told_apart_by_their_keys(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    from ideaforge.tools.diffusion.loading import _pipeline_class_for_file

    for marker, expected in [
        ("model.diffusion_model.double_blocks.0.img_attn.qkv.weight", "FluxPipeline"),
        ("model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight", "StableDiffusion3Pipeline"),
        ("conditioner.embedders.1.model.ln_final.weight", "StableDiffusionXLPipeline"),
        ("model.diffusion_model.input_blocks.0.0.weight", "StableDiffusionPipeline"),
    ]:
        path = tmp_path / f"{expected}.safetensors"
        save_file({marker: torch.zeros(1)}, str(path))
        assert _pipeline_class_for_file(str(path), None).__name__ == expected


# --- memory and speed options -----------------------------------------------------------------------------------


def test_options_are_reported_on_every_image(tools: dict[str, DiffusionTool]) -> None:
    results = tools["sd"].generate([KITTEN], FAST.model_copy(update={"n": 2}))
    for result in results:
        assert result.options == {
            "offload": "none",
            "vae_slicing": False,
            "vae_tiling": False,
            "attention_slicing": False,
            "compile": "off",
            "attention_backend": None,
            "cache": None,
            "layerwise_casting": None,
        }


def test_vae_tiling_and_slicing_work_on_cpu(tiny_sd_dir: Path, tools: dict[str, DiffusionTool]) -> None:
    from ideaforge.tools.diffusion.options import _vae_for_call

    big = FAST.model_copy(update={"width": 128, "height": 128, "n": 2})  # the tiny VAE tiles at 64 px
    tiled_tool = DiffusionTool(str(tiny_sd_dir), device="cpu", vae_tiling=True, vae_slicing=True)
    tiled = tiled_tool.generate([KITTEN], big)
    plain = tools["sd"].generate([KITTEN], big)
    assert tiled_tool.pipeline is tools["sd"].pipeline  # set per call: no second copy of the weights
    assert tiled[0].image.size == (128, 128)
    assert (tiled[0].options["vae_tiling"], tiled[0].options["vae_slicing"]) == (True, True)
    assert plain[0].options["vae_tiling"] is False
    assert not np.array_equal(pixels(tiled[0]), pixels(plain[0]))  # the tiled decode really ran
    # Left to auto, both turn on from 1024 px a side, and off again below.
    vae = tools["sd"].pipeline.vae
    assert _vae_for_call(tools["sd"].pipeline, RunOptions(), 1024, 768) == {"vae_slicing": True, "vae_tiling": True}
    assert vae.use_tiling and vae.use_slicing
    assert _vae_for_call(tools["sd"].pipeline, RunOptions(), 512, 512) == {"vae_slicing": False, "vae_tiling": False}
    assert not vae.use_tiling


@pytest.mark.parametrize("offload", ["model", "sequential", "group"])
def test_offload_on_cpu_fails_with_one_line(tiny_sd_dir: Path, offload: str) -> None:
    with pytest.raises(InputError) as caught:
        DiffusionTool(str(tiny_sd_dir), device="cpu", offload=offload).load()
    message = str(caught.value)
    assert "\n" not in message and f"offload {offload!r}" in message and "--offload none" in message
    with pytest.raises(InputError, match="offload 'disk' is unknown"):
        DiffusionTool(str(tiny_sd_dir), offload="disk")


def test_compile_reaches_the_denoiser_regionally_where_it_can(tiny_flux_dir: Path, tiny_sd3_dir: Path) -> None:
    # torch.compile compiles on the first call (about 20 s here), so this checks what was set up, not a run.
    flux = DiffusionTool(str(tiny_flux_dir), device="cpu", compile=True).load()
    blocks = [m for m in flux.pipeline.transformer.modules() if type(m).__name__ == "FluxTransformerBlock"]
    assert flux._entry.applied == {"compile": "regional"}
    assert blocks and all(block._compiled_call_impl is not None for block in blocks)
    sd3 = DiffusionTool(str(tiny_sd3_dir), device="cpu", compile=True).load()
    assert sd3._entry.applied == {"compile": "full"}  # SD3Transformer2DModel names no repeated blocks
    assert sd3.pipeline.transformer._compiled_call_impl is not None


def test_first_block_cache_and_fp8_casting_on_flux(tiny_flux_dir: Path, tiny_sd3_dir: Path) -> None:
    import torch

    cached = DiffusionTool(str(tiny_flux_dir), device="cpu", cache="first_block")
    first, again = cached.generate([KITTEN], FAST)[0], cached.generate([KITTEN], FAST)[0]
    assert first.options["cache"] == "first_block" and np.array_equal(pixels(first), pixels(again))
    with pytest.raises(InputError, match="SD3Transformer2DModel has none"):
        DiffusionTool(str(tiny_sd3_dir), device="cpu", cache="first_block").load()
    fp8 = DiffusionTool(str(tiny_flux_dir), device="cpu", layerwise_casting="fp8")
    result = fp8.generate([KITTEN], FAST)[0]
    dtypes = {p.dtype for p in fp8.pipeline.transformer.parameters()}
    assert torch.float8_e4m3fn in dtypes and result.options["layerwise_casting"] == "fp8" and result.usable


def test_attention_backends_where_diffusers_dispatches(tiny_flux_dir: Path, tiny_sd_dir: Path) -> None:
    native = DiffusionTool(str(tiny_flux_dir), device="cpu", attention_backend="native")
    assert native.generate([KITTEN], FAST)[0].options["attention_backend"] == "native"
    with pytest.raises(InputError, match="UNet2DConditionModel's does not"):
        DiffusionTool(str(tiny_sd_dir), device="cpu", attention_backend="native").load()
    with pytest.raises(InputError, match="'warp' is unknown to diffusers"):
        DiffusionTool(str(tiny_flux_dir), device="cpu", attention_backend="warp").load()
