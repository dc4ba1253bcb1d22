"""`PngRecord`: the record every image carries; old records read, damaged or hand-edited ones fail in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from doubles import ShapesGenerator, ShapesScorer
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ideaforge import IdeaForge
from ideaforge.agent.checklist import link
from ideaforge.agent.models import PromptSpec
from ideaforge.agent.record import PngRecord
from ideaforge.errors import InputError
from ideaforge.tools.metadata import RECORD_KEY, read_record

# What an early version wrote: no idea_en, elements, candidate, loras, scores, versions or batch.
OLD = {"idea": "a red kitten", "positive": "a red kitten, basket", "negative": "blurry", "seed": 7,
       "model": "stabilityai/sd-turbo", "steps": 2, "guidance": 0.0, "size": "512x512", "round": 2}


def png(path: Path, record: str | None = None) -> Path:
    """A small PNG, with `record` as the text of its ideaforge chunk when given."""
    info = PngInfo()
    if record is not None:
        info.add_text(RECORD_KEY, record, zip=True)
    Image.new("RGB", (8, 8), "white").save(path, format="PNG", pnginfo=info)
    return path


def one_line_error(data: Any) -> str:
    with pytest.raises(InputError) as err:
        PngRecord.from_data(data, source="'cat.png'")
    message = str(err.value)
    assert "\n" not in message and "errors.pydantic.dev" not in message
    return message


def test_an_old_record_without_optional_keys_reads_with_defaults() -> None:
    record = PngRecord.from_data(dict(OLD))
    assert (record.idea, record.positive, record.seed, record.round) == ("a red kitten", "a red kitten, basket", 7, 2)
    assert record.idea_en == "a red kitten" and record.elements == ["a red kitten"]  # filled from the idea
    assert (record.candidate, record.loras, record.scores, record.batch, record.versions) == (1, [], None, None, {})
    assert (record.language, record.engine, record.style) == ("en", "rules", None)
    spec = record.spec()
    assert (spec.idea, spec.positive, spec.negative, spec.elements) == (
        "a red kitten", "a red kitten, basket", "blurry", ["a red kitten"]
    )
    assert record.checks == [] and spec.checks == []  # written before the checklist existed


def test_keys_from_a_newer_version_are_ignored() -> None:
    record = PngRecord.from_data({**OLD, "added_in_2030": {"anything": 1}})
    assert "added_in_2030" not in record.model_dump()


def test_a_record_round_trips_through_its_json() -> None:
    record = PngRecord.from_data({**OLD, "loras": ["x.safetensors:0.8"], "scores": {"idea": 31.5}, "candidate": 2})
    again = PngRecord.from_data(json.loads(record.to_json()))
    assert again == record and again.scores.idea == 31.5


@pytest.mark.parametrize(
    "change, says",
    [
        ({"idea": None}, "idea = None: Input should be a valid string"),
        ({"idea": 123}, "idea = 123: Input should be a valid string"),
        ({"idea": ""}, "idea = ''"),
        ({"positive": ""}, "positive = ''"),
        ({"elements": "a cat"}, "elements = 'a cat': Input should be a valid list"),
        ({"seed": -1}, "seed = -1: Input should be greater than or equal to 0"),
        ({"seed": 2**32}, "seed = 4294967296: Input should be less than or equal to 4294967295"),
        ({"size": "100x7"}, "size = '100x7': size 100x7 is invalid"),
        ({"steps": 0}, "steps = 0"),
        ({"round": 0}, "round = 0"),
        ({"scores": {"idea": "high"}}, "scores.idea = 'high'"),
        ({"checks": "a cat"}, "checks = 'a cat': Input should be a valid list"),
        ({"checks": [{"id": 1, "kind": "shape", "subject": "cat", "question": "Is there a cat?"}]},
         "checks.0.kind = 'shape': Input should be 'entity', 'attribute'"),
    ],
)
def test_hand_edited_values_fail_naming_the_field(change: dict[str, Any], says: str) -> None:
    message = one_line_error({**OLD, **change})
    assert message.startswith("'cat.png' has an invalid ideaforge record: ") and says in message


@pytest.mark.parametrize("missing", ["idea", "positive", "seed"])
def test_a_missing_required_key_is_named(missing: str) -> None:
    data = {k: v for k, v in OLD.items() if k != missing}
    assert one_line_error(data) == f"'cat.png' has an invalid ideaforge record: {missing} is required"


@pytest.mark.parametrize("data", [None, [1, 2], "a red kitten", 7])
def test_something_other_than_an_object_holds_no_record(data: Any) -> None:
    assert one_line_error(data) == "'cat.png' holds no ideaforge record; pass a PNG that ideaforge wrote"


# -- from_png: the file side ------------------------------------------------------------------------------------
def test_from_png_reads_what_the_forge_wrote(tmp_path: Path) -> None:
    forge = IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=ShapesScorer(), out=str(tmp_path))
    result = forge.run("a red circle", seed=12, max_attempts=1)
    record = PngRecord.from_png(result.best_image_path)
    assert record.spec().positive == result.spec.positive and record.seed == 12
    assert record.scores is not None and record.scores.idea == pytest.approx(result.best.score)
    assert record.versions  # the packages that made it are recorded


CHECKS = link([{"kind": "attribute", "subject": "circle", "value": "red"},
               {"kind": "relation", "subject": "circle", "value": "above", "object": "square"}])


def test_the_checklist_travels_in_the_png_and_back_through_reproduce(tmp_path: Path) -> None:
    spec = PromptSpec(idea="a red circle above a square", idea_en="a red circle above a square",
                      positive="a red circle above a square", negative="blurry", language="en", engine="rules",
                      checks=CHECKS)
    assert sorted(c.kind for c in CHECKS) == ["attribute", "entity", "entity", "relation"]  # link added the entities
    forge = IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=ShapesScorer(), out=str(tmp_path / "a"))
    result = forge.run(spec.idea, spec=spec, seed=3, max_attempts=1)
    stored = read_record(result.best_image_path)["ideaforge"]["checks"]
    assert [(c["id"], c["kind"], c["question"], c["depends_on"]) for c in stored] == [
        (c.id, c.kind, c.question, c.depends_on) for c in CHECKS
    ]
    record = PngRecord.from_png(result.best_image_path)
    assert record.checks == CHECKS and record.spec().checks == CHECKS
    assert PngRecord.from_data(json.loads(record.to_json())) == record

    again = IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=ShapesScorer(), out=str(tmp_path / "b"))
    reproduced = again.reproduce(result.best_image_path)
    assert reproduced.spec.checks == CHECKS and reproduced.best.seed == 3
    assert PngRecord.from_png(reproduced.best_image_path).checks == CHECKS  # and the new image carries them too


def test_from_png_of_a_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    with pytest.raises(InputError, match="does not exist") as err:
        PngRecord.from_png(missing)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)


def test_from_png_of_a_png_without_a_record(tmp_path: Path) -> None:
    path = png(tmp_path / "plain.png")
    with pytest.raises(InputError) as err:
        PngRecord.from_png(path)
    assert str(err.value) == f"{str(path)!r} holds no ideaforge record; pass a PNG that ideaforge wrote"


def test_from_png_of_a_damaged_json_record(tmp_path: Path) -> None:
    path = png(tmp_path / "damaged.png", record='{"idea": "a red kitten", "seed": ')
    with pytest.raises(InputError, match="damaged ideaforge record \\(invalid JSON") as err:
        PngRecord.from_png(path)
    assert "\n" not in str(err.value)


def test_from_png_of_a_hand_edited_record_names_file_and_field(tmp_path: Path) -> None:
    path = png(tmp_path / "edited.png", record=json.dumps({**OLD, "elements": "a cat"}))
    with pytest.raises(InputError) as err:
        PngRecord.from_png(path)
    assert str(err.value).startswith(f"{str(path)!r} has an invalid ideaforge record: elements = 'a cat'")


def test_from_png_of_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(InputError, match="is not a readable image"):
        PngRecord.from_png(path)


def test_reproduce_refuses_a_damaged_record_before_generating(tmp_path: Path) -> None:
    path = png(tmp_path / "edited.png", record=json.dumps({**OLD, "seed": -3}))
    gen = ShapesGenerator()
    forge = IdeaForge(engine="rules", generator=gen, scorer=ShapesScorer(), out=str(tmp_path / "out"))
    with pytest.raises(InputError, match="seed = -3"):
        forge.reproduce(path)
    assert gen.calls == []
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_reproduce_of_an_old_record_uses_its_prompt_and_seed(tmp_path: Path) -> None:
    path = png(tmp_path / "old.png", record=json.dumps({**OLD, "size": "64x64", "positive": "a red circle"}))
    forge = IdeaForge(engine="rules", generator=ShapesGenerator(), scorer=ShapesScorer(), out=str(tmp_path / "out"))
    result = forge.reproduce(path)
    assert result.best.seed == 7 and result.spec.positive.startswith("a red circle")
    assert read_record(result.best_image_path)["ideaforge"]["seed"] == 7
