"""`ideaforge generate` / `info` end to end with the tiny models, as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    full_env.update(env or {})
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_generate_json_writes_png_that_sd_parsers_reads(tiny_sd_dir, tmp_path) -> None:
    from PIL import Image
    from sd_parsers import ParserManager

    out = run("generate", "a red kitten in a basket", "--model", str(tiny_sd_dir), "--steps", "2", "--size", "64x64",
              "--seed", "7", "--out", str(tmp_path), "--json", "--no-critique")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["seeds"] == [7] and len(data["images"]) == 1
    assert data["spec"]["positive"].startswith("a red kitten in a basket")
    assert "prompt (rules)" in out.stderr  # the prompt stage is shown on stderr
    path = data["best_image"]
    assert os.path.dirname(path) == str(tmp_path)
    info = ParserManager().parse(path)
    assert info.full_prompt == data["spec"]["positive"]
    assert info.full_negative_prompt == data["spec"]["negative"]
    assert str(7) in {str(s.parameters.get("seed")) for s in info.samplers}

    shown = run("info", path, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)["ideaforge"]
    assert record["seed"] == 7 and record["steps"] == 2 and record["size"] == "64x64"

    again = run("generate", "--from", path, "--out", str(tmp_path / "again"), "--json")
    assert again.returncode == 0, again.stderr
    with Image.open(path) as a, Image.open(json.loads(again.stdout)["best_image"]) as b:
        assert a.tobytes() == b.tobytes()  # reproduced from the record, pixel for pixel


def test_generate_with_critic_runs_rounds_and_reports_best(tiny_sd_dir, tiny_clip_dir, tmp_path) -> None:
    out = run("generate", "a red kitten in a basket", "--model", str(tiny_sd_dir), "--clip-model", str(tiny_clip_dir),
              "--steps", "2", "--size", "64x64", "--threshold", "1", "--max-attempts", "3", "--seed", "1",
              "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    attempts = data["attempts"]
    assert [a["round"] for a in attempts] == list(range(1, len(attempts) + 1))
    scores = [a["score"] for a in attempts]
    assert data["best_score"] == max(scores)
    for a in attempts:
        assert a["positive"] and a["negative"] is not None and a["seed"] is not None and a["critique"] is not None
        review = a["images"][0]["review"]
        assert review["critic"] == "clip" and len(review["verdicts"]) == len(data["spec"]["checks"])
    assert "round 1: " in out.stderr and "checks passed (clip)" in out.stderr and "best" in out.stderr


def test_generate_with_the_vlm_critic_prints_each_rounds_verdicts(tiny_sd_dir, tmp_path) -> None:
    sys.path.insert(0, os.path.dirname(__file__))
    from vlm_server import VisionServer

    with VisionServer() as server:  # noise from the tiny model shows no kitten: every round fails and repairs
        out = run("generate", "a red kitten in a basket, no people", "--model", str(tiny_sd_dir), "--steps", "2",
                  "--size", "64x64", "--critic", "vlm", "--vlm-base-url", server.url, "--vlm-model", "shapes-vlm",
                  "--threshold", "0.9", "--max-attempts", "3", "--seed", "3", "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["attempts"]) >= 2 and data["critic"] == "vlm"
    assert [a["action"] for a in data["attempts"]][:2] == ["first", "repair"]
    kinds = {c["kind"] for c in data["spec"]["checks"]}
    assert {"entity", "attribute", "absent"} <= kinds
    for a in data["attempts"]:
        assert a["images"][0]["review"]["critic"] == "vlm"
    assert out.stderr.count("checks passed (vlm)") == len(data["attempts"])  # one verdict table per round
    assert "✗" in out.stderr and "Is there a kitten?" in out.stderr
    assert len(server.requests) == len(data["attempts"]) and server.requests[0].images == [(64, 64)]


@pytest.mark.parametrize("size", ["100x64", "0x64", "-8x8", "64"])
def test_bad_size_exits_2_before_loading(size, tmp_path) -> None:
    out = run("generate", "a cat", "--size", size, "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and size.split("x")[0] in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_hub_model_fails_fast_with_one_line(tmp_path) -> None:
    out = run("generate", "a red kitten in a basket", "--out", str(tmp_path / "out"),
              env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert out.returncode == 2
    assert "prompt (rules)" in out.stderr  # the prompt stage printed first
    error = [line for line in out.stderr.splitlines() if line.startswith("ideaforge: error:")]
    assert len(error) == 1 and "stabilityai/sd-turbo" in error[0] and "--model" in error[0]
    assert "Traceback" not in out.stderr
    assert not list((tmp_path / "out").glob("*.png"))  # nothing generated, nothing fetched into the cache
    assert not [p for p in (tmp_path / "hf").rglob("*") if p.is_file() and p.stat().st_size > 0]
