"""Generation parameters, scheduler names and LoRA specs: checked before anything loads, one-line errors. No model."""

from __future__ import annotations

import pytest

from ideaforge.errors import InputError
from ideaforge.tools.diffusion import (
    MAX_SEED,
    GenerationParams,
    ImageRequest,
    a1111_sampler,
    canonical_scheduler,
    parse_lora,
    scheduler_names,
)

FAST = GenerationParams(steps=2, guidance=7.5, width=64, height=64)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"width": 100, "height": 64}, "size 100x64 is invalid: width and height must be multiples of 8"),
        ({"width": 0, "height": 64}, "size 0x64 is invalid"),
        ({"width": 8192, "height": 512}, "size 8192x512 is invalid"),
        ({"width": 512}, "size needs both width and height"),
        ({"steps": 0}, "steps = 0: Input should be greater than or equal to 1"),
        ({"steps": 501}, "steps = 501"),
        ({"guidance": float("nan")}, "guidance = nan"),
        ({"guidance": -1.0}, "guidance = -1.0"),
        ({"n": 17}, "n = 17"),
        ({"strength": 0.0}, "strength = 0.0"),
        ({"scheduler": "warp-drive"}, "scheduler 'warp-drive' is unknown; use one of: euler"),
        ({"init_image": "no/such/image.png"}, "init image 'no/such/image.png' does not exist"),
        ({"stepz": 3}, "unknown argument 'stepz'"),
    ],
)
def test_bad_generation_params_raise_one_line_input_errors(fields: dict, message: str) -> None:
    with pytest.raises(InputError) as caught:
        GenerationParams(**fields)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_bad_seed_is_an_input_error() -> None:
    with pytest.raises(InputError, match="seed = -1"):
        ImageRequest(positive="x", seed=-1)


def test_seeds_are_0_to_2_to_the_32_minus_1() -> None:
    assert MAX_SEED == 4294967295 == 2**32 - 1
    assert ImageRequest(positive="x", seed=0).seed == 0
    assert ImageRequest(positive="x", seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(InputError, match="seed = 4294967296: Input should be less than or equal to 4294967295"):
        ImageRequest(positive="x", seed=2**32)
    with pytest.raises(InputError, match="seed = 18446744073709551615"):
        ImageRequest(positive="x", seed=2**64 - 1)


@pytest.mark.parametrize(
    ("update", "message"),
    [
        ({"steps": 0}, "steps = 0: Input should be greater than or equal to 1"),
        ({"width": 100}, "size 100x64 is invalid"),
        ({"height": None}, "size needs both width and height"),
        ({"scheduler": "warp-drive"}, "scheduler 'warp-drive' is unknown"),
        ({"stepz": 3}, "unknown argument 'stepz'"),
    ],
)
def test_copies_with_changes_are_validated(update: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        FAST.model_copy(update=update)
    with pytest.raises(InputError, match=message):
        FAST.replace(**update)


def test_a_valid_copy_is_validated_like_a_new_instance() -> None:
    euler_a = FAST.model_copy(update={"scheduler": "Euler a"})
    assert euler_a.scheduler == "euler_a"  # canonicalised, as GenerationParams(scheduler="Euler a") would be
    assert (euler_a.steps, euler_a.width, euler_a.height) == (2, 64, 64)
    assert FAST.replace(steps=3) == GenerationParams(steps=3, guidance=7.5, width=64, height=64)
    assert FAST.replace(steps=3).model_fields_set == {"steps", "guidance", "width", "height"}
    assert FAST.model_copy() == FAST and FAST.model_copy(update={}) == FAST
    with pytest.raises(InputError, match="seed = -1"):
        ImageRequest(positive="x", seed=7).model_copy(update={"seed": -1})
    assert ImageRequest(positive="x").replace(seed=MAX_SEED).seed == MAX_SEED


def test_scheduler_names_and_aliases() -> None:
    assert {"euler", "euler_a", "dpm++_2m", "dpm++_2m_karras", "ddim", "lcm"} <= set(scheduler_names())
    assert canonical_scheduler("Euler a") == "euler_a"
    assert canonical_scheduler("DPM++ 2M Karras") == "dpm++_2m_karras"
    assert canonical_scheduler("dpmpp-2m-karras") == "dpm++_2m_karras"



def test_a1111_sampler_names() -> None:
    assert a1111_sampler("euler_a") == "Euler a"
    assert a1111_sampler("dpm++_2m_karras") == "DPM++ 2M Karras"
    assert a1111_sampler("SomeUnlistedScheduler") == "SomeUnlistedScheduler"


def test_parse_lora() -> None:
    assert parse_lora("loras/ink.safetensors:0.8") == parse_lora("loras/ink.safetensors:0.8 ")
    assert (
        parse_lora("loras/ink.safetensors:0.8").source,
        parse_lora("loras/ink.safetensors:0.8").scale,
    ) == ("loras/ink.safetensors", 0.8)
    assert parse_lora("owner/repo").scale == 1.0
    assert parse_lora(r"C:\loras\ink.safetensors").source == r"C:\loras\ink.safetensors"
    hub = parse_lora("owner/repo/pytorch_lora_weights.safetensors:0.5")
    assert (hub.source, hub.weight_name, hub.scale) == ("owner/repo", "pytorch_lora_weights.safetensors", 0.5)
    with pytest.raises(InputError, match="lora '' is empty"):
        parse_lora(" ")
    with pytest.raises(InputError, match="lora scale 'nan'"):
        parse_lora("ink:nan")
