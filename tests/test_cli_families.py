"""`ideaforge generate` for each model family, as a user runs it: a PNG with its record, `--from` reproducing it
pixel for pixel, img2img where the family has it, and the memory options on a machine without an accelerator."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(params=["sd", "sdxl", "sd3", "flux"])
def family_dir(request, tiny_sd_dir, tiny_sdxl_dir, tiny_sd3_dir, tiny_flux_dir):
    return request.param, {"sd": tiny_sd_dir, "sdxl": tiny_sdxl_dir, "sd3": tiny_sd3_dir, "flux": tiny_flux_dir}[
        request.param]


def test_each_family_generates_records_and_reproduces_pixel_for_pixel(family_dir, tmp_path) -> None:
    from PIL import Image, ImageChops

    family, folder = family_dir
    out = run("generate", "a red kitten in a basket", "--model", str(folder), "--steps", "2", "--size", "64x64",
              "--seed", "3", "--no-critique", "--out", str(tmp_path / "a"), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["spec"]["family"].startswith(family)  # the prompt was written for the model's family, unloaded
    if family == "flux":
        assert data["spec"]["negative"] == "" and data["spec"]["positive_2"].endswith(".")  # prose for T5
    shown = json.loads(run("info", data["best_image"], "--json").stdout)
    record = shown["ideaforge"]
    assert record["family"].startswith(family) and record["options"]["offload"] == "none"
    if family in ("sd3", "flux"):  # the other encoders' prompts reached the pipeline and the record
        assert record["prompts"].get("prompt_2") == data["spec"]["positive_2"]
    again = run("generate", "--from", data["best_image"], "--out", str(tmp_path / "b"), "--json")
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)["best_image"]
    with Image.open(data["best_image"]) as a, Image.open(second) as b:
        assert ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox() is None
    if family in ("sd3", "flux"):  # img2img from the first image
        moved = run("generate", "a red kitten in a basket", "--model", str(folder), "--steps", "2",
                    "--init-image", data["best_image"], "--strength", "0.6", "--seed", "4", "--no-critique",
                    "--out", str(tmp_path / "c"), "--json")
        assert moved.returncode == 0, moved.stderr
        assert json.loads(moved.stdout)["best_image"]


def test_offload_without_an_accelerator_is_one_line_and_exit_2(tiny_sd_dir, tmp_path) -> None:
    out = run("generate", "a red kitten", "--model", str(tiny_sd_dir), "--offload", "model", "--device", "cpu",
              "--steps", "1", "--size", "64x64", "--no-critique", "--out", str(tmp_path))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = [x for x in out.stderr.splitlines() if x.startswith("ideaforge: error:")]  # after the prompt stage
    assert "offload 'model'" in line and "--offload none" in line
    assert not list(tmp_path.glob("*.png"))
