"""Settings precedence: defaults < IDEAFORGE_* environment < explicit options."""

import pytest

from ideaforge.agent.settings import load_settings, parse_size
from ideaforge.errors import InputError


def test_defaults() -> None:
    s = load_settings()
    assert s.model == "stabilityai/sd-turbo" and s.clip_model == "openai/clip-vit-base-patch32"
    assert s.engine == "auto" and s.openai_api_key is None


def test_environment_then_explicit(monkeypatch) -> None:
    for key, value in {
        "IDEAFORGE_MODEL": "/models/sd15",
        "IDEAFORGE_CLIP_MODEL": "/models/clip",
        "IDEAFORGE_ENGINE": "rules",
        "IDEAFORGE_STEPS": "12",
        "IDEAFORGE_SIZE": "768x512",
        "IDEAFORGE_OUT": "/tmp/pictures",
    }.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert (s.model, s.clip_model, s.engine, s.steps, s.size, str(s.out)) == (
        "/models/sd15", "/models/clip", "rules", 12, "768x512", "/tmp/pictures"
    )
    s = load_settings(model="/other", steps=3, size=None)
    assert s.model == "/other" and s.steps == 3 and s.size == "768x512"  # None means "not given"


def test_openai_key_is_secret(monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-XYZ")
    s = load_settings()
    assert s.openai_api_key.get_secret_value() == "sk-live-XYZ"
    assert "XYZ" not in repr(s) and "XYZ" not in str(s.model_dump()) and "XYZ" not in s.model_dump_json()
    assert s.llm_configured()


@pytest.mark.parametrize(
    "kwargs, needle",
    [({"steps": 0}, "steps"), ({"steps": 10_000}, "steps"), ({"guidance": float("nan")}, "guidance"),
     ({"guidance": -1.0}, "guidance"), ({"engine": "gpt"}, "engine"), ({"size": "100x64"}, "100x64")],
)
def test_bad_values_name_the_field(kwargs, needle) -> None:
    with pytest.raises(InputError) as err:
        load_settings(**kwargs)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("text, expected", [("512x512", (512, 512)), ("1024X768", (1024, 768)), ("64×64", (64, 64))])
def test_parse_size(text, expected) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0x512", "-8x8", "513x512", "512", "axb", "99999x8"])
def test_parse_size_rejects(text) -> None:
    with pytest.raises(InputError, match="size"):
        parse_size(text)
