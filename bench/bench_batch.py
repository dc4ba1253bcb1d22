"""`ideaforge batch` throughput with the tiny model: batched versus one-by-one, then a 200-idea kill-and-resume run.

Not a test: run `python bench/bench_batch.py [--ideas N] [--repeats R] [--batch-size B] [--skip-kill]` from the
repository root. It prints:

1. Images per second of whole batch runs (prompt stage, generation, saving, manifest) with `--batch-size B` and
   with `--batch-size 1`, the two interleaved over R repetitions on the same N ideas into fresh folders, with the
   median of each and their ratio. The model is loaded before timing (once, as a batch does).
2. The same comparison for the pipeline alone (`DiffusionTool.generate` with B requests in one call versus B calls
   of one request).
3. Reading and planning a 10,000-row idea list with per-row options (`read_ideas` + `plan_jobs`): milliseconds in
   all and per row, the median of R repetitions; no model is loaded and the output folder is not touched.
4. A 200-idea batch from ../shared/ideas/public_ideas.tsv (tests/data/public_ideas.tsv when absent) run as a user
   runs it (`ideaforge batch` in a subprocess), killed with SIGKILL once 40% of the ideas are listed, at a
   moment when an image is on disk before its line (or at 60% if that moment is not caught), resumed, then
   checked file by file: every idea exactly once, every PNG readable and matching its line.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the tiny model is local; never reach the Hub


def idea_file() -> Path:
    shared = ROOT.parent / "shared" / "ideas" / "public_ideas.tsv"
    return shared if shared.is_file() else ROOT / "tests" / "data" / "public_ideas.tsv"


def sample(n: int) -> list[str]:
    """`n` ideas spread over the whole file (all categories), the hand-written multilingual ones included."""
    from ideaforge.app.batch.readers import read_ideas

    rows = [r.idea for r in read_ideas(idea_file()).rows]
    step = len(rows) / n
    return list(dict.fromkeys(rows[int(i * step)] for i in range(n)))


def write_tsv(path: Path, ideas: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerows([["idea"], *([idea] for idea in ideas)])
    return path


def whole_runs(model: str, ideas: list[str], batch_size: int, repeats: int, tmp: Path) -> None:
    from ideaforge import IdeaForge
    from ideaforge.app.batch.run import run_batch

    path = write_tsv(tmp / "ideas.tsv", ideas)
    rates: dict[int, list[float]] = {batch_size: [], 1: []}
    warm = IdeaForge(model=model, engine="rules", critique=False, steps=2, size="64x64", out=str(tmp / "warm"))
    run_batch(warm, write_tsv(tmp / "warm.tsv", ideas[:2]))  # load the model and the tokenizer once
    for rep in range(repeats):
        order = (batch_size, 1) if rep % 2 == 0 else (1, batch_size)  # interleaved, alternating first
        for size in order:
            out = tmp / f"run-{rep}-{size}"
            forge = IdeaForge(model=model, engine="rules", critique=False, steps=2, size="64x64", out=str(out))
            summary = run_batch(forge, path, batch_size=size)
            assert summary.ok and summary.images == len(ideas), summary.as_dict()
            rates[size].append(summary.images_per_second)
    fast, slow = statistics.median(rates[batch_size]), statistics.median(rates[1])
    print(f"whole batch runs, {len(ideas)} ideas, 64x64, 2 steps, {repeats} interleaved repetitions:")
    print(f"  --batch-size {batch_size}: {fast:6.1f} images/s (median; runs {_fmt(rates[batch_size])})")
    print(f"  --batch-size 1: {slow:6.1f} images/s (median; runs {_fmt(rates[1])})")
    print(f"  ratio {fast / slow:.2f}x")


def pipeline_only(model: str, batch_size: int, repeats: int) -> None:
    from ideaforge.tools.diffusion import DiffusionTool, GenerationParams, ImageRequest

    tool = DiffusionTool(model, device="cpu").load()
    tool.max_batch = batch_size
    params = GenerationParams(steps=2, width=64, height=64)
    requests = [ImageRequest(positive=f"a red kitten number {i}", negative="blurry", seed=i)
                for i in range(batch_size)]
    tool.generate(requests[:1], params)  # first call pays lazy initialisation
    batched: list[float] = []
    single: list[float] = []
    for rep in range(repeats):
        for mode in (("b", "s") if rep % 2 == 0 else ("s", "b")):
            start = time.perf_counter()
            if mode == "b":
                tool.generate(requests, params)
                batched.append(batch_size / (time.perf_counter() - start))
            else:
                for r in requests:
                    tool.generate([r], params)
                single.append(batch_size / (time.perf_counter() - start))
    fast, slow = statistics.median(batched), statistics.median(single)
    print(f"pipeline only, {batch_size} images of 64x64, 2 steps, {repeats} interleaved repetitions:")
    print(f"  one call of {batch_size}: {fast:6.1f} images/s   {batch_size} calls of 1: {slow:6.1f} images/s   "
          f"ratio {fast / slow:.2f}x")


def kill_and_resume(model: str, n: int, batch_size: int, tmp: Path) -> None:
    from test_batch import check_folder

    ideas = sample(n)
    path = write_tsv(tmp / "ideas200.tsv", ideas)
    out = tmp / "out200"
    args = [sys.executable, "-m", "ideaforge.app.cli", "batch", str(path), "--out", str(out), "--model", model,
            "--engine", "rules", "--no-critique", "--steps", "2", "--size", "64x64",
            "--batch-size", str(batch_size), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_"))}
    env["OMP_NUM_THREADS"] = "1"

    def listed() -> int:
        try:
            return len((out / "metadata.jsonl").read_bytes().splitlines())
        except FileNotFoundError:
            return 0

    start = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def images() -> int:
        return len(list(out.glob("*.png"))) if out.exists() else 0

    while proc.poll() is None and listed() < 0.4 * len(ideas):
        time.sleep(0.002)
    while proc.poll() is None and images() <= listed() < 0.6 * len(ideas):
        time.sleep(0.0005)
    at_kill = (listed(), images())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = time.perf_counter() - start
    start = time.perf_counter()
    resumed = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    second = time.perf_counter() - start
    if resumed.returncode != 0:
        raise SystemExit(f"the resumed run failed: {resumed.stderr[-2000:]}")
    summary = json.loads(resumed.stdout)
    manifest = check_folder(out, ideas)
    print(f"{len(ideas)}-idea batch from {idea_file()} (subprocess, --batch-size {batch_size}):")
    print(f"  killed with SIGKILL after {first:.1f} s: {at_kill[0]} lines listed, {at_kill[1]} PNGs on disk "
          f"(exit {proc.returncode})")
    rec = summary["recovered"]
    print(f"  resumed in {second:.1f} s (start-up and model load included): {summary['done_before']} done before, "
          f"{summary['done']} done now, {len(summary['failed'])} failed; {rec['adopted']} adopted, "
          f"{rec['removed']} removed, {rec['dropped_lines']} lines dropped, {rec['temp_files']} temp files; "
          f"{summary['images_per_second']:.1f} images/s")
    print(f"  checked: {len(manifest)} lines, {len(list(out.glob('*.png')))} PNGs, each idea once, "
          "every PNG readable with its record matching its line, no temporary file")


def planning(rows: int, repeats: int, tmp: Path) -> None:
    from ideaforge import IdeaForge
    from ideaforge.app.batch.plan import plan_jobs
    from ideaforge.app.batch.readers import read_ideas

    path = tmp / "plan.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["idea", "seed", "steps", "style", "negative", "n"])
        styles = ["", "watercolor", "Pixel Art", "anime"]
        writer.writerows([f"idea number {i}", i if i % 3 else "", 2 + i % 4, styles[i % 4], "blurry" if i % 5 == 0 else "",
                          1 + i % 2] for i in range(rows))
    forge = IdeaForge(model="unused", engine="rules", critique=False, out=str(tmp / "never-made"))
    read_ms, plan_ms = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        listing = read_ideas(path)
        t1 = time.perf_counter()
        jobs, _, _ = plan_jobs(forge, listing.rows)
        t2 = time.perf_counter()
        assert len(jobs) == rows and not listing.bad
        read_ms.append((t1 - t0) * 1000)
        plan_ms.append((t2 - t1) * 1000)
    read, plan = statistics.median(read_ms), statistics.median(plan_ms)
    print(f"reading and planning {rows} rows with options ({repeats} repetitions, medians):")
    print(f"  read_ideas (GenerateRequest per row): {read:7.1f} ms, {1000 * read / rows:6.1f} us/row")
    print(f"  plan_jobs: {plan:7.1f} ms, {1000 * plan / rows:6.1f} us/row")


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ideas", type=int, default=48, help="ideas per timed run")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per figure")
    parser.add_argument("--batch-size", type=int, default=8, help="images per pipeline call when batched")
    parser.add_argument("--skip-kill", action="store_true", help="skip the 200-idea kill-and-resume run")
    args = parser.parse_args()

    import torch
    from tiny_models import build_tiny_sd

    torch.set_num_threads(1)  # tiny models: extra threads only spin on a small machine
    print(f"torch={torch.__version__} threads={torch.get_num_threads()} cpus={os.cpu_count()}")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = str(build_tiny_sd(tmp / "tiny-sd"))
        whole_runs(model, sample(args.ideas), args.batch_size, args.repeats, tmp)
        pipeline_only(model, args.batch_size, args.repeats * 4)
        planning(10_000, args.repeats, tmp)
        if not args.skip_kill:
            kill_and_resume(model, 200, args.batch_size, tmp)


if __name__ == "__main__":
    main()
