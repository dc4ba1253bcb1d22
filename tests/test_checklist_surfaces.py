"""Where people see the checklist: the CLI's tables for `prompt` and `generate` (the Streamlit expander and the
PNG record are tested in test_streamlit_app.py and test_record.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from rich.console import Console

from ideaforge.agent.models import Check, PromptSpec
from ideaforge.app.cli.generate import checklist_table

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=300)


def rendered(spec: PromptSpec) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(checklist_table(spec))
    return out.getvalue()


def test_the_table_prints_hostile_text_as_plain_text() -> None:
    # A hand-edited spec (--refine FILE) or an LLM can put markup and terminal escapes into a question.
    hostile = Check(id=1, kind="entity", subject="kitten", question="Is there a [bold]kitten[/bold]?\x1b]0;pwned\x07\x1b[2J")
    child = Check(id=2, kind="attribute", subject="kitten", value="red", question="Is the kitten red?", depends_on=[1])
    spec = PromptSpec(idea="a red kitten", idea_en="a red kitten", positive="red kitten", negative="", language="en",
                      engine="rules", checks=[hostile, child])
    text = rendered(spec)
    assert "\x1b" not in text and "\x07" not in text
    assert "Is there a [bold]kitten[/bold]?]0;pwned[2J" in text  # shown as written, minus the control characters
    header, first, second = (line.split() for line in text.splitlines()[1:4])
    assert header == ["#", "kind", "check", "depends", "on"]
    assert first[:2] == ["1", "entity"] and second == ["2", "attribute", "Is", "the", "kitten", "red?", "1"]


def test_generate_prints_the_checklist_under_the_prompts_and_again_from_the_png(tiny_sd_dir, tmp_path) -> None:
    out = run("generate", "a red kitten in a basket", "--model", str(tiny_sd_dir), "--steps", "2", "--size", "64x64",
              "--seed", "7", "--out", str(tmp_path), "--no-critique", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)  # the table goes to stderr, never into the JSON
    checks = data["spec"]["checks"]
    assert checks, "the rules engine gives this idea a checklist"
    for stderr in (out.stderr, run("generate", "--from", data["best_image"], "--out", str(tmp_path / "again"),
                                   "--json").stderr):
        lines = stderr.splitlines()
        prompt_at = next(i for i, line in enumerate(lines) if line.startswith("prompt (rules): a red kitten"))
        head = next(i for i, line in enumerate(lines) if line.split() == ["#", "kind", "check", "depends", "on"])
        assert head > prompt_at
        for check, line in zip(checks, lines[head + 1:], strict=False):
            assert line.split(None, 2)[:2] == [str(check["id"]), check["kind"]] and check["question"] in line
