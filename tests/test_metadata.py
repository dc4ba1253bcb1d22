"""PNG metadata: A1111 parameters written and read back (by us and by sd-parsers), records, safe unique files."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from ideaforge.errors import InputError
from ideaforge.tools.metadata import (
    a1111_parameters,
    parse_a1111_parameters,
    read_record,
    save_png,
    slugify,
)

# diffusers' schedulers trip numpy 2's deprecations on torch tensors (in the end-to-end test); not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:diffusers"),
    pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning"),
]

BASE = {
    "steps": 30,
    "sampler": "DPM++ 2M Karras",
    "cfg_scale": 7.5,
    "seed": 1234,
    "width": 512,
    "height": 768,
    "model": "stabilityai/sd-turbo",
}


def red(size: int = 16) -> Image.Image:
    return Image.new("RGB", (size, size), (200, 30, 30))


# --- the A1111 text -----------------------------------------------------------------------------------------


def test_a1111_text_has_the_webui_layout() -> None:
    text = a1111_parameters("a red kitten in a basket, soft light", "blurry, low quality", **BASE)
    assert text == (
        "a red kitten in a basket, soft light\n"
        "Negative prompt: blurry, low quality\n"
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 1234, Size: 512x768, Model: stabilityai/sd-turbo"
    )


def test_a1111_quoting_rules() -> None:
    text = a1111_parameters(
        "p",
        "",
        **{**BASE, "cfg_scale": 7.0, "model": r"C:\models\dream, v2.safetensors"},
        extra={"Lora": "ink:0.8", "Note": '"quoted"', "Version": "ideaforge 0.1", "Empty": None},
    )
    last = text.split("\n")[-1]
    assert "Negative prompt" not in text  # an empty negative has no line, as in A1111
    assert "CFG scale: 7, " in last  # whole numbers without ".0", as A1111 writes them
    assert r'Model: "C:\\models\\dream, v2.safetensors"' in last  # ',' and ':' force JSON quoting
    assert 'Lora: "ink:0.8"' in last
    assert r'Note: "\"quoted\""' in last  # a leading quote would be eaten by the reader unless quoted
    assert "Version: ideaforge 0.1" in last and "Empty" not in last
    parsed = parse_a1111_parameters(text)
    assert parsed["model"] == r"C:\models\dream, v2.safetensors"
    assert parsed["extra"] == {"Lora": "ink:0.8", "Note": '"quoted"', "Version": "ideaforge 0.1"}


def test_prompts_are_written_on_one_line_as_clip_reads_them() -> None:
    text = a1111_parameters("  a red\nkitten\t in a   basket ", "blurry\n\nugly", **BASE)
    parsed = parse_a1111_parameters(text)
    assert (parsed["prompt"], parsed["negative_prompt"]) == ("a red kitten in a basket", "blurry ugly")


@pytest.mark.parametrize("key", ["Steps", "Seed", "bad,key", "x", "", " padded"])
def test_extra_keys_must_be_readable_and_not_clash(key: str) -> None:
    with pytest.raises(InputError, match="parameters key"):
        a1111_parameters("p", "n", **BASE, extra={key: "v"})


def test_reads_a_webui_infotext() -> None:
    webui = (
        "masterpiece, (a red kitten:1.2) in a basket\n"
        "Negative prompt: lowres, bad anatomy\n"
        "Steps: 25, Sampler: Euler a, Schedule type: Automatic, CFG scale: 6.5, Seed: 3057264711, Size: 640x448, "
        'Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: "ink: 0a1b2c3d4e5f", Version: v1.10.1'
    )
    parsed = parse_a1111_parameters(webui)
    assert parsed["prompt"] == "masterpiece, (a red kitten:1.2) in a basket"
    assert parsed["negative_prompt"] == "lowres, bad anatomy"
    assert (parsed["steps"], parsed["sampler"], parsed["cfg_scale"], parsed["seed"]) == (
        25,
        "Euler a",
        6.5,
        3057264711,
    )
    assert (parsed["width"], parsed["height"], parsed["model"]) == (640, 448, "v1-5-pruned-emaonly")
    assert parsed["extra"]["Lora hashes"] == "ink: 0a1b2c3d4e5f"
    assert parsed["extra"]["Schedule type"] == "Automatic"


def test_text_without_a_parameters_line_is_all_prompt() -> None:
    parsed = parse_a1111_parameters("just a prompt\nover two lines")
    assert parsed["prompt"] == "just a prompt\nover two lines"
    assert parsed["steps"] is None and parsed["seed"] is None and parsed["extra"] == {}


_keys = st.from_regex(r"[A-Za-z][A-Za-z0-9 _/\-]{0,12}[A-Za-z0-9]", fullmatch=True).filter(
    lambda k: k not in {"Steps", "Sampler", "CFG scale", "Seed", "Size", "Model"}
)
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    positive=_text,
    negative=_text,
    sampler=_text.filter(str.strip),
    model=_text.filter(str.strip),
    steps=st.integers(1, 500),
    seed=st.integers(0, 2**64 - 1),
    cfg=st.floats(0, 50, allow_nan=False, allow_infinity=False),
    width=st.integers(1, 512).map(lambda v: v * 8),
    height=st.integers(1, 512).map(lambda v: v * 8),
    extra=st.dictionaries(_keys, _text.filter(str.strip), max_size=4),
)
def test_a1111_round_trip(positive, negative, sampler, model, steps, seed, cfg, width, height, extra) -> None:
    one_line = " ".join(positive.split())
    # The one ambiguity of the format, shared by every A1111 reader; the JSON record keeps such prompts exactly.
    assume(not one_line.startswith("Negative prompt:"))
    text = a1111_parameters(
        positive,
        negative,
        steps=steps,
        sampler=sampler,
        cfg_scale=cfg,
        seed=seed,
        width=width,
        height=height,
        model=model,
        extra=extra,
    )
    parsed = parse_a1111_parameters(text)
    assert parsed["prompt"] == one_line
    assert parsed["negative_prompt"] == " ".join(negative.split())
    assert (parsed["steps"], parsed["seed"], parsed["cfg_scale"]) == (steps, seed, cfg)
    assert (parsed["sampler"], parsed["model"]) == (sampler, model)
    assert (parsed["width"], parsed["height"]) == (width, height)
    assert parsed["extra"] == extra


# --- files --------------------------------------------------------------------------------------------------


def test_save_and_read_back(tmp_path: Path) -> None:
    text = a1111_parameters("a red kitten", "blurry", **BASE)
    record = {
        "idea": "ein rotes Kätzchen 🐱",
        "positive": "a red kitten",
        "seed": 1234,
        "size": [512, 768],
        "path": tmp_path,
    }
    path = save_png(red(), tmp_path / "out", idea="A red kitten!", seed=1234, parameters=text, record=record)
    assert path == (tmp_path / "out").resolve() / "a-red-kitten-1234.png"
    back = read_record(path)
    assert back["parameters"] == text
    assert {k: v for k, v in back["ideaforge"].items() if k != "versions"} == {
        **record,
        "path": str(tmp_path),
    }
    assert {"python", "torch", "diffusers"} <= set(back["ideaforge"]["versions"])
    assert list((tmp_path / "out").iterdir()) == [path]  # no temporary file left behind
    with Image.open(path) as image:
        assert image.size == (16, 16) and image.getpixel((0, 0)) == (200, 30, 30)


def test_sd_parsers_reads_prompt_negative_and_seed(tmp_path: Path) -> None:
    from sd_parsers import ParserManager

    text = a1111_parameters("a red kitten in a basket", "blurry, low quality", **BASE)
    path = save_png(red(), tmp_path, idea="kitten", seed=1234, parameters=text, record={"idea": "kitten"})
    info = ParserManager().parse(str(path))
    assert info is not None
    assert info.full_prompt == "a red kitten in a basket"
    assert info.full_negative_prompt == "blurry, low quality"
    sampler = info.samplers[0]
    assert sampler.name == "DPM++ 2M Karras"
    assert sampler.parameters["seed"] == "1234" and sampler.parameters["steps"] == "30"
    assert sampler.model.name == "stabilityai/sd-turbo"


def test_never_overwrites(tmp_path: Path) -> None:
    first = save_png(red(), tmp_path, idea="kitten", seed=7, parameters="p", record={"n": 1})
    before = first.read_bytes()
    second = save_png(red(8), tmp_path, idea="kitten", seed=7, parameters="p", record={"n": 2})
    third = save_png(red(8), tmp_path, idea="kitten", seed=7, parameters="p", record={"n": 3})
    assert [p.name for p in (first, second, third)] == ["kitten-7.png", "kitten-7-2.png", "kitten-7-3.png"]
    assert first.read_bytes() == before
    assert read_record(third)["ideaforge"]["n"] == 3


def test_concurrent_saves_get_distinct_complete_files(tmp_path: Path) -> None:
    paths: list[Path] = []
    lock = threading.Lock()

    def save(i: int) -> None:
        path = save_png(red(), tmp_path, idea="kitten", seed=7, parameters="p", record={"i": i})
        with lock:
            paths.append(path)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(paths)) == 8
    assert sorted(read_record(p)["ideaforge"]["i"] for p in paths) == list(range(8))
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)


@pytest.mark.parametrize(
    ("idea", "name"),
    [
        ("../../etc/passwd", "etc-passwd-7.png"),
        ("/abs/path", "abs-path-7.png"),
        ("..", "image-7.png"),
        ("", "image-7.png"),
        (r"a\b/c:d*e?f", "a-b-c-d-e-f-7.png"),
        ("\x00\x1b[31mred\u202e", "31mred-7.png"),
        ("ein rotes Kätzchen", "ein-rotes-kätzchen-7.png"),
        ("一只红色的小猫", "一只红色的小猫-7.png"),
    ],
)
def test_file_names_stay_inside_the_output_folder(tmp_path: Path, idea: str, name: str) -> None:
    out = tmp_path / "out"
    path = save_png(red(), out, idea=idea, seed=7, parameters="p", record={})
    assert path.parent == out.resolve()
    assert path.name == name
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [name]


def test_slugify() -> None:
    assert slugify("A Red Kitten, in a basket!") == "a-red-kitten-in-a-basket"
    long = slugify("word " * 40, max_len=20)
    assert long == "word-word-word-word" and len(long) <= 20
    assert slugify("x" * 100, max_len=10) == "x" * 10
    assert slugify("...") == "image"


def test_secrets_never_reach_the_file(tmp_path: Path) -> None:
    key = "sk-proj-" + "A1b2C3d4" * 4
    record = {
        "idea": "kitten",
        "openai_api_key": key,
        "llm": {"Authorization": f"Bearer {key}", "hf_token": "x", "base_url": "http://127.0.0.1:8000/v1"},
        "note": f"key was {key}",
        "prompt_tokens": 12,
    }
    path = save_png(red(), tmp_path, idea="kitten", seed=1, parameters=f"p {key}", record=record)
    with Image.open(path) as image:
        image.load()
        every_chunk = json.dumps(image.text)  # all text chunks, decompressed
    back = read_record(path)
    assert key not in every_chunk and key.encode() not in path.read_bytes()
    assert "openai_api_key" not in back["ideaforge"] and "Authorization" not in back["ideaforge"]["llm"]
    assert "hf_token" not in back["ideaforge"]["llm"]
    assert back["ideaforge"]["llm"]["base_url"] == "http://127.0.0.1:8000/v1"
    assert back["ideaforge"]["prompt_tokens"] == 12  # token counts are not secrets
    assert back["ideaforge"]["note"] == "key was [redacted]"


def test_read_record_errors_and_plain_pngs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_record(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_text("not an image")
    with pytest.raises(InputError, match="is not a readable image"):
        read_record(junk)
    plain = tmp_path / "plain.png"
    red().save(plain)
    assert read_record(plain) == {"parameters": None, "ideaforge": None}


# --- end to end: generate, save, read, reproduce ------------------------------------------------------------


def test_generated_image_round_trips_and_reproduces_from_its_record(
    tiny_sd_dir: Path, tmp_path: Path
) -> None:
    from sd_parsers import ParserManager

    from ideaforge.tools.diffusion import DiffusionTool, GenerationParams, ImageRequest

    tool = DiffusionTool(str(tiny_sd_dir), device="cpu")
    params = GenerationParams(steps=2, width=64, height=64, scheduler="euler_a")
    made = tool.generate([ImageRequest(positive="a red kitten in a basket", negative="blurry")], params)[0]
    text = a1111_parameters(
        made.positive,
        made.negative,
        steps=made.steps,
        sampler=made.sampler,
        cfg_scale=made.guidance,
        seed=made.seed,
        width=made.width,
        height=made.height,
        model=made.model,
    )
    record = {
        "idea": "a red kitten in a basket",
        "positive": made.positive,
        "negative": made.negative,
        "seed": made.seed,
        "steps": made.steps,
        "guidance": made.guidance,
        "scheduler": made.scheduler,
        "size": f"{made.width}x{made.height}",
        "model": made.model,
    }
    path = save_png(
        made.image, tmp_path, idea="a red kitten in a basket", seed=made.seed, parameters=text, record=record
    )

    info = ParserManager().parse(str(path))
    assert info.full_prompt == "a red kitten in a basket" and info.full_negative_prompt == "blurry"
    assert info.samplers[0].parameters["seed"] == str(made.seed)

    saved = read_record(path)["ideaforge"]
    width, height = (int(v) for v in saved["size"].split("x"))
    again = DiffusionTool(saved["model"], device="cpu").generate(
        [ImageRequest(positive=saved["positive"], negative=saved["negative"], seed=saved["seed"])],
        GenerationParams(
            steps=saved["steps"],
            guidance=saved["guidance"],
            width=width,
            height=height,
            scheduler=saved["scheduler"],
        ),
    )[0]
    with Image.open(path) as stored:
        assert np.array_equal(np.asarray(stored.convert("RGB")), np.asarray(again.image))
