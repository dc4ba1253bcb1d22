"""`ideaforge mcp`: serve the tools to MCP clients over stdio (the server itself is `ideaforge.app.mcp_server`)."""

from __future__ import annotations

import sys

import typer


def mcp(
    model: str | None = typer.Option(None, "--model", help="Hub id, diffusers folder or .safetensors file."),
    clip_model: str | None = typer.Option(None, "--clip-model", help="CLIP critic: Hub id or folder."),
    engine: str | None = typer.Option(None, "--engine", help="Prompt engine: auto, openai or rules."),
    style: str | None = typer.Option(None, "--style", help="Default style preset."),
    steps: int | None = typer.Option(None, "--steps", help="Default denoising steps."),
    size: str | None = typer.Option(None, "--size", help="Default WIDTHxHEIGHT, multiples of 8."),
    out: str | None = typer.Option(None, "--out", help="Where images are written."),
    device: str | None = typer.Option(None, "--device", help="cuda, mps or cpu."),
    dtype: str | None = typer.Option(None, "--dtype", help="float16, bfloat16 or float32."),
) -> None:
    """Serve optimize_prompt, generate_image and score_image to MCP clients over stdio."""
    from ideaforge.agent.forge import IdeaForge
    from ideaforge.app.mcp_server import build_server
    from ideaforge.errors import IdeaForgeError

    try:
        forge = IdeaForge(
            model=model, clip_model=clip_model, engine=engine, style=style, steps=steps, size=size, out=out,
            device=device, dtype=dtype,
        )
        forge.check()
    except IdeaForgeError as exc:  # bad options: say so once, before any client connects
        print(f"ideaforge: error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    build_server(forge).run("stdio")
