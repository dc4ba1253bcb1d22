"""Time of one CLIP critic call on the tiny random CLIP, with and without loading the model.

Not a test: run `python bench/bench_critic.py [--repeats N]` from the repository root. Prints medians in
milliseconds for 1 and 4 images of 64x64, scored against an idea and three elements, on the default device.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is local; never reach the Hub

IDEA = "a red kitten in a basket"
ELEMENTS = ["red kitten", "basket", "warm sunlight"]


def _images(n: int) -> list:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure (median reported)")
    args = parser.parse_args()

    import torch
    from tiny_clip import build_tiny_clip

    from ideaforge.tools.critic import CLIPCritic, clear_cache

    with tempfile.TemporaryDirectory() as tmp:
        model = str(build_tiny_clip(Path(tmp) / "tiny-clip"))
        warm = CLIPCritic(model).load()
        warm.score(_images(1), IDEA, ELEMENTS)  # first call pays one-off lazy initialisation
        print(f"device={warm.device} dtype={warm.dtype} torch={torch.__version__} repeats={args.repeats}")
        for n in (1, 4):
            images = _images(n)

            def cold(images=images) -> None:
                clear_cache()
                CLIPCritic(model).load().score(images, IDEA, ELEMENTS)

            hot = _median_ms(lambda images=images: warm.score(images, IDEA, ELEMENTS), args.repeats)
            with_load = _median_ms(cold, max(3, args.repeats // 4))
            print(f"{n} image(s) 64x64: score {hot:7.1f} ms (model loaded)   load+score {with_load:7.1f} ms")
        clear_cache()


if __name__ == "__main__":
    main()
