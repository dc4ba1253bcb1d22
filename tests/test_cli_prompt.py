"""`ideaforge prompt` as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from llm_server import FakeOpenAI

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    full_env.update(env or {})
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=120)


def test_prompt_json_rules() -> None:
    out = run("prompt", "cozy cabin at night", "--json")
    assert out.returncode == 0, out.stderr
    spec = json.loads(out.stdout)  # nothing else on stdout
    assert spec["engine"] == "rules" and spec["positive"].startswith("cozy cabin at night")
    assert spec["positive_tokens"] <= 77 and spec["negative_tokens"] <= 77


def test_prompt_human_output_names_engine() -> None:
    out = run("prompt", "bond", "--style", "anime")
    assert out.returncode == 0, out.stderr
    assert "anime key visual of bond" in out.stdout and "rules" in out.stdout


@pytest.mark.parametrize("idea", ["", "   \t  ", "x" * 2001, "a" * 100_000])
def test_bad_ideas_exit_2_with_one_line(idea) -> None:
    out = run("prompt", idea)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ideaforge: error: idea")
    assert "Traceback" not in out.stderr


def test_unknown_style_exit_2() -> None:
    out = run("prompt", "a cat", "--style", "nope")
    assert out.returncode == 2 and "'nope': unknown style" in out.stderr and "watercolor" in out.stderr


def test_prompt_openai_against_compatible_server() -> None:
    with FakeOpenAI() as server:
        out = run("prompt", "一只坐在篮子里的红色小猫", "--engine", "openai", "--llm-base-url", server.url,
                  "--llm-method", "function_calling", "--json")
        assert out.returncode == 0, out.stderr
        spec = json.loads(out.stdout)
        assert spec["engine"] == "openai" and spec["language"] == "zh" and "kitten" in spec["positive"]
        assert len(server.requests) == 1


def test_openai_base_url_env_selects_openai_in_auto() -> None:
    with FakeOpenAI() as server:
        out = run("prompt", "a cat", "--json", env={"OPENAI_BASE_URL": server.url})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["engine"] == "openai"


def test_help_and_import_do_not_load_heavy_modules() -> None:
    code = (
        "import sys, ideaforge, ideaforge.app.cli\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(ideaforge.app.cli.app, ['--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'streamlit', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
