"""VAE tiling's peak memory at 1024x1024 on the SD 1.5-shaped VAE, against no tiling (a benchmark, not a test).

One run measures both arms side by side, each in its own fresh process so that one's peak cannot hide the other's:
the process builds the SD 1.5-shaped AutoencoderKL (bench/models.py's config: 128-256-512-512 channels, 4 latent
channels, random seeded weights), sets tiling through ideaforge's own per-call switch (`_vae_for_call`, what
`DiffusionTool(vae_tiling=...)` does) and decodes one 1024x1024 image (128x128 latents). Peak resident memory is
the kernel's high-water mark (`ru_maxrss`): `before` after building the VAE and latents, `peak` after decoding;
`decode` is the difference, the memory the decode itself needed. torch's CPU allocations do not go through Python's
allocator, so tracemalloc would not see them; RSS does.

Run:
    python bench/bench_vae_tiling.py                 # both arms, 1024x1024, prints a table and JSON
    python bench/bench_vae_tiling.py --size 768 --threads 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ARMS = ("untiled", "tiled")


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _sd15_vae() -> object:
    import torch
    from diffusers import AutoencoderKL
    from models import SD15_VAE  # bench/models.py: the VAE of its build_sd15_shaped

    torch.manual_seed(1)
    return AutoencoderKL(**SD15_VAE).eval()


def run_arm(arm: str, size: int, threads: int) -> dict[str, float | str | int]:
    """Decode one `size` x `size` image with tiling on or off; returns peak memory and time."""
    from types import SimpleNamespace

    import torch

    from ideaforge.tools.diffusion.options import RunOptions, _vae_for_call

    torch.set_num_threads(threads)
    vae = _sd15_vae()
    latents = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator("cpu").manual_seed(0))
    state = _vae_for_call(SimpleNamespace(vae=vae), RunOptions(vae_tiling=arm == "tiled"), size, size)
    before = _rss_mib()
    started = time.perf_counter()
    with torch.no_grad():
        image = vae.decode(latents / vae.config.scaling_factor).sample
    seconds = time.perf_counter() - started
    peak = _rss_mib()
    assert tuple(image.shape) == (1, 3, size, size)
    return {
        "arm": arm,
        "vae_tiling": state["vae_tiling"],
        "size": size,
        "before_mib": round(before),
        "peak_mib": round(peak),
        "decode_mib": round(peak - before),
        "seconds": round(seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="square side in pixels (a multiple of 8)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)  # one arm, in a child process
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(run_arm(args.arm, args.size, args.threads)))
        return

    rows = []
    for arm in ARMS:
        child = subprocess.run(
            [sys.executable, __file__, "--arm", arm, "--size", str(args.size), "--threads", str(args.threads)],
            check=True,
            capture_output=True,
            text=True,
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
    untiled, tiled = rows
    print(f"SD 1.5-shaped VAE decode at {args.size}x{args.size}, {args.threads} threads, one fresh process per arm")
    print(f"{'arm':<9} {'peak RSS MiB':>12} {'decode MiB':>11} {'seconds':>8}")
    for row in rows:
        print(f"{row['arm']:<9} {row['peak_mib']:>12} {row['decode_mib']:>11} {row['seconds']:>8}")
    ratio = tiled["decode_mib"] / max(untiled["decode_mib"], 1)
    print(f"tiled / untiled decode memory: {ratio:.2f}x; time: {tiled['seconds'] / untiled['seconds']:.2f}x")
    print(json.dumps({"bench": "vae_tiling", "rows": rows, "decode_memory_ratio": round(ratio, 3)}))


if __name__ == "__main__":
    main()
