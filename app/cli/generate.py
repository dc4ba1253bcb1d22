"""`ideaforge prompt`, `generate`, `info` and `styles`: parse options, call the forge, print the result."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer

from ideaforge.app.cli import options
from ideaforge.app.cli.common import emit_json, fail, friendly, read_spec, warn_fallback


@friendly
def prompt(
    idea: str = typer.Argument(..., help="The idea, in any language (with --refine: the change to make)."),
    engine: str | None = options.Engine,
    style: str | None = options.Style,
    family: str | None = options.Family,
    llm_base_url: str | None = options.LlmBaseUrl,
    llm_model: str | None = options.LlmModel,
    llm_method: str | None = options.LlmMethod,
    llm_timeout: float | None = options.LlmTimeout,
    llm_max_retries: int | None = options.LlmMaxRetries,
    require_llm: bool | None = options.RequireLlm,
    refine: str | None = typer.Option(
        None, "--refine", metavar="SPEC.json",
        help="Apply IDEA as a change to this spec (what `prompt --json` printed; - reads stdin).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Turn an idea into an optimized positive and negative prompt (no image), or refine an earlier one.

    Shells can chain refinements:
    `ideaforge prompt "a harbor" --json > a.json; ideaforge prompt "make it night" --refine a.json --json > b.json`
    """
    from ideaforge.agent.chain import PromptChain
    from ideaforge.agent.families import prompt_family
    from ideaforge.agent.settings import load_settings

    if family is not None:
        prompt_family(family)  # a bad --family fails with one line (exit 2) before anything else runs
    previous = read_spec(refine) if refine is not None else None  # a bad file fails before any LLM call
    settings = load_settings(
        engine=engine, style=style, llm_base_url=llm_base_url, llm_model=llm_model, llm_method=llm_method,
        llm_timeout=llm_timeout, llm_max_retries=llm_max_retries, require_llm=require_llm,
    )
    chain = PromptChain(settings)
    if previous is None:
        spec = chain.optimize(idea, family=family)
    else:
        if family is not None:  # an explicit --family rewrites the refinement for that family
            previous = previous.model_copy(update={"family": family})
        if style is not None:  # an explicit --style replaces the spec's own; otherwise the spec keeps its style
            previous = previous.model_copy(update={"style": style or None})
        spec = chain.refine(previous, idea)
    warn_fallback(spec)
    if as_json:
        emit_json(spec.model_dump())
        return
    _print_spec(spec)


def _print_spec(spec: Any) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ideaforge.tools.sanitize import safe

    def plain(value: str) -> Text:  # printed as written: no rich markup, no control characters
        return Text(safe(value))

    table = Table(show_header=False, box=None, padding=(0, 1))
    family = getattr(spec, "family", "sd")
    readers = _readers(family)
    table.add_row(f"[bold]positive[/]{readers.get('positive', '')}", plain(spec.positive))
    for field in ("positive_2", "positive_3"):
        if getattr(spec, field, None) and getattr(spec, field) != spec.positive:
            table.add_row(f"[bold]{field}[/]{readers.get(field, '')}", plain(getattr(spec, field)))
    if spec.negative or not spec.negative_note:
        table.add_row("[bold]negative[/]", plain(spec.negative))
    table.add_row("[bold]elements[/]", plain(", ".join(spec.elements)))
    table.add_row(
        "[bold]engine[/]",
        plain(f"{spec.engine}  (family {family}, language {spec.language}, style {spec.style or 'none'})"),
    )
    if family == "sd" or not spec.tokens:
        table.add_row("[bold]tokens[/]", f"{spec.positive_tokens} / {spec.negative_tokens} of 77")
    else:
        from ideaforge.agent.families import prompt_family

        budgets = prompt_family(family).budgets
        shown = [f"{e} {n}{'~' if e in spec.estimated_tokens else ''} of {budgets.get(e, '?')}"
                 for e, n in spec.tokens.items()]
        table.add_row("[bold]tokens[/]", plain(", ".join(shown) + ("  (~ estimated)" if spec.estimated_tokens else "")))
    for w in spec.warnings:
        table.add_row("[yellow]warning[/]", plain(w))
    console = Console(soft_wrap=True)
    console.print(table)
    if spec.checks:
        console.print(checklist_table(spec))


def _readers(family: str) -> dict[str, str]:
    """Spec field -> ' (clip_l, clip_g)': which text encoders read it, for the human output."""
    from ideaforge.agent.families import prompt_family

    by_field: dict[str, list[str]] = {}
    for encoder, field in prompt_family(family).reads.items():
        by_field.setdefault(field, []).append(encoder)
    return {f: f" ({', '.join(e)})" for f, e in by_field.items()} if family != "sd" else {}


