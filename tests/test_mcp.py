"""`ideaforge mcp` driven over stdio by the MCP SDK's own client, with tiny models passed through the environment."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from ideaforge import IdeaForge, make_tools

ROOT = Path(__file__).resolve().parent.parent
IDEA = "a red kitten in a basket"


def serve(env: dict[str, str], log: Path, session_fn: Any) -> Any:
    """Start `ideaforge mcp` as a subprocess, connect a ClientSession over stdio, run `session_fn(session)`."""
    from mcp import ClientSession, StdioServerParameters, stdio_client

    params = StdioServerParameters(
        command=sys.executable, args=["-m", "ideaforge.app.cli", "mcp"], cwd=str(ROOT),
        env={"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
             "IDEAFORGE_CACHE": os.environ["IDEAFORGE_CACHE"], **env},
    )

    async def main() -> Any:
        with log.open("w") as errlog:
            async with stdio_client(params, errlog=errlog) as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                return await session_fn(session)

    try:
        return anyio.run(main)
    except BaseException:
        print(log.read_text(errors="replace")[-4000:])  # the server's stderr, shown when the test fails
        raise


@pytest.fixture
def env(tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path) -> dict[str, str]:
    return {
        "IDEAFORGE_MODEL": str(tiny_sd_dir), "IDEAFORGE_CLIP_MODEL": str(tiny_clip_dir), "IDEAFORGE_ENGINE": "rules",
        "IDEAFORGE_STEPS": "2", "IDEAFORGE_SIZE": "64x64", "IDEAFORGE_OUT": str(tmp_path / "out"),
        "IDEAFORGE_DEVICE": "cpu",
    }


def test_list_tools_generate_image_and_errors_over_stdio(env: dict[str, str], tmp_path: Path) -> None:
    from PIL import Image

    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    async def session_fn(session: Any) -> Any:
        listed = await session.list_tools()
        made = await session.call_tool("generate_image", {"idea": IDEA, "seed": 7}, progress_callback=on_progress)
        bad_size = await session.call_tool("generate_image", {"idea": IDEA, "size": "100x7"})
        bad_type = await session.call_tool("generate_image", {"idea": IDEA, "seed": "seven"})
        bogus = await session.call_tool("generate_image", {"idea": "cat", "bogus": 1})
        misspelt = await session.call_tool("generate_image", {"idea": "cat", "negative": "dogs"})
        record = json.loads(made.content[2].text)
        scored = await session.call_tool("score_image", {"image_path": record["best_image_path"], "text": IDEA})
        return listed, made, bad_size, bad_type, bogus, misspelt, scored

    listed, made, bad_size, bad_type, bogus, misspelt, scored = serve(env, tmp_path / "server.log", session_fn)

    # The same three tools as the LangChain ones: names, descriptions, argument schemas.
    langchain = {t.name: t for t in make_tools(IdeaForge(engine="rules"))}
    assert [t.name for t in listed.tools] == list(langchain)
    for tool in listed.tools:
        schema = langchain[tool.name].args_schema.model_json_schema()
        assert tool.description == langchain[tool.name].description
        assert tool.input_schema.get("required", []) == schema.get("required", [])
        assert tool.input_schema.get("additionalProperties") is False
        for name, spec in schema["properties"].items():
            assert tool.input_schema["properties"][name]["description"] == spec["description"]

    # generate_image: a PNG as image content, the summary, then the record as JSON text.
    assert not made.is_error
    image, summary, record_text = made.content
    assert image.type == "image" and image.mime_type == "image/png"
    png = base64.b64decode(image.data)
    record = json.loads(record_text.text)
    assert png == Path(record["best_image_path"]).read_bytes()
    assert Image.open(io.BytesIO(png)).size == (64, 64)
    best_image = record["best"]["images"][0]
    assert record["attempts"][0]["seed"] == 7 and best_image["review"]["critic"] == "clip"  # verdicts included
    assert "Best image:" in summary.text and f"seed {best_image['seed']}" in summary.text
    assert "checks passed (clip)" in summary.text
    assert progress and progress == sorted(progress, key=lambda p: p[0])  # progress only grows
    assert any("generate step 2/2" in (m or "") for _, m in progress)

    # Errors are tool results the model can read, and the server lives on to answer the next call.
    assert bad_size.is_error and "size 100x7 is invalid" in bad_size.content[0].text
    assert bad_type.is_error and "seed" in bad_type.content[0].text
    # Unknown or misspelt arguments are rejected in one line that names them, not silently dropped.
    for reply, name in ((bogus, "bogus"), (misspelt, "negative")):
        [text] = reply.content
        assert reply.is_error and f"unknown argument {name!r}" in text.text and "\n" not in text.text
        assert "pydantic" not in text.text and "http" not in text.text
    generate = next(t for t in listed.tools if t.name == "generate_image").input_schema["properties"]
    assert generate["steps"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert not scored.is_error
    # score_image is CLIP's idea score, the same number the checklist critic ranks images by (their quality)
    assert json.loads(scored.content[1].text)["score"] == pytest.approx(best_image["review"]["quality"], abs=0.01)


def test_bad_options_stop_the_server_before_it_serves() -> None:
    from typer.testing import CliRunner

    from ideaforge.app.cli import app

    result = CliRunner().invoke(app, ["mcp", "--size", "100x7"])
    assert result.exit_code == 2 and "size 100x7 is invalid" in result.output
