"""`ideaforge serve`: the HTTP service (the app itself is `ideaforge.app.serve`)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from ideaforge.app.cli import options
from ideaforge.app.cli.common import fail


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but loopback needs IDEAFORGE_SERVER_KEY."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    model: str | None = options.Model,
    clip_model: str | None = options.ClipModel,
    lora: list[str] = options.Lora,
    engine: str | None = options.Engine,
    style: str | None = options.Style,
    llm_base_url: str | None = options.LlmBaseUrl,
    llm_model: str | None = options.LlmModel,
    steps: int | None = options.Steps,
    size: str | None = options.Size,
    critique: bool | None = options.Critique,
    critic: str | None = options.Critic,
    out: str | None = typer.Option(None, "--out", help="Output folder: images, and the jobs database."),
    device: str | None = options.Device,
    dtype: str | None = options.Dtype,
    no_safety_checker: bool = options.NoSafetyChecker,
    cors: list[str] = typer.Option([], "--cors", help="Allow this browser origin (repeatable); default: no CORS."),
    batch_size: int = typer.Option(8, "--batch-size", help="Most images merged into one pipeline call."),
    max_queue: int = typer.Option(64, "--max-queue", help="Runs waiting or running before 429."),
    max_n: int = typer.Option(4, "--max-n", help="Most images one request may ask for."),
    max_body: int = typer.Option(65536, "--max-body", help="Most bytes in one request body."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (paths only, never keys)."),
    ray: bool = typer.Option(False, "--ray", help="Run as a Ray Serve deployment (the `ray` extra)."),
    replicas: int = typer.Option(1, "--replicas", help="Ray Serve: replicas (one per GPU where there are GPUs)."),
    gpus_per_replica: float | None = typer.Option(
        None, "--gpus-per-replica", help="Ray Serve: GPUs each replica holds (default 1 if the cluster has GPUs)."
    ),
) -> None:
    """Serve ideaforge over HTTP: OpenAI's images API, jobs with an event stream, health."""
    from ideaforge.agent.forge import IdeaForge
    from ideaforge.app.serve.config import ServeConfig
    from ideaforge.errors import IdeaForgeError

    settings: dict[str, Any] = {
        "model": model, "clip_model": clip_model, "engine": engine, "style": style, "llm_base_url": llm_base_url,
        "llm_model": llm_model, "steps": steps, "size": size, "critique": critique, "critic": critic, "out": out,
        "device": device, "dtype": dtype, "safety_checker": False if no_safety_checker else None,
    }
    settings = {k: v for k, v in settings.items() if v is not None}
    try:
        config = ServeConfig.from_env(host=host, port=port, cors=list(cors), batch_size=batch_size,
                                      max_queue=max_queue, max_n=max_n, max_body=max_body)
        config.check()
        IdeaForge(loras=list(lora), **settings).check()  # bad settings fail here, before the port opens
    except IdeaForgeError as exc:
        fail(str(exc), exc.exit_code)
        return
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        fail("the HTTP service needs FastAPI and uvicorn: pip install 'ideaforge[serve]'", 2)
        return
    if ray:
        from ideaforge.app.serve.ray_app import serve_on_ray

        serve_on_ray(config, settings, list(lora), replicas=replicas, gpus_per_replica=gpus_per_replica)
        return
    from ideaforge.app.serve.api import create_app

    print(f"ideaforge: serving on http://{host}:{port} (auth {'on' if config.key else 'off'})", file=sys.stderr)
    uvicorn.run(create_app(config, settings, list(lora)), host=host, port=port, log_level="warning",
                access_log=access_log, timeout_graceful_shutdown=10)
