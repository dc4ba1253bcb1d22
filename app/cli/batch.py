"""`ideaforge batch FILE --out DIR`: every idea of a list, resumable, with a progress bar on stderr.

Imports of torch, diffusers and Ray happen inside the command, so `ideaforge --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from ideaforge.app.cli import options


def batch(
    file: Path = typer.Argument(
        ..., help="Ideas: .txt (one a line), .csv/.tsv (an 'idea' or 'Prompt' column), .jsonl."
    ),
    out: str | None = typer.Option(None, "--out", help="Output folder (images, metadata.jsonl, run.json)."),
    model: str | None = options.Model,
    clip_model: str | None = options.ClipModel,
    engine: str | None = options.Engine,
    style: str | None = typer.Option(None, "--style", help="Style preset for ideas without their own."),
    llm_base_url: str | None = options.LlmBaseUrl,
    llm_model: str | None = options.LlmModel,
    llm_method: str | None = typer.Option(
        None, "--llm-method", help="Structured output: json_schema, function_calling or json_mode."
    ),
    steps: int | None = options.Steps,
    guidance: float | None = options.Guidance,
    size: str | None = options.Size,
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for ideas without their own (default: derived from each idea's text)."
    ),
    negative: str | None = typer.Option(
        None, "--negative", help="Negative prompt for ideas without their own (replaces the optimized one)."
    ),
    n: int | None = typer.Option(None, "--n", help="Images per attempt."),
    scheduler: str | None = options.Scheduler,
    lora: list[str] = options.Lora,
    critique: bool | None = options.Critique,
    critic: str | None = options.Critic,
    vlm_base_url: str | None = options.VlmBaseUrl,
    vlm_model: str | None = options.VlmModel,
    preference: str | None = options.Preference,
    max_images: int | None = options.MaxImages,
    max_seconds: float | None = options.MaxSeconds,
    threshold: float | None = options.Threshold,
    max_attempts: int | None = options.MaxAttempts,
    candidates: int | None = options.Candidates,
    keep_seed: bool | None = options.KeepSeed,
    device: str | None = options.Device,
    dtype: str | None = options.Dtype,
    allow_pickle: bool | None = options.AllowPickle,
    no_safety_checker: bool = options.NoSafetyChecker,
    executor: str = typer.Option("local", "--executor", help="local, or ray for a Ray cluster."),
    batch_size: int = typer.Option(4, "--batch-size", help="Images per pipeline call at most."),
    llm_concurrency: int = typer.Option(4, "--llm-concurrency", help="LLM calls at once (prompt stage)."),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (default: RAY_ADDRESS, else start a local one)."
    ),
    gpus_per_worker: float | None = typer.Option(
        None, "--gpus-per-worker", help="GPUs per Ray generation actor (default 1 with GPUs, else 0)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout."),
) -> None:
    """Render every idea of a list into one folder; run it again to resume where it stopped."""
    from ideaforge.app.cli.common import friendly

    settings = {
        "model": model, "clip_model": clip_model, "engine": engine, "style": style,
        "llm_base_url": llm_base_url, "llm_model": llm_model, "llm_method": llm_method, "steps": steps,
        "guidance": guidance, "size": size, "n": n, "scheduler": scheduler, "out": out, "critique": critique,
        "threshold": threshold, "critic": critic, "vlm_base_url": vlm_base_url, "vlm_model": vlm_model,
        "preference": preference, "max_images": max_images, "max_seconds": max_seconds,
        "max_attempts": max_attempts, "candidates": candidates, "keep_seed": keep_seed, "device": device,
        "dtype": dtype, "allow_pickle": allow_pickle, "safety_checker": False if no_safety_checker else None,
    }
    options = {"seed": seed, "negative": negative, "batch_size": batch_size,
               "llm_concurrency": llm_concurrency, "executor": executor, "ray_address": ray_address,
               "gpus_per_worker": gpus_per_worker}
    friendly(_run)(file, settings, lora, options, as_json)


def _run(file: Path, settings: dict[str, Any], loras: list[str], options: dict[str, Any],
         as_json: bool) -> None:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ideaforge.agent.forge import IdeaForge
    from ideaforge.app.batch.run import BatchInterrupted, BatchProgress, run_batch
    from ideaforge.app.cli.common import fail

    forge = IdeaForge(loras=loras, **settings)
    console = Console(file=sys.stderr, soft_wrap=True)
    bar = Progress(
        TextColumn("[bold]ideas"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[images]} images, {task.fields[failed]} failed, {task.fields[rate]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=True, disable=as_json and not sys.stderr.isatty(),
    )
    task: list[Any] = []

    def on_progress(p: BatchProgress) -> None:
        import time

        elapsed = time.perf_counter() - p.started
        rate = f"{p.images / elapsed:.2f} images/s" if p.images and elapsed > 0 else "starting"
        if not task:
            task.append(bar.add_task("ideas", total=p.total, images=0, failed=0, rate=rate))
        bar.update(task[0], completed=p.done + p.failed, images=p.images, failed=p.failed, rate=rate)

    try:
        with bar:
            summary = run_batch(forge, file, on_progress=on_progress, **options)
    except BatchInterrupted as exc:
        fail(exc.message, 130)
    _print_summary(console, summary)
    if as_json:
        import json

        sys.stdout.write(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2) + "\n")
    if not summary.ok:
        raise typer.Exit(1)


def _print_summary(console: Any, summary: Any) -> None:
    rec = summary.recovery
    repaired = [f"{count} {what}" for count, what in (
        (rec.adopted, "image(s) of an interrupted run adopted"), (rec.removed, "partial image(s) removed"),
        (rec.dropped_lines, "manifest line(s) without an image dropped"),
        (rec.duplicates, "repeated image(s) of a finished idea removed")) if count]
    if repaired:
        console.print(f"resumed: {', '.join(repaired)}")
    if summary.ignored_columns:
        console.print(f"note: ignored column(s): {', '.join(summary.ignored_columns)}")
    for line, first in summary.duplicates:
        console.print(f"note: line {line} repeats line {first} (same idea and settings); rendered once")
    for entry in summary.failed[:20]:
        idea = f" {entry['text']!r}" if entry.get("text") else ""
        console.print(f"[red]failed[/]: line {entry['line']}{idea} ({entry['stage']}): {entry['error']}")
    if len(summary.failed) > 20:
        console.print(f"... and {len(summary.failed) - 20} more")
    status = "[red]" if summary.failed else "[green]"
    cancelled = f", {summary.cancelled} not run (cancelled)" if summary.cancelled else ""
    console.print(
        f"{status}{summary.ideas} idea(s)[/]: {summary.done} done now, {summary.done_before} done before, "
        f"{len(summary.failed)} failed{cancelled}; {summary.images} image(s) in {summary.seconds:.1f} s "
        f"({summary.images_per_second:.2f} images/s) -> {summary.out}"
        + (f" (failures in {summary.out / 'failures.jsonl'})" if summary.failed else "")
    )
