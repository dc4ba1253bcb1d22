"""`IdeaForge`'s construction: misspelt settings fail by name, and settings are read once, not per run."""

from __future__ import annotations

import pytest
from doubles import ShapesGenerator, ShapesScorer

from ideaforge import IdeaForge
from ideaforge.errors import InputError


def shapes_forge(tmp_path, **settings) -> tuple[IdeaForge, ShapesGenerator]:
    gen = ShapesGenerator()
    forge = IdeaForge(engine="rules", generator=gen, scorer=ShapesScorer(), out=str(tmp_path), **settings)
    return forge, gen


def test_a_misspelt_setting_is_refused_by_name() -> None:
    with pytest.raises(InputError) as err:
        IdeaForge(stepz=2)
    assert "'stepz'" in str(err.value) and "\n" not in str(err.value)


def test_a_bad_setting_value_is_refused_when_the_forge_is_built(tmp_path) -> None:
    with pytest.raises(InputError, match="^steps = 0"):
        IdeaForge(engine="rules", generator=ShapesGenerator(), out=str(tmp_path), steps=0)


@pytest.mark.parametrize("later", ["0", "3"])
def test_settings_are_read_once_not_at_every_run(tmp_path, monkeypatch, later: str) -> None:
    forge, gen = shapes_forge(tmp_path, critique=False)
    monkeypatch.setenv("IDEAFORGE_N", later)  # invalid (0) or different (3): neither reaches the built forge
    result = forge.run("a red circle", seed=4)
    assert forge.settings.n == 1
    assert len(gen.calls) == 1 and len(gen.calls[0]) == 1  # one image: n=1, as when the forge was built
    assert [img.seed for img in result.attempts[0].images] == [4]


def test_the_environment_is_read_when_the_forge_is_built(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IDEAFORGE_N", "2")
    forge, gen = shapes_forge(tmp_path, critique=False)
    monkeypatch.delenv("IDEAFORGE_N")
    result = forge.run("a red circle", seed=4)
    assert [img.seed for img in result.attempts[0].images] == [4, 5] and len(gen.calls[0]) == 2


def test_run_options_override_settings_for_that_run_only(tmp_path) -> None:
    forge, gen = shapes_forge(tmp_path, critique=False)
    forge.run("a red circle", seed=4, n=3)
    forge.run("a red circle", seed=4)
    assert [len(call) for call in gen.calls] == [3, 1]
    assert forge.settings.n == 1


def test_a_model_setting_is_refused_per_run(tmp_path) -> None:
    forge, gen = shapes_forge(tmp_path)
    with pytest.raises(InputError, match="'model' selects a loaded model"):
        forge.run("a red circle", model="other")
    assert gen.calls == []
