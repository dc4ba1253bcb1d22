"""`ideaforge ui`: serve the Streamlit chat (`ideaforge.app.streamlit_app`). Streamlit loads only when it runs."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import typer

APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"


def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default serves this machine only."),
    port: int = typer.Option(8501, "--port", help="Port to listen on."),
    model: str | None = typer.Option(None, "--model", help="Hub id, diffusers folder or .safetensors file."),
    clip_model: str | None = typer.Option(None, "--clip-model", help="CLIP critic: Hub id or folder."),
    engine: str | None = typer.Option(None, "--engine", help="Prompt engine: auto, openai or rules."),
    preload: bool = typer.Option(
        True, "--preload/--no-preload", help="Load the models while the browser opens, not at the first idea."
    ),
) -> None:
    """Open the chat in a browser: an idea in, an image out, follow-ups refine it."""
    from ideaforge.agent.settings import load_settings
    from ideaforge.errors import IdeaForgeError

    given = {"model": model, "clip_model": clip_model, "engine": engine}
    try:
        load_settings(**given)  # a bad --engine or IDEAFORGE_* value fails here, before the server starts
    except IdeaForgeError as exc:
        print(f"ideaforge: error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    if not 0 < port < 65536:
        print(f"ideaforge: error: port {port} is invalid; use 1 to 65535 (e.g. --port 8501)", file=sys.stderr)
        raise typer.Exit(2)
    # The app reads its defaults from the same IDEAFORGE_* settings as every other entry point.
    for name, value in given.items():
        if value is not None:
            os.environ[f"IDEAFORGE_{name.upper()}"] = value
    if preload:
        threading.Thread(target=_preload, name="ideaforge-preload", daemon=True).start()
    from streamlit.web import cli as streamlit_cli

    streamlit_cli.main(
        [
            "run",
            str(APP),
            "--server.address",
            host,
            "--server.port",
            str(port),
            "--server.headless",
            "true",
            # Streamlit's file watcher walks every imported module, torch's too; the app is not edited live.
            "--server.fileWatcherType",
            "none",
            "--browser.gatherUsageStats",
            "false",
        ],
        prog_name="ideaforge ui",
    )


def _preload() -> None:
    """Load the configured models into the tools' shared caches, where the app's first run finds them."""
    from ideaforge import IdeaForge

    try:
        forge = IdeaForge()
        _ = forge.generator
        if forge.settings.critique:
            _ = forge.scorer
    except Exception as exc:  # noqa: BLE001 - the app shows load errors in the chat, where they can be fixed
        print(f"ideaforge ui: models not preloaded: {' '.join(str(exc).split())}", file=sys.stderr)