def checklist_table(spec: Any) -> Any:
    """The spec's checklist as a rich table: #, kind, the yes/no question, and the checks it depends on."""
    from rich.table import Table
    from rich.text import Text

    from ideaforge.tools.sanitize import safe

    table = Table(title="checklist", title_justify="left", box=None, padding=(0, 1), header_style="bold")
    for column in ("#", "kind", "check", "depends on"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for check in spec.checks:
        table.add_row(
            str(check.id), Text(safe(check.kind)), Text(safe(check.question)),
            Text(", ".join(str(d) for d in check.depends_on)),
        )
    return table


@friendly
def generate(
    idea: str | None = typer.Argument(None, help="The idea, in any language (omit with --from)."),
    model: str | None = options.Model,
    clip_model: str | None = options.ClipModel,
    engine: str | None = options.Engine,
    style: str | None = options.Style,
    llm_base_url: str | None = options.LlmBaseUrl,
    llm_model: str | None = options.LlmModel,
    llm_method: str | None = options.LlmMethod,
    llm_timeout: float | None = options.LlmTimeout,
    llm_max_retries: int | None = options.LlmMaxRetries,
    require_llm: bool | None = options.RequireLlm,
    steps: int | None = options.Steps,
    guidance: float | None = options.Guidance,
    size: str | None = options.Size,
    seed: int | None = typer.Option(None, "--seed", help="Seed of the first image (default: random, recorded)."),
    n: int | None = options.N,
    scheduler: str | None = options.Scheduler,
    lora: list[str] = options.Lora,
    init_image: str | None = typer.Option(None, "--init-image", help="Start from this image (img2img)."),
    strength: float | None = typer.Option(None, "--strength", help="img2img strength, 0 < S <= 1."),
    out: str | None = typer.Option(None, "--out", help="Output folder."),
    critique: bool | None = options.Critique,
    critic: str | None = options.Critic,
    vlm_base_url: str | None = options.VlmBaseUrl,
    vlm_model: str | None = options.VlmModel,
    preference: str | None = options.Preference,
    threshold: float | None = options.Threshold,
    max_attempts: int | None = options.MaxAttempts,
    max_images: int | None = options.MaxImages,
    max_seconds: float | None = options.MaxSeconds,
    max_llm_calls: int | None = options.MaxLlmCalls,
    candidates: int | None = options.Candidates,
    keep_seed: bool | None = options.KeepSeed,
    device: str | None = options.Device,
    dtype: str | None = options.Dtype,
    allow_pickle: bool | None = options.AllowPickle,
    no_safety_checker: bool = options.NoSafetyChecker,
    family: str | None = options.Family,
    offload: str | None = options.Offload,
    vae_slicing: bool | None = options.VaeSlicing,
    vae_tiling: bool | None = options.VaeTiling,
    compile_model: bool | None = options.Compile,
    attention_backend: str | None = options.AttentionBackend,
    cache: str | None = options.Cache,
    layerwise_casting: str | None = options.LayerwiseCasting,
    from_image: str | None = typer.Option(None, "--from", help="Reproduce an image from its PNG record."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Idea -> optimized prompt and checklist -> image(s), checked by the critic and repaired where they fail."""
    from ideaforge.agent.forge import IdeaForge
    from ideaforge.errors import InputError

    record = None
    if from_image:
        from ideaforge.agent.record import PngRecord

        record = PngRecord.from_png(from_image)  # one line and exit 2 for a missing, foreign or damaged record
        model = model or record.model or None
        lora = lora or list(record.loras)
        idea = record.idea
        made_with = record.options or {}
        if vae_tiling is None and isinstance(made_with.get("vae_tiling"), bool):
            vae_tiling = made_with["vae_tiling"]  # tiling changes the pixels: decode as the image was decoded
    if idea is None:
        raise InputError("no idea given; pass an IDEA or --from IMAGE.png")
    forge = IdeaForge(
        model=model, clip_model=clip_model, engine=engine, style=style, llm_base_url=llm_base_url,
        llm_model=llm_model, llm_method=llm_method, llm_timeout=llm_timeout, llm_max_retries=llm_max_retries,
        require_llm=require_llm, steps=steps, guidance=guidance, size=size, n=n,
        scheduler=scheduler, out=out, critique=critique, threshold=threshold, max_attempts=max_attempts,
        critic=critic, vlm_base_url=vlm_base_url, vlm_model=vlm_model, preference=preference,
        max_images=max_images, max_seconds=max_seconds, max_llm_calls=max_llm_calls,
        candidates=candidates, keep_seed=keep_seed, device=device, dtype=dtype, allow_pickle=allow_pickle,
        safety_checker=False if no_safety_checker else None, loras=lora,
        offload=offload, vae_slicing=vae_slicing, vae_tiling=vae_tiling, compile=compile_model,
        attention_backend=attention_backend, cache_acceleration=cache, layerwise_casting=layerwise_casting,
    )
    run_overrides: dict[str, Any] = {
        k: v for k, v in {"seed": seed, "init_image": init_image, "strength": strength}.items() if v is not None
    }
    forge.check(**run_overrides)  # bad values fail here, before the prompt stage or any model load
    from ideaforge.app.cli.progress import Progress

    progress = Progress(enabled=not as_json or sys.stderr.isatty())
    started = time.time()
    try:
        with progress:
            if from_image:
                assert record is not None
                recorded = record.spec()
                progress.spec(recorded)
                _print_checks(progress, recorded)
                given: dict[str, Any] = {"steps": steps, "guidance": guidance, "size": size, "scheduler": scheduler, "n": n,
                         "critique": critique, "threshold": threshold, "max_attempts": max_attempts,
                         "candidates": candidates, "keep_seed": keep_seed, "style": style}
                given = {k: v for k, v in given.items() if v is not None} | run_overrides
                result = forge.reproduce(from_image, on_event=progress.on_event, **given)
            else:
                spec = forge.optimize(idea, family=family)
                warn_fallback(spec)
                progress.spec(spec)  # the prompt stage prints its result before any model loads
                _print_checks(progress, spec)
                result = forge.run(idea, spec=spec, on_event=progress.on_event, **run_overrides)
    except KeyboardInterrupt:
        # Images are written whole (temporary file, then rename): what was saved is complete, nothing is partial.
        # The folder is the truth: an image can land between its write and the event that reports it.
        saved = sorted({*progress.saved, *_written_since(Path(forge.settings.out), started, idea)})
        kept = ", ".join(saved) if saved else "no images"
        fail(f"interrupted; nothing partial was written; kept {len(saved)} complete image(s): {kept}", 130)
    progress.summary(result)
    if as_json:
        emit_json(result_json(result))
    if result.best is None or result.best_image_path is None:
        fail("no usable image was produced (every image was flagged or failed); see the warnings above", 1)


def _print_checks(progress: Any, spec: Any) -> None:
    """The checklist under the prompts, where the progress prints them (stderr)."""
    if spec.checks:
        progress.console.print(checklist_table(spec))


def _written_since(folder: Path, since: float, idea: str) -> list[str]:
    """PNGs in `folder` written since `since` whose record names `idea` (this run's images)."""
    from ideaforge.agent.record import PngRecord
    from ideaforge.errors import InputError

    found = []
    for path in folder.glob("*.png"):
        try:
            if path.stat().st_mtime >= since - 1 and PngRecord.from_png(path).idea == " ".join(idea.split()):
                found.append(str(path))
        except (OSError, InputError):
            continue
    return found


def result_json(result: Any) -> dict[str, Any]:
    """The --json object: the best attempt's spec and images, plus every attempt."""
    data = result.model_dump(mode="json")
    best = result.best
    data["spec"] = best.spec.model_dump(mode="json") if best else None
    data["images"] = result.image_paths
    data["best_image"] = result.best_image_path
    data["best_score"] = best.score if best else None
    data["seeds"] = [img.seed for a in result.attempts for img in a.images]
    for att in data["attempts"]:
        att["positive"] = att["spec"]["positive"]
        att["negative"] = att["spec"]["negative"]
        att["scores"] = [img["scores"] for img in att["images"]]
    return data


@friendly
def info(
    image: str = typer.Argument(..., help="A PNG written by ideaforge (or by A1111)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """Show the prompt, seed and settings recorded in an image."""
    from ideaforge.errors import InputError
    from ideaforge.tools.metadata import parse_a1111_parameters, read_record
    from ideaforge.tools.sanitize import safe

    data = read_record(image)
    if not data.get("parameters") and not data.get("ideaforge"):
        raise InputError(f"{image!r} carries no generation metadata")
    if as_json:
        if data.get("parameters"):
            data["parsed"] = parse_a1111_parameters(data["parameters"])
        emit_json(data)
        return
    # A PNG is anyone's file: its text is printed without secrets or terminal control sequences.
    if data.get("parameters"):
        print(safe(data["parameters"], keep_newlines=True))
    record = data.get("ideaforge") or {}
    for key in ("idea", "engine", "model", "seed", "scores"):
        if key in record:
            value = record[key]
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
            print(f"{key}: {safe(shown)}")


def styles() -> None:
    """List the style presets."""
    from ideaforge import prompts

    for name, s in sorted(prompts.styles().items()):
        print(f"{name:15s} {s['description']}")
