"""Nothing ideaforge writes or prints carries the API key or a terminal control sequence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from llm_server import GOOD, FakeOpenAI, Reply

from ideaforge.agent.chain import PromptChain
from ideaforge.agent.settings import load_settings
from ideaforge.tools.sanitize import printable, redact

EXE = [sys.executable, "-m", "ideaforge.app.cli"]
SHORT_KEY = "sk-test"  # shorter than any key pattern: only its exact value can catch it
CONTROLS = ("\x1b", "\x07", "\x9b", "\u202e")


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_"))}
    full.update(IDEAFORGE_CACHE=os.environ["IDEAFORGE_CACHE"], **env)
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full, timeout=300)


def test_a_server_that_echoes_the_key_puts_it_nowhere(tiny_sd_dir: Path, tmp_path: Path) -> None:
    echo = dict(GOOD, elements=[SHORT_KEY, "red kitten"], positive=f"red kitten, {SHORT_KEY}, basket",
                negative=f"blurry, {SHORT_KEY}")
    with FakeOpenAI(default=lambda request: Reply.spec(**echo)) as server:
        out = cli("generate", "a red kitten", "--engine", "openai", "--llm-base-url", server.url, "--model",
                  str(tiny_sd_dir), "--steps", "2", "--size", "64x64", "--seed", "3", "--out", str(tmp_path),
                  "--json", "--no-critique", env={"OPENAI_API_KEY": SHORT_KEY})
    assert out.returncode == 0, out.stderr
    assert SHORT_KEY not in out.stdout and SHORT_KEY not in out.stderr
    assert "[redacted]" in json.loads(out.stdout)["spec"]["positive"]
    [png] = list(tmp_path.glob("*.png"))
    shown = cli("info", str(png), "--json", env={})
    assert shown.returncode == 0 and SHORT_KEY not in shown.stdout  # stored redacted, not only printed so
    assert SHORT_KEY.encode() not in png.read_bytes()


def test_control_sequences_in_an_llm_reply_never_reach_the_prompt() -> None:
    hostile = dict(GOOD, positive="red kitten\x1b]0;pwned\x07, basket\x1b[2J", elements=["red\u202ekitten", "basket"])
    with FakeOpenAI(default=lambda request: Reply.spec(**hostile)) as server:
        spec = PromptChain(load_settings(engine="openai", llm_base_url=server.url)).optimize("a red kitten")
    assert spec.engine == "openai"
    for text in (spec.positive, *spec.elements):
        assert not any(c in text for c in CONTROLS), text
    assert spec.positive.startswith("red kitten")


def test_info_on_a_png_with_escape_codes_prints_none(tmp_path: Path) -> None:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("parameters", "a cat\x1b]0;owned\x07\x1b[2J\nNegative prompt: dog\x9b31m\nSteps: 2, Seed: 1")
    meta.add_text("ideaforge", json.dumps({"idea": "a cat\x1b[2J", "seed": 1, "engine": "rules\x07"}))
    path = tmp_path / "hostile.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=meta)
    for args in (("info", str(path)), ("info", str(path), "--json")):
        out = cli(*args, env={})
        assert out.returncode == 0, out.stderr
        assert not any(c in out.stdout + out.stderr for c in CONTROLS), repr(out.stdout)
        assert "a cat" in out.stdout


def test_redaction_catches_registered_values_of_any_length_and_key_shapes() -> None:
    from ideaforge.tools.sanitize import register_secret

    register_secret("q9z")
    assert redact("use q9z here") == "use [redacted] here"
    assert redact("sk-" + "a" * 30) == "[redacted]"
    assert redact("Authorization: Bearer abcdefghijklmnopqrstuvwxyz") == "Authorization: [redacted]"
    assert printable("ok\x1b[31mred\x1b[0m\ttab") == "ok[31mred[0m tab"
