"""What the diffusion tool costs over a bare diffusers call (a benchmark, not a test).

Both sides run the same loaded pipeline with the same prompt, seed and settings; repetitions are interleaved
(tool, bare, tool with step events, bare, ...) so drift in machine load hits both alike; the medians are compared,
and so is each run with the bare run right after it (the median of those ratios is the steadier figure on a noisy
machine). The tool's extra work is validation, profile resolution, seed handling, token-count warnings and the
pipeline lock; the "with step events" row adds the step callback and its previews (what the CLI and the chat ask
for). Without --model it builds the tiny random pipeline the tests use (64x64, 2 steps).

Run:
    python bench/bench_tool_vs_bare.py                      # tiny pipeline, offline
    python bench/bench_tool_vs_bare.py --model stabilityai/sd-turbo --size 512 --steps 1 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))  # the tiny models' builders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", help="Hub id, diffusers folder or .safetensors (default: a tiny random pipeline)"
    )
    parser.add_argument("--prompt", default="a red kitten in a basket")
    parser.add_argument("--negative", default="blurry")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=7.5)
    parser.add_argument("--size", type=int, default=64, help="square side in pixels")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--family", default="sd", help="family of the tiny pipeline built without --model: sd, sdxl, "
                        "sd3, flux")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ideaforge.tools.diffusion import DiffusionTool, GenerationParams, ImageRequest

    model = args.model
    if model is None:
        from tiny_models import build_tiny

        model = str(build_tiny(args.family, Path(tempfile.mkdtemp(prefix="ideaforge-bench-")) / f"tiny-{args.family}"))
    tool = DiffusionTool(model).load()
    pipe = tool.pipeline
    family = tool.family
    negative = {"negative_prompt": args.negative} if family.negative_prompt else {}
    # The pipeline's own scheduler on both sides: the tool would otherwise swap in its profile's (a cached view),
    # and the comparison would time two samplers instead of the tool.
    from ideaforge.tools.diffusion.schedulers import _friendly_scheduler

    params = GenerationParams(
        steps=args.steps,
        guidance=args.guidance,
        width=args.size,
        height=args.size,
        scheduler=_friendly_scheduler(pipe.scheduler),
    )
    request = ImageRequest(positive=args.prompt, negative=args.negative if family.negative_prompt else "", seed=args.seed)

    def with_tool() -> object:
        return tool.generate([request], params)[0].image

    def with_events() -> object:  # what the CLI and the chat ask for: an event per step, previews decoded
        return tool.generate([request], params, on_step=lambda event: None)[0].image

    def bare() -> object:
        return pipe(
            prompt=args.prompt,
            **negative,
            num_inference_steps=args.steps,
            guidance_scale=args.guidance,
            width=args.size,
            height=args.size,
            generator=torch.Generator("cpu").manual_seed(args.seed),
        ).images[0]

    import numpy as np

    same = np.array_equal(np.asarray(with_tool()), np.asarray(bare()))  # also the warm-up of both paths
    same_events = np.array_equal(np.asarray(with_events()), np.asarray(bare()))
    times: dict[str, list[float]] = {"tool": [], "events": [], "bare": []}
    pairs: dict[str, list[float]] = {"tool": [], "events": []}  # each run over the bare run right after it
    for _ in range(args.repeats):
        for name, run in (("tool", with_tool), ("bare", bare), ("events", with_events), ("bare", bare)):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
            if name == "bare":
                side = "tool" if len(times["bare"]) % 2 else "events"
                pairs[side].append(times[side][-1] / times["bare"][-1])

    tool_s, bare_s = statistics.median(times["tool"]), statistics.median(times["bare"])
    events_s = statistics.median(times["events"])
    print(f"model {model} (family {family.key})  device {tool.device_name}  threads {torch.get_num_threads()}")
    print(
        f"{args.size}x{args.size}, {args.steps} steps, guidance {args.guidance:g}, {args.repeats} interleaved repeats"
    )
    print(f"scheduler {params.scheduler} on both sides; same pixels: {same} (with step events: {same_events})")
    print(f"DiffusionTool.generate  median {tool_s:.4f} s  (min {min(times['tool']):.4f})")
    print(f"  with step events      median {events_s:.4f} s  (min {min(times['events']):.4f})")
    print(f"bare pipe(...)          median {bare_s:.4f} s  (min {min(times['bare']):.4f})")
    print(f"ratio tool/bare         {tool_s / bare_s:.3f}  (overhead {1000 * (tool_s - bare_s):+.1f} ms; "
          f"median of paired ratios {statistics.median(pairs['tool']):.3f})")
    print(f"ratio events/bare       {events_s / bare_s:.3f}  (overhead {1000 * (events_s - bare_s):+.1f} ms; "
          f"median of paired ratios {statistics.median(pairs['events']):.3f})")


if __name__ == "__main__":
    main()
