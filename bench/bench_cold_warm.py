"""Cold versus warm: the first `IdeaForge.run` in a fresh process (imports, model loads) versus later calls.

Each of `--processes` fresh Python processes builds one `IdeaForge` (rules engine; with `--clip-model`, the CLIP
critic for one round), times its first `run`, then `--warm` more runs, then one run through a second `IdeaForge`
with the same settings. Inside the process the loaders (`ideaforge.tools.diffusion.loading._load_pipeline`,
`ideaforge.tools.critic.scorer._load`) are wrapped to count and time every real load, and the loaded pipeline and CLIP model are
compared by identity before and after, so "later calls do not reload" is checked, not assumed. The report gives
the median first call, the median warm call and their ratio, the loads per process, and the load time.

The first call includes importing torch, diffusers and transformers. The model files sit in the operating system's page cache (they were just built or used), so "cold" means a fresh
process, not a cold disk.

Run:
    python bench/bench_cold_warm.py                                         # the tiny test models
    python bench/bench_cold_warm.py --model DIR --clip-model DIR --scheduler pndm --processes 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common


def child(args: argparse.Namespace) -> None:
    """One fresh process: first call, warm calls, a second IdeaForge; prints one JSON line."""
    started = time.perf_counter()
    import ideaforge.tools.critic.scorer as critic_module
    import ideaforge.tools.diffusion.loading as diffusion_module
    from ideaforge import IdeaForge

    loads: dict[str, list[float]] = {"pipeline": [], "clip": []}

    def counted(name: str, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                loads[name].append(time.perf_counter() - t0)

        return wrapper

    diffusion_module._load_pipeline = counted("pipeline", diffusion_module._load_pipeline)
    critic_module._load = counted("clip", critic_module._load)
    critique = args.clip_model is not None
    out = args.out or tempfile.mkdtemp(prefix="ideaforge-coldwarm-")
    settings = {
        "model": args.model,
        "clip_model": args.clip_model,
        "engine": "rules",
        "critique": critique,
        "max_attempts": 1,
        "steps": args.steps,
        "size": f"{args.size}x{args.size}",
        "scheduler": args.scheduler,
        "out": out,
    }
    imported = time.perf_counter() - started
    forge = IdeaForge(**settings)
    t0 = time.perf_counter()
    forge.run(args.idea, seed=1)
    first = time.perf_counter() - t0
    pipe_id = id(forge.generator.pipeline)
    clip_id = id(forge.scorer.clip) if critique else None
    warm = []
    for i in range(args.warm):
        t0 = time.perf_counter()
        forge.run(args.idea, seed=2 + i)
        warm.append(time.perf_counter() - t0)
    same_objects = id(forge.generator.pipeline) == pipe_id and (
        not critique or id(forge.scorer.clip) == clip_id
    )
    loads_after_warm = {k: len(v) for k, v in loads.items()}
    second = IdeaForge(**settings)
    t0 = time.perf_counter()
    second.run(args.idea, seed=100)
    second_forge = time.perf_counter() - t0
    shared = second.generator.pipeline is forge.generator.pipeline and (
        not critique or second.scorer.clip is forge.scorer.clip
    )
    # What a new IdeaForge's first call does once that a warm call does not: copy the model's tokenizer.
    import copy

    t0 = time.perf_counter()
    copy.deepcopy(forge.generator.tokenizer)
    tokenizer_copy = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "import_s": imported,
                "first_s": first,
                "warm_s": warm,
                "second_forge_s": second_forge,
                "tokenizer_deepcopy_s": tokenizer_copy,
                "loads_after_first_and_warm": loads_after_warm,
                "loads_total": {k: len(v) for k, v in loads.items()},
                "load_s": {k: sum(v) for k, v in loads.items()},
                "same_objects_across_calls": same_objects,
                "second_forge_shares_models": shared,
            }
        )
    )


def run(args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--size",
        str(args.size),
        "--warm",
        str(args.warm),
        "--idea",
        args.idea,
    ]
    for flag in ("clip_model", "scheduler"):
        value = getattr(args, flag)
        if value is not None:
            cmd += ["--" + flag.replace("_", "-"), str(value)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IDEAFORGE_", "OPENAI_"))}
    if args.threads:  # torch reads it when first imported, so the child's first call still pays that import
        env["OMP_NUM_THREADS"] = str(args.threads)
    load_before = _common.loadavg()
    procs = []
    for i in range(args.processes):
        t0 = time.perf_counter()
        out = ["--out", str(Path(args.work) / f"out-{i}")]
        done = subprocess.run(
            cmd + out, env=env, cwd=_common.ROOT, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"the child process failed:\n{done.stderr[-3000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["process_wall_s"] = wall
        procs.append(row)
    first = [p["first_s"] for p in procs]
    warm_each = [_common.median(p["warm_s"]) for p in procs]
    all_warm = [w for p in procs for w in p["warm_s"]]
    return {
        "model": args.model,
        "clip_model": args.clip_model,
        "threads": args.threads,
        "steps": args.steps,
        "size": f"{args.size}x{args.size}",
        "scheduler": args.scheduler,
        "processes": procs,
        "first_median_s": _common.median(first),
        "warm_median_s": _common.median(all_warm),
        "second_forge_median_s": _common.median([p["second_forge_s"] for p in procs]),
        "tokenizer_deepcopy_median_s": _common.median([p["tokenizer_deepcopy_s"] for p in procs]),
        "ratio": _common.median(first) / _common.median(all_warm),
        "paired_ratio": _common.median([f / w for f, w in zip(first, warm_each)]),
        "pipeline_load_median_s": _common.median([p["load_s"]["pipeline"] for p in procs]),
        "clip_load_median_s": _common.median([p["load_s"]["clip"] for p in procs])
        if args.clip_model
        else None,
        "process_wall_median_s": _common.median([p["process_wall_s"] for p in procs]),
        "loads_per_process": sorted({json.dumps(p["loads_total"], sort_keys=True) for p in procs}),
        "no_reload": all(
            p["loads_total"]["pipeline"] == 1
            and p["loads_total"]["clip"] == (1 if args.clip_model else 0)
            and p["same_objects_across_calls"]
            and p["second_forge_shares_models"]
            for p in procs
        ),
        "loadavg_before": load_before,
        "loadavg_after": _common.loadavg(),
    }


def report(r: dict) -> str:
    n = len(r["processes"])
    warm_calls = sum(len(p["warm_s"]) for p in r["processes"])
    what = "generation + one CLIP critic round" if r["clip_model"] else "generation, no critic"
    lines = [
        f"model {r['model']}" + (f", critic {r['clip_model']}" if r["clip_model"] else ""),
        (
            f"{what}; {r['size']}, {r['steps']} steps; {n} fresh processes, {warm_calls} warm calls; "
            f"torch threads {r['threads'] or 'default'}; load average {r['loadavg_before']} -> {r['loadavg_after']}"
        ),
        f"first call in a process  median {r['first_median_s']:.3f} s  "
        f"(diffusion pipeline load {r['pipeline_load_median_s']:.3f} s"
        + (f", CLIP load {r['clip_load_median_s']:.3f} s" if r["clip_model"] else "")
        + ")",
        f"later calls              median {r['warm_median_s']:.3f} s",
        (
            f"a second IdeaForge, same process: median {r['second_forge_median_s']:.3f} s (copy.deepcopy of the "
            f"model's tokenizer, which a new IdeaForge's first call makes: {r['tokenizer_deepcopy_median_s']:.3f} s)"
        ),
        f"ratio first/later {r['ratio']:.1f}x (paired {r['paired_ratio']:.1f}x)",
        (
            f"loads per process {', '.join(r['loads_per_process'])}; later calls reuse the same objects: "
            f"{r['no_reload']}"
        ),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a diffusers folder (default: build the tiny test pipeline)")
    parser.add_argument(
        "--clip-model",
        help="a CLIP folder: also run the critic (default with --model unset: the tiny test CLIP)",
    )
    parser.add_argument("--scheduler", help="friendly scheduler name (default: the model profile's)")
    parser.add_argument("--idea", default="a red kitten in a basket")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--processes", type=int, default=5, help="fresh processes (cold calls)")
    parser.add_argument("--warm", type=int, default=4, help="warm calls per process")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(prefix="ideaforge-coldwarm-") as name:
        args.work = name
        if args.model is None:
            _common.quiet_progress()
            from tiny_clip import build_tiny_clip
            from tiny_models import build_tiny_sd

            args.model = str(build_tiny_sd(Path(name) / "tiny-sd"))
            args.clip_model = args.clip_model or str(build_tiny_clip(Path(name) / "tiny-clip"))
        result = run(args)
    print(report(result))
    _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
