"""What `IdeaForge` costs over a bare diffusers call: rules engine, no critic, same prompt, seed and settings.

Arm A is the whole user-level call, `forge.run(idea, seed=..., critique=False)`: the rules prompt engine, input
validation, the diffusion tool (step callback, latent previews, token-count warnings, the pipeline lock) and
saving the PNG with both metadata chunks (fsynced). Arm B is `pipe(prompt=..., negative_prompt=..., ...)` on the
same loaded diffusers pipeline with the spec's prompts, the same seed (a CPU `torch.Generator`), steps, guidance,
size and scheduler, returning a PIL image. Loading is excluded from both (one warm-up call each); the two arms
alternate for `--repeats` rounds, and the report gives medians, their ratio and the median of the paired ratios.
It also checks that both arms produced the same pixels, so they really did the same computation.

Run:
    python bench/bench_overhead.py                                  # the tiny test pipeline
    python bench/models.py /tmp/ifb --only sd15-shaped              # an SD 1.5-shaped random pipeline (~4 GiB)
    python bench/bench_overhead.py --model /tmp/ifb/sd15-shaped --scheduler pndm --steps 2 --repeats 5
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
from pathlib import Path

import _common


def run(
    model: str, *, steps: int, size: int, repeats: int, scheduler: str | None, idea: str, seed: int, tmp: Path
) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from ideaforge import IdeaForge

    forge = IdeaForge(
        model=model,
        engine="rules",
        critique=False,
        steps=steps,
        size=f"{size}x{size}",
        scheduler=scheduler,
        out=str(tmp / "warm"),
    )
    first = forge.run(idea, seed=seed)  # loads the model, tokenizer and prompt data; the warm-up of arm A
    attempt = first.attempts[0]
    settings = attempt.settings
    spec = first.spec
    pipe = forge.generator.pipeline  # the same loaded pipeline object: only the code around it differs
    guidance = float(settings["guidance"])

    def bare() -> Image.Image:
        return pipe(
            prompt=spec.positive,
            negative_prompt=spec.negative,
            num_inference_steps=steps,
            guidance_scale=guidance,
            width=size,
            height=size,
            generator=torch.Generator("cpu").manual_seed(seed),
        ).images[0]

    bare_image = bare()  # warm-up of arm B
    with Image.open(first.best_image_path) as saved:
        same = np.array_equal(np.asarray(saved.convert("RGB")), np.asarray(bare_image))

    counter = itertools.count()
    parts: dict[str, list[float]] = {"prompt": [], "generate": [], "total": []}

    def with_forge() -> None:
        # A fresh folder per call, as distinct ideas would be: no file-name probing grows with the repeats.
        result = forge.run(idea, seed=seed, out=str(tmp / f"r{next(counter)}"))
        seconds = result.attempts[0].seconds
        parts["prompt"].append(seconds["prompt"])
        parts["generate"].append(seconds["generate"])

    load_before = _common.loadavg()
    times = _common.interleaved({"forge": with_forge, "bare": bare}, repeats)
    cmp = _common.compare(times["forge"], times["bare"])
    prompt_s, generate_s = statistics.median(parts["prompt"]), statistics.median(parts["generate"])
    return {
        "model": model,
        "device": forge.generator.device_name,
        "threads": torch.get_num_threads(),
        "idea": idea,
        "positive": spec.positive,
        "negative": spec.negative,
        "seed": seed,
        "steps": steps,
        "size": f"{size}x{size}",
        "scheduler": settings["scheduler"],
        "guidance": guidance,
        "pipeline_class": type(pipe).__name__,
        "same_pixels": bool(same),
        "forge": times["forge"],
        "bare": times["bare"],
        **cmp,
        "overhead_ms": 1000 * (cmp["a_median"] - cmp["b_median"]),
        "forge_prompt_median_ms": 1000 * prompt_s,
        "forge_generate_median_s": generate_s,
        # A's time outside the prompt engine and the diffusion tool: validation, the PNG and its records.
        "forge_rest_median_ms": 1000 * (cmp["a_median"] - prompt_s - generate_s),
        "tool_over_bare_ms": 1000 * (generate_s - cmp["b_median"]),
        "version_lookups_ms": version_lookups_ms(),
        "loadavg_before": load_before,
        "loadavg_after": _common.loadavg(),
    }


def version_lookups_ms() -> float:
    """What asking for the package versions that each image's record carries costs, as the save path does."""
    import time

    from ideaforge.tools.metadata import package_versions

    samples = []
    for _ in range(20):
        t0 = time.perf_counter()
        package_versions()  # once per image record (cached after the first look-up)
        samples.append(time.perf_counter() - t0)
    return 1000 * statistics.median(samples)


def report(r: dict) -> str:
    lines = [
        f"model {r['model']} ({r['pipeline_class']}, {r['device']}, {r['threads']} torch threads)",
        (
            f"{r['size']}, {r['steps']} steps, {r['scheduler']}, guidance {r['guidance']:g}, seed {r['seed']}, "
            f"{r['repeats']} interleaved repeats; load average {r['loadavg_before']} -> {r['loadavg_after']}"
        ),
        f"same pixels from both arms: {r['same_pixels']}"
        + (
            ""
            if r["same_pixels"]
            else " (NOT the same computation: pass --scheduler with the model's shipped scheduler)"
        ),
        f"IdeaForge.run (rules, no critic)  median {r['a_median']:.4f} s  (min {r['a_min']:.4f})",
        (
            f"  of which prompt engine {r['forge_prompt_median_ms']:.1f} ms, DiffusionTool.generate "
            f"{r['forge_generate_median_s']:.4f} s, the rest (validation, PNG and records) "
            f"{r['forge_rest_median_ms']:.1f} ms (medians)"
        ),
        (
            f"  package-version look-ups for one image's records (ideaforge.tools.metadata.package_versions): {r['version_lookups_ms']:.1f} ms"
        ),
        f"bare pipe(...)                    median {r['b_median']:.4f} s  (min {r['b_min']:.4f})",
        (
            f"ratio forge/bare {r['ratio']:.3f} (paired {r['paired_ratio']:.3f}), overhead {r['overhead_ms']:+.1f} ms "
            f"(DiffusionTool.generate over bare: {r['tool_over_bare_ms']:+.1f} ms)"
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a diffusers folder (default: build the tiny test pipeline)")
    parser.add_argument("--scheduler", help="friendly scheduler name (default: the model profile's)")
    parser.add_argument("--idea", default="a red kitten in a basket")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=64, help="square side in pixels")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    _common.quiet_progress()
    _common.set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ideaforge-overhead-") as name:
        tmp = Path(name)
        model = args.model
        if model is None:
            from tiny_models import build_tiny_sd

            model = str(build_tiny_sd(tmp / "tiny-sd"))
        result = run(
            model,
            steps=args.steps,
            size=args.size,
            repeats=args.repeats,
            scheduler=args.scheduler,
            idea=args.idea,
            seed=args.seed,
            tmp=tmp,
        )
    print(report(result))
    _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
