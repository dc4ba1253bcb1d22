"""`ideaforge.agent.request`: the one validated request of every entry point, its ranges and its error lines."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ideaforge import prompts
from ideaforge.agent.request import (
    MAX_IDEA_CHARS,
    MAX_SEED,
    MAX_SIDE,
    GenerateRequest,
    OptimizeRequest,
    RunOptions,
    parse_size,
)
from ideaforge.agent.settings import Settings
from ideaforge.errors import InputError
from ideaforge.tools.diffusion import scheduler_names


def generate(**values: Any) -> GenerateRequest:
    return GenerateRequest.parse(**{"idea": "a red kitten", **values})


def error_of(**values: Any) -> str:
    """The one `InputError` line a bad `GenerateRequest` gives; fails the test when it parses."""
    with pytest.raises(InputError) as err:
        generate(**values)
    message = str(err.value)
    assert "\n" not in message and "errors.pydantic.dev" not in message and "http" not in message
    return message


# -- ranges: every boundary on both sides ------------------------------------------------------------------
@pytest.mark.parametrize(
    "field, lowest, highest",
    [("seed", 0, MAX_SEED), ("steps", 1, 500), ("n", 1, 16), ("max_attempts", 1, 20), ("candidates", 1, 8),
     ("guidance", 0.0, 50.0)],
)
def test_range_boundaries_are_accepted(field: str, lowest: Any, highest: Any) -> None:
    assert getattr(generate(**{field: lowest}), field) == lowest
    assert getattr(generate(**{field: highest}), field) == highest


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("seed", -1, "seed = -1: Input should be greater than or equal to 0"),
        ("seed", 2**32, "seed = 4294967296: Input should be less than or equal to 4294967295"),
        ("steps", 0, "steps = 0: Input should be greater than or equal to 1"),
        ("steps", 501, "steps = 501: Input should be less than or equal to 500"),
        ("n", 0, "n = 0"),
        ("n", 17, "n = 17"),
        ("max_attempts", 0, "max_attempts = 0"),
        ("max_attempts", 21, "max_attempts = 21"),
        ("candidates", 0, "candidates = 0"),
        ("candidates", 9, "candidates = 9"),
        ("guidance", -0.5, "guidance = -0.5"),
        ("guidance", 50.5, "guidance = 50.5"),
        ("guidance", float("nan"), "guidance = nan: Input should be a finite number"),
        ("guidance", float("inf"), "guidance = inf: Input should be a finite number"),
        ("threshold", -1.0, "threshold = -1.0"),
        ("threshold", float("inf"), "threshold = inf"),
    ],
)
def test_values_past_a_boundary_are_rejected_naming_field_and_value(field: str, value: Any, says: str) -> None:
    assert error_of(**{field: value}).startswith(says)


def test_seed_is_strict_bools_and_strings_are_rejected() -> None:
    assert error_of(seed=True) == "seed = True: Input should be a valid integer"
    assert error_of(seed=False).startswith("seed = False")
    assert error_of(seed="5").startswith("seed = '5'")


@pytest.mark.parametrize("field", ["steps", "n", "max_attempts", "candidates"])
def test_true_is_not_a_count(field: str) -> None:
    assert error_of(**{field: True}).startswith(f"{field} = True")


def test_idea_length_boundaries() -> None:
    assert generate(idea="x" * MAX_IDEA_CHARS).idea == "x" * MAX_IDEA_CHARS
    assert error_of(idea="x" * (MAX_IDEA_CHARS + 1)).startswith("idea = 'xxx")
    assert error_of(idea="") == "idea = '': String should have at least 1 character"
    with pytest.raises(InputError, match="^idea is required$"):
        GenerateRequest.parse(seed=1)


def test_explicit_prompt_may_not_be_empty_but_the_negative_may() -> None:
    assert error_of(prompt="").startswith("prompt = ''")
    assert generate(negative_prompt="").negative_prompt == ""


# -- size ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, normal",
    [("512x512", "512x512"), ("768X512", "768x512"), (" 512 × 768 ", "512x768"), ("8x8", "8x8"),
     (f"{MAX_SIDE}x8", f"{MAX_SIDE}x8")],
)
def test_sizes_in_range_are_normalized(text: str, normal: str) -> None:
    assert generate(size=text).size == normal


@pytest.mark.parametrize(
    "text, says",
    [
        ("100x7", "size = '100x7': size 100x7 is invalid: width and height must be multiples of 8"),
        ("100x64", "size 100x64 is invalid"),
        ("0x64", "size 0x64 is invalid"),
        (f"{MAX_SIDE + 8}x8", f"size {MAX_SIDE + 8}x8 is invalid"),
        ("banana", "size = 'banana': String should match pattern"),
        ("512", "size = '512'"),
        ("-64x64", "size = '-64x64'"),
    ],
)
def test_bad_sizes_are_rejected_with_the_value(text: str, says: str) -> None:
    assert says in error_of(size=text)


def test_parse_size_on_its_own() -> None:
    assert parse_size("512x768") == (512, 768)
    assert parse_size((64, 128)) == (64, 128)
    assert parse_size(None) is None and parse_size("") is None
    with pytest.raises(InputError, match=r"^size 'banana' is not WIDTHxHEIGHT; use e\.g\. --size 512x512$"):
        parse_size("banana")
    with pytest.raises(InputError, match=r"^size 7x8 is invalid: .* between 8 and 4096"):
        parse_size((7, 8))


sides = st.integers(min_value=1, max_value=MAX_SIDE // 8).map(lambda k: 8 * k)


@settings(max_examples=200, deadline=None)
@given(sides, sides, st.sampled_from(["x", "X", "×"]), st.sampled_from(["", " ", "  "]))
def test_any_valid_size_round_trips(width: int, height: int, sep: str, pad: str) -> None:
    text = f"{pad}{width}{pad}{sep}{pad}{height}{pad}"
    request = generate(size=text)
    assert request.size == f"{width}x{height}"
    assert parse_size(request.size) == (width, height) == parse_size(text)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=99_999), st.integers(min_value=0, max_value=99_999))
def test_any_side_off_the_grid_is_rejected(width: int, height: int) -> None:
    valid = all(0 < side <= MAX_SIDE and side % 8 == 0 for side in (width, height))
    if valid:
        assert generate(size=f"{width}x{height}").size == f"{width}x{height}"
    else:
        assert f"size {width}x{height} is invalid" in error_of(size=f"{width}x{height}")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_SEED + 1)))
def test_any_seed_outside_0_to_2_32_minus_1_is_rejected(seed: int) -> None:
    assert error_of(seed=seed).startswith("seed = ")


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=MAX_SEED))
def test_any_seed_inside_the_range_is_kept(seed: int) -> None:
    assert generate(seed=seed).seed == seed


# -- style and scheduler: names users type become the canonical ones ----------------------------------------
@pytest.mark.parametrize(
    "typed, canonical",
    [("Watercolor", "watercolor"), ("WATERCOLOR", "watercolor"), ("pixel art", "pixel-art"),
     ("pixel_art", "pixel-art"), (" Oil Painting ", "oil-painting")],
)
def test_style_names_are_case_and_separator_insensitive(typed: str, canonical: str) -> None:
    assert generate(style=typed).style == canonical
    assert OptimizeRequest.parse(idea="a cat", style=typed).style == canonical


def test_empty_style_means_no_style_and_is_kept_over_a_default() -> None:
    assert generate(style="").style == ""
    assert generate(style="   ").style == ""
    assert generate(style="").given() == {"style": ""}  # passed on, so it overrides a configured style
    assert generate().style is None


def test_unknown_style_lists_the_choices() -> None:
    message = error_of(style="vaporwave")
    assert message.startswith("style = 'vaporwave': unknown style; choose one of: ")
    assert all(name in message for name in prompts.style_names())


@pytest.mark.parametrize(
    "typed, canonical",
    [("DPM++ 2M Karras", "dpm++_2m_karras"), ("euler a", "euler_a"), ("Euler", "euler"), ("dpm++_2m", "dpm++_2m")],
)
def test_scheduler_aliases_become_canonical(typed: str, canonical: str) -> None:
    assert generate(scheduler=typed).scheduler == canonical


def test_unknown_scheduler_lists_the_choices() -> None:
    message = error_of(scheduler="warp-drive")
    assert message.startswith("scheduler = 'warp-drive': unknown scheduler; choose one of: euler, ")


# -- unknown fields, the three models ------------------------------------------------------------------------
def test_unknown_fields_are_rejected_by_name() -> None:
    assert error_of(bogus=1) == "unknown argument 'bogus': leave it out or check its spelling"
    with pytest.raises(InputError, match="^unknown argument 'stepz'"):
        RunOptions.parse(stepz=2)
    with pytest.raises(InputError, match="^unknown argument 'seed'"):
        OptimizeRequest.parse(idea="a cat", seed=1)


def test_run_options_take_local_files_but_not_the_idea(tmp_path) -> None:
    options = RunOptions.parse(out=str(tmp_path), init_image=str(tmp_path / "in.png"), strength=1.0)
    assert options.out == tmp_path and options.init_image == tmp_path / "in.png" and options.strength == 1.0
    with pytest.raises(InputError, match="^unknown argument 'idea'"):
        RunOptions.parse(idea="a cat")
    with pytest.raises(InputError, match="^unknown argument 'out'"):
        generate(out=str(tmp_path))  # the agent-facing request offers no file system access
    for bad in (0, 0.0, 1.01, float("nan")):
        with pytest.raises(InputError, match="^strength = "):
            RunOptions.parse(strength=bad)


def test_given_is_what_the_caller_set_without_idea_and_prompts() -> None:
    request = generate(prompt="a kitten, basket", negative_prompt="blurry", seed=0, steps=4, critique=False)
    assert request.given() == {"seed": 0, "steps": 4, "critique": False}
    assert generate().given() == {}


def test_a_parsed_request_is_frozen() -> None:
    from pydantic import ValidationError

    request = generate(seed=1)
    with pytest.raises(ValidationError):
        request.seed = 2  # type: ignore[misc]


def test_only_the_first_five_problems_are_spelled_out() -> None:
    message = error_of(seed=-1, steps=0, n=0, candidates=0, max_attempts=0, guidance=-1.0, threshold=-1.0)
    assert message.count("; ") == 5 and message.endswith("and 2 more")


# -- the JSON schema an agent sees carries the ranges -----------------------------------------------------------
def prop(model: type, name: str) -> dict[str, Any]:
    """The schema of one optional field: the non-null branch of its anyOf."""
    field = model.model_json_schema()["properties"][name]
    (branch,) = [b for b in field.get("anyOf", [field]) if b.get("type") != "null"]
    return branch


@pytest.mark.parametrize("model", [GenerateRequest, OptimizeRequest, RunOptions])
def test_schema_forbids_unknown_properties(model: type) -> None:
    assert model.model_json_schema()["additionalProperties"] is False


def test_schema_carries_minimum_maximum_enum_and_pattern() -> None:
    assert (prop(GenerateRequest, "seed")["minimum"], prop(GenerateRequest, "seed")["maximum"]) == (0, MAX_SEED)
    assert (prop(GenerateRequest, "steps")["minimum"], prop(GenerateRequest, "steps")["maximum"]) == (1, 500)
    assert (prop(GenerateRequest, "guidance")["minimum"], prop(GenerateRequest, "guidance")["maximum"]) == (0, 50)
    assert (prop(GenerateRequest, "n")["minimum"], prop(GenerateRequest, "n")["maximum"]) == (1, 16)
    assert prop(GenerateRequest, "threshold")["minimum"] == 0
    assert prop(GenerateRequest, "style")["enum"] == prompts.style_names()
    assert prop(OptimizeRequest, "style")["enum"] == prompts.style_names()
    assert prop(GenerateRequest, "scheduler")["enum"] == scheduler_names()
    assert "512x512" in prop(GenerateRequest, "size")["examples"]
    pattern = prop(GenerateRequest, "size")["pattern"]
    import re

    assert re.match(pattern, "512x768") and not re.match(pattern, "banana")
    idea = GenerateRequest.model_json_schema()["properties"]["idea"]
    assert (idea["minLength"], idea["maxLength"]) == (1, MAX_IDEA_CHARS)
    assert GenerateRequest.model_json_schema()["required"] == ["idea"]
    strength = prop(RunOptions, "strength")
    assert (strength["exclusiveMinimum"], strength["maximum"]) == (0, 1)


def test_every_field_is_described_for_the_agent() -> None:
    for model in (GenerateRequest, OptimizeRequest, RunOptions):
        for name, field in model.model_json_schema()["properties"].items():
            assert field.get("description"), f"{model.__name__}.{name} has no description"


@pytest.mark.parametrize("name", ["steps", "guidance", "size", "n", "max_attempts", "candidates", "threshold"])
def test_settings_share_the_request_types(name: str) -> None:
    """A range is written once: `Settings` and the request give the same schema for a shared option."""
    constraints = {"type", "minimum", "maximum", "exclusiveMinimum", "pattern", "enum"}

    def ranges(model: type) -> dict[str, Any]:
        return {k: v for k, v in prop(model, name).items() if k in constraints}

    assert ranges(Settings) == ranges(GenerateRequest) and len(ranges(Settings)) >= 2
