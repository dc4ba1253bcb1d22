"""`ideaforge eval`: the three-arm evaluation (raw idea, optimized prompt, optimized + critic)."""

from __future__ import annotations

import sys

import typer

from ideaforge.app.cli import options
from ideaforge.app.cli.common import emit_json, friendly


@friendly
def eval_command(
    ideas_file: str = typer.Argument(..., help="Ideas: .txt, .csv, .tsv (PartiPrompts works as is) or .jsonl."),
    out: str = typer.Option(..., "--out", help="Folder for eval.csv, eval.md, eval.png and the images."),
    model: str | None = options.Model,
    clip_model: str | None = options.ClipModel,
    engine: str | None = options.Engine,
    style: str | None = typer.Option(None, "--style", help="Style preset for the optimized arms."),
    limit: int | None = typer.Option(None, "--limit", help="Only the first N ideas."),
    seeds: int = typer.Option(1, "--seeds", help="Seeds per idea (the same for every arm)."),
    first_seed: int = typer.Option(0, "--first-seed", help="First seed; the others follow it."),
    steps: int | None = typer.Option(None, "--steps"),
    guidance: float | None = typer.Option(None, "--guidance"),
    size: str | None = typer.Option(None, "--size", help="WIDTHxHEIGHT, multiples of 8."),
    scheduler: str | None = typer.Option(None, "--scheduler"),
    threshold: float | None = typer.Option(None, "--threshold", help="The critic arm's pass score."),
    max_attempts: int | None = typer.Option(None, "--max-attempts", help="The critic arm's rounds at most."),
    device: str | None = options.Device,
    critic: str | None = options.Critic,
    vlm_base_url: str | None = options.VlmBaseUrl,
    vlm_model: str | None = options.VlmModel,
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """Measure whether the optimized prompts and the critic make better images: share of checks passed and
    quality score per arm, with 95% confidence intervals."""
    from ideaforge.agent.forge import IdeaForge
    from ideaforge.app.evaluate import evaluate

    forge = IdeaForge(model=model, clip_model=clip_model, engine=engine, style=style, device=device, critic=critic,
                      vlm_base_url=vlm_base_url, vlm_model=vlm_model)
    run_options = {"steps": steps, "guidance": guidance, "size": size, "scheduler": scheduler,
                   "threshold": threshold, "max_attempts": max_attempts}
    overrides = {k: v for k, v in run_options.items() if v is not None}
    report = evaluate(forge, ideas_file, out=out, limit=limit, seeds=seeds, first_seed=first_seed,
                      progress=lambda m: print(m, file=sys.stderr), **overrides)
    print(open(report.files["markdown"], encoding="utf-8").read(), file=sys.stderr)
    for kind, path in report.files.items():
        print(f"{kind}: {path}", file=sys.stderr)
    if as_json:
        emit_json({"summary": report.summary, "files": report.files})
