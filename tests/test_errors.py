"""`ideaforge.errors`: the exception set and `explain`, the one formatter of bad input for every entry point."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ideaforge.errors import (
    Cancelled,
    GenerationError,
    IdeaForgeError,
    InputError,
    LLMError,
    ModelNotFoundError,
    explain,
)


class Args(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: int = Field(default=1, ge=1)
    name: str = ""
    api_key: str = Field(default="", max_length=4)
    tags: list[int] = Field(default_factory=list)


class Outer(BaseModel):
    inner: Args


def explained(**values: object) -> str:
    with pytest.raises(ValidationError) as err:
        Args(**values)
    return explain(err.value)


def test_one_problem_is_field_value_and_rule() -> None:
    assert explained(steps=0) == "steps = 0: Input should be greater than or equal to 1"


def test_several_problems_are_joined_with_semicolons_on_one_line() -> None:
    message = explained(steps=0, tags=["x"], bogus=1)
    assert message == (
        "steps = 0: Input should be greater than or equal to 1; "
        "tags.0 = 'x': Input should be a valid integer, unable to parse string as an integer; "
        "unknown argument 'bogus': leave it out or check its spelling"
    )
    assert "\n" not in message and "https://" not in message


def test_more_than_five_problems_are_counted_not_listed() -> None:
    message = explained(tags=["a", "b", "c", "d", "e", "f", "g"])
    assert message.count("tags.") == 5 and message.endswith("; and 2 more")


def test_unknown_fields_use_the_argument_wording() -> None:
    assert explained(stepz=2) == "unknown argument 'stepz': leave it out or check its spelling"


def test_missing_fields_are_named() -> None:
    with pytest.raises(ValidationError) as err:
        Outer.model_validate({})
    assert explain(err.value) == "inner is required"


def test_nested_fields_are_dotted_paths() -> None:
    with pytest.raises(ValidationError) as err:
        Outer.model_validate({"inner": {"steps": -2}})
    assert explain(err.value) == "inner.steps = -2: Input should be greater than or equal to 1"


def test_secret_fields_show_stars_not_the_value() -> None:
    message = explained(api_key="sk-live-0123456789")
    assert message == "api_key = ***: String should have at most 4 characters"
    assert "sk-live" not in message


@pytest.mark.parametrize("field", ["token", "password", "client_secret", "openai_api_key"])
def test_every_secret_word_is_hidden(field: str) -> None:
    model = type("M", (BaseModel,), {"__annotations__": {field: int}})
    with pytest.raises(ValidationError) as err:
        model(**{field: "hunter2-secret-value"})
    message = explain(err.value)
    assert message.startswith(f"{field} = ***: ") and "hunter2" not in message


def test_custom_secret_fields() -> None:
    with pytest.raises(ValidationError) as err:
        Args(name=5)  # type: ignore[arg-type]
    assert explain(err.value, secret_fields=("name",)).startswith("name = ***")


def test_long_values_are_shortened_on_one_line() -> None:
    message = explained(steps="x\n" * 200)
    assert "\n" not in message and len(message) < 200 and "..." in message


def test_value_error_prefix_is_dropped() -> None:
    from pydantic import field_validator

    class Named(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _known(cls, v: str) -> str:
            raise ValueError("unknown name; choose one of: a, b")

    with pytest.raises(ValidationError) as err:
        Named(name="c")
    assert explain(err.value) == "name = 'c': unknown name; choose one of: a, b"


def test_other_exceptions_become_their_message_on_one_line() -> None:
    assert explain(ValueError("line one\n   line two")) == "line one line two"
    assert explain(RuntimeError("")) == "RuntimeError"


@pytest.mark.parametrize(
    "cls, code", [(InputError, 2), (ModelNotFoundError, 2), (GenerationError, 1), (LLMError, 1), (Cancelled, 130)]
)
def test_exit_codes_and_hierarchy(cls: type[IdeaForgeError], code: int) -> None:
    assert cls.exit_code == code and issubclass(cls, IdeaForgeError)


def test_input_error_is_a_value_error_for_plain_callers() -> None:
    with pytest.raises(ValueError):
        raise InputError("size 'banana' is not WIDTHxHEIGHT")
