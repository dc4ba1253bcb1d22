"""`ideaforge prompt` as a user runs it: a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from llm_server import FakeOpenAI

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    full_env.update(env or {})
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=full_env, timeout=120, input=stdin)


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


def test_prompt_human_output_shows_the_checklist() -> None:
    spec = json.loads(run("prompt", "a red kitten in a basket", "--json").stdout)
    assert spec["checks"], "the rules engine gives this idea a checklist"
    out = run("prompt", "a red kitten in a basket")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split() == ["#", "kind", "check", "depends", "on"])
    assert lines[head - 1].strip() == "checklist" and head > 3  # under the prompts
    rows = [line.split(None, 2) for line in lines[head + 1:head + 1 + len(spec["checks"])]]
    for check, (number, kind, rest) in zip(spec["checks"], rows, strict=True):
        assert (int(number), kind) == (check["id"], check["kind"]) and rest.startswith(check["question"])
        assert rest.removeprefix(check["question"]).strip() == ", ".join(map(str, check["depends_on"]))
    assert "\x1b" not in out.stdout


def test_prompt_human_output_prints_brackets_as_written() -> None:
    # rich would read "[wow]" as markup and drop it; the idea is printed as the user wrote it.
    out = run("prompt", "a cat on a mat [wow]")
    assert out.returncode == 0, out.stderr
    assert "a cat on a mat [wow]" in out.stdout


def test_prompt_refine_chains_specs_through_files(tmp_path) -> None:
    first = run("prompt", "a red kitten in a basket", "--json")
    assert first.returncode == 0, first.stderr
    (tmp_path / "spec1.json").write_text(first.stdout)
    second = run("prompt", "make it night, add a ship", "--refine", str(tmp_path / "spec1.json"), "--json")
    assert second.returncode == 0, second.stderr
    spec2 = json.loads(second.stdout)
    assert spec2["idea"] == "a red kitten in a basket; make it night, add a ship" and spec2["engine"] == "rules"
    assert "night" in spec2["positive"] and "ship" in spec2["positive"] and "night" not in json.loads(first.stdout)["positive"]
    assert spec2["positive_tokens"] <= 77 and spec2["checks"]
    (tmp_path / "spec2.json").write_text(second.stdout)
    third = run("prompt", "add fog", "--refine", str(tmp_path / "spec2.json"), "--json")
    assert third.returncode == 0, third.stderr
    spec3 = json.loads(third.stdout)
    assert spec3["idea"] == "a red kitten in a basket; make it night, add a ship; add fog"
    assert "fog" in spec3["positive"] and "ship" in spec3["positive"]


def test_prompt_refine_reads_stdin_and_prints_like_prompt() -> None:
    spec1 = run("prompt", "cozy cabin", "--json").stdout
    out = run("prompt", "make it night", "--refine", "-", stdin=spec1)
    assert out.returncode == 0, out.stderr
    assert "positive" in out.stdout and "cozy cabin" in out.stdout and "night" in out.stdout
    assert "checklist" in out.stdout


def test_prompt_refine_keeps_the_spec_style_unless_told() -> None:
    spec1 = run("prompt", "a lighthouse", "--style", "anime", "--json").stdout
    kept = json.loads(run("prompt", "make it night", "--refine", "-", "--json", stdin=spec1).stdout)
    assert kept["style"] == "anime" and "anime" in kept["positive"]
    changed = json.loads(run("prompt", "make it night", "--refine", "-", "--style", "watercolor", "--json",
                             stdin=spec1).stdout)
    assert changed["style"] == "watercolor" and "anime" not in changed["positive"]


@pytest.mark.parametrize(
    "content, says",
    [
        (None, "does not exist"),
        ("", "is not JSON"),
        ("{bad", "is not JSON (Expecting property name"),
        ("[1, 2]", "holds an array, not a prompt spec"),
        ('{"idea": "a cat"}', "is not a prompt spec: idea_en is required"),
        ('{"idea": "a cat", "idea_en": "a cat", "positive": "", "negative": "", "language": "en", "engine": "rules"}',
         "is not a prompt spec: positive = ''"),
    ],
)
def test_bad_refine_files_exit_2_with_one_line_naming_the_file(tmp_path, content, says) -> None:
    path = tmp_path / "previous.json"
    if content is not None:
        path.write_text(content)
    out = run("prompt", "make it night", "--refine", str(path))
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"ideaforge: error: --refine {str(path)!r} ") and says in line, line
    assert line.endswith("pass the JSON that `ideaforge prompt IDEA --json` printed")


def test_bad_refine_on_stdin_is_named_stdin() -> None:
    out = run("prompt", "make it night", "--refine", "-", stdin="not json")
    assert out.returncode == 2 and out.stderr.startswith("ideaforge: error: --refine stdin is not JSON")


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
