"""The CLIP critic's share of one round: a round with the critic versus the same round without it.

Arm A is `forge.run(idea, seed=..., critique=True, max_attempts=1)`: prompt, generation, the `clip` critic checking
the image against each check of the checklist (with its contrast texts) and scoring it against the idea, saving. Arm B is the same call with `critique=False`. Both arms use one `IdeaForge`
(models loaded before timing), alternate for `--repeats` rounds, and the report gives both medians and their ratio,
plus the critic's share of arm A's round from the attempt's own timings (`Attempt.seconds["critic"]` over the
call's wall time) and its median milliseconds.

Run:
    python bench/bench_critic_share.py                                   # the tiny test models
    python bench/models.py /tmp/ifb --only sd15-shaped clip-b32-shaped
    python bench/bench_critic_share.py --model /tmp/ifb/sd15-shaped --clip-model /tmp/ifb/clip-b32-shaped \
        --scheduler pndm --repeats 4
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
from pathlib import Path

import _common

sys.path.insert(0, str(_common.ROOT / "tests"))  # the tiny test models' builders


def run(
    model: str,
    clip_model: str,
    *,
    steps: int,
    size: int,
    repeats: int,
    scheduler: str | None,
    idea: str,
    seed: int,
    tmp: Path,
) -> dict:
    import torch

    from ideaforge import IdeaForge

    forge = IdeaForge(
        model=model,
        clip_model=clip_model,
        engine="rules",
        steps=steps,
        size=f"{size}x{size}",
        scheduler=scheduler,
        max_attempts=1,
        out=str(tmp / "warm"),
    )
    forge.run(idea, seed=seed, critique=True)  # loads both models; warm-up of arm A
    forge.run(idea, seed=seed, critique=False)  # warm-up of arm B
    counter = itertools.count()
    critic_s: list[float] = []
    shares: list[float] = []
    round_shares: list[float] = []
    elements: list[int] = []

    def timed(critique: bool):
        def arm() -> None:
            import time

            t0 = time.perf_counter()
            result = forge.run(idea, seed=seed, critique=critique, out=str(tmp / f"r{next(counter)}"))
            wall = time.perf_counter() - t0
            if critique:
                seconds = result.attempts[0].seconds
                critic_s.append(seconds["critic"])
                shares.append(seconds["critic"] / wall)
                round_shares.append(seconds["critic"] / sum(seconds.values()))
                elements.append(len(result.attempts[0].spec.checks))

        return arm

    load_before = _common.loadavg()
    times = _common.interleaved({"with_critic": timed(True), "without_critic": timed(False)}, repeats)
    cmp = _common.compare(times["with_critic"], times["without_critic"])
    return {
        "model": model,
        "clip_model": clip_model,
        "clip_device": forge.settings.device or "cpu",
        "threads": torch.get_num_threads(),
        "steps": steps,
        "size": f"{size}x{size}",
        "idea": idea,
        "checks": statistics.median(elements),
        "with_critic": times["with_critic"],
        "without_critic": times["without_critic"],
        **cmp,
        "critic_median_ms": 1000 * statistics.median(critic_s),
        "critic_share_of_call": statistics.median(shares),
        "critic_share_of_round": statistics.median(round_shares),
        "loadavg_before": load_before,
        "loadavg_after": _common.loadavg(),
    }


def report(r: dict) -> str:
    return "\n".join(
        [
            f"model {r['model']}, critic {r['clip_model']} ({r['clip_device']}, {r['threads']} torch threads)",
            (
                f"{r['size']}, {r['steps']} steps, one image checked by CLIP per check ({r['checks']:g} checks, contrast "
                "texts) plus its idea score; "
                f"{r['repeats']} interleaved repeats; load average {r['loadavg_before']} -> {r['loadavg_after']}"
            ),
            f"round with critic     median {r['a_median']:.4f} s  (min {r['a_min']:.4f})",
            f"round without critic  median {r['b_median']:.4f} s  (min {r['b_min']:.4f})",
            f"ratio with/without {r['ratio']:.3f} (paired {r['paired_ratio']:.3f})",
            (
                f"critic: median {r['critic_median_ms']:.1f} ms, {r['critic_share_of_call']:.1%} of the call's wall time, "
                f"{r['critic_share_of_round']:.1%} of prompt+generate+critic"
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a diffusers folder (default: build the tiny test pipeline)")
    parser.add_argument("--clip-model", help="a CLIP folder (default: build the tiny test CLIP)")
    parser.add_argument("--scheduler", help="friendly scheduler name (default: the model profile's)")
    parser.add_argument("--idea", default="a red kitten in a basket")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    _common.quiet_progress()
    _common.set_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="ideaforge-critic-share-") as name:
        tmp = Path(name)
        model, clip_model = args.model, args.clip_model
        if model is None:
            from tiny_models import build_tiny_sd

            model = str(build_tiny_sd(tmp / "tiny-sd"))
        if clip_model is None:
            from tiny_clip import build_tiny_clip

            clip_model = str(build_tiny_clip(tmp / "tiny-clip"))
        result = run(
            model,
            clip_model,
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
