"""Run every benchmark and write BENCHMARKS.md: `python bench/run_all.py` (or `make bench`).

Builds the random-weight models once (bench/models.py: the tiny test models, an SD 1.5-shaped pipeline and a
CLIP ViT-B/32-shaped critic; about 4.6 GiB on disk, in a temporary folder unless --models is given), then runs
each benchmark in its own fresh process with the same settings, collects their JSON results and printed reports,
and writes one Markdown file with the machine described. Each benchmark can also be run alone; the commands are
in the file it writes.

Options:
    --threads N      torch intra-op threads for every model benchmark (default 1, see BENCHMARKS.md)
    --models DIR     build or reuse the models here (kept afterwards)
    --quick          fewer repetitions (a smoke run; the figures are then rough)
    --no-sd15        skip the SD 1.5-shaped parts (the tiny models only)
    --out FILE       where to write (default: BENCHMARKS.md at the repository root)
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

HERE = Path(__file__).resolve().parent
PY = "python"  # how the commands are shown in the report (they run with sys.executable)


class Step:
    """One benchmark run: its command, the JSON it wrote, its printed report, its wall time."""

    def __init__(self, name: str, script: str, args: list[str], *, json_out: bool = True) -> None:
        self.name, self.script, self.args, self.json_out = name, script, args, json_out
        self.result: dict[str, Any] | None = None
        self.text = ""
        self.seconds = 0.0
        self.error: str | None = None

    def shown(self, models: Path | None) -> str:
        text = " ".join([PY, f"bench/{self.script}", *self.args])
        return text.replace(str(models), "$MODELS") if models else text

    def run(self, work: Path) -> None:
        cmd = [sys.executable, str(HERE / self.script), *self.args]
        out = work / f"{self.name}.json"
        if self.json_out:
            cmd += ["--json", str(out)]
        print(f"\n== {self.name}: {' '.join(cmd[1:])}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=_common.ROOT, capture_output=True, text=True, check=False)
        self.seconds = time.perf_counter() - started
        self.text = _clean(done.stdout)
        print(self.text, flush=True)
        if done.returncode != 0:
            self.error = f"exit {done.returncode}: {done.stderr.strip()[-1500:]}"
            print(self.error, file=sys.stderr, flush=True)
        elif self.json_out:
            self.result = json.loads(out.read_text(encoding="utf-8"))


def _clean(text: str) -> str:
    """The report without progress-bar debris, and temporary paths shortened."""
    lines = [line for line in text.splitlines() if "it/s]" not in line and "s/it]" not in line]
    text = "\n".join(lines).strip()
    return re.sub(r"/tmp/[\w.\-/]*?/(tiny-sd|tiny-clip|sd15-shaped|clip-b32-shaped)", r"$MODELS/\1", text)


def _f(value: Any, spec: str, default: str = "n/a") -> str:
    return default if value is None else format(value, spec)


def _goal(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**missed**")


def parse_batch(text: str) -> dict[str, Any]:
    """Headline figures from bench/bench_batch.py's printed report (it writes no JSON)."""
    found: dict[str, Any] = {}
    m = re.search(
        r"--batch-size (\d+):\s+([\d.]+) images/s.*?\n\s+--batch-size 1:\s+([\d.]+) images/s.*?\n\s+ratio "
        r"([\d.]+)x",
        text,
    )
    if m:
        found["whole"] = {
            "batch": int(m[1]),
            "batched": float(m[2]),
            "single": float(m[3]),
            "ratio": float(m[4]),
        }
    m = re.search(r"whole batch runs, (\d+) ideas", text)
    if m:
        found["ideas"] = int(m[1])
    m = re.search(
        r"one call of (\d+):\s+([\d.]+) images/s\s+\d+ calls of 1:\s+([\d.]+) images/s\s+ratio ([\d.]+)x",
        text,
    )
    if m:
        found["pipeline"] = {
            "batch": int(m[1]),
            "batched": float(m[2]),
            "single": float(m[3]),
            "ratio": float(m[4]),
        }
    return found


def code_state() -> dict[str, Any]:
    """The commit measured and the product files that differed from it (others may edit the tree meanwhile)."""
    import hashlib

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=_common.ROOT, capture_output=True, text=True, check=False)
        return done.stdout

    paths = ("__init__.py", "errors.py", "agent", "tools", "prompts", "app", "pyproject.toml")
    changed = [line[3:] for line in git("status", "--porcelain", "--", *paths).splitlines() if line.strip()]
    digest = hashlib.sha256(git("diff", "HEAD", "--", *paths).encode())
    for name in changed:  # untracked files are not in the diff: hash their contents too
        path = _common.ROOT / name
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            if file.is_file():
                digest.update(file.read_bytes())
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "subject": git("log", "-1", "--format=%s").strip(),
        "changed": changed,
        "digest": digest.hexdigest(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", help="build or reuse the models in this folder (kept)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-sd15", action="store_true")
    parser.add_argument("--out", default=str(_common.ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()

    started = time.perf_counter()
    when = datetime.datetime.now().astimezone()
    load_start = _common.loadavg()
    code_start = code_state()
    work = Path(tempfile.mkdtemp(prefix="ideaforge-run-all-"))
    models_dir = Path(args.models) if args.models else work / "models"
    names = (
        ("tiny-sd", "tiny-clip")
        if args.no_sd15
        else ("tiny-sd", "tiny-clip", "sd15-shaped", "clip-b32-shaped")
    )
    print(f"building models in {models_dir} ...", flush=True)
    t0 = time.perf_counter()
    build = subprocess.run(
        [sys.executable, str(HERE / "models.py"), str(models_dir), "--only", *names],
        cwd=_common.ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if build.returncode != 0:
        raise SystemExit(f"building the models failed:\n{build.stderr[-3000:]}")
    build_s = time.perf_counter() - t0
    m = {name: str(models_dir / name) for name in names}
    q = args.quick
    th = ["--threads", str(args.threads)]
    sd = ["--model", m.get("sd15-shaped", ""), "--scheduler", "pndm", "--steps", "2", "--size", "64"]
    steps = [
        Step("startup", "bench_startup.py", ["--repeats", "5" if q else "10"]),
        Step("engines", "bench_engines.py", ["--limit", "150"] if q else []),
        Step(
            "overhead_tiny",
            "bench_overhead.py",
            ["--model", m["tiny-sd"], "--repeats", "10" if q else "30", *th],
        ),
        Step(
            "critic_tiny",
            "bench_critic_share.py",
            ["--model", m["tiny-sd"], "--clip-model", m["tiny-clip"], "--repeats", "8" if q else "20", *th],
        ),
        Step(
            "cold_warm_tiny",
            "bench_cold_warm.py",
            [
                "--model",
                m["tiny-sd"],
                "--clip-model",
                m["tiny-clip"],
                "--processes",
                "2" if q else "5",
                "--warm",
                "4",
                *th,
            ],
        ),
    ]
    if not args.no_sd15:
        steps += [
            Step("overhead_sd15", "bench_overhead.py", [*sd, "--repeats", "2" if q else "5", *th]),
            Step(
                "critic_sd15",
                "bench_critic_share.py",
                [*sd, "--clip-model", m["clip-b32-shaped"], "--repeats", "2" if q else "4", *th],
            ),
            Step(
                "cold_warm_sd15",
                "bench_cold_warm.py",
                [
                    *sd,
                    "--clip-model",
                    m["clip-b32-shaped"],
                    "--processes",
                    "2" if q else "3",
                    "--warm",
                    "2",
                    *th,
                ],
            ),
        ]
    batch_script = HERE / "bench_batch.py"
    if batch_script.is_file():
        steps.append(Step("batch", "bench_batch.py", ["--repeats", "3"] if q else [], json_out=False))
    for step in steps:
        step.run(work)
    total_s = time.perf_counter() - started
    by = {s.name: s for s in steps}
    if "batch" in by:
        by["batch"].result = parse_batch(by["batch"].text) if not by["batch"].error else None

    doc = render(
        args, when, load_start, _common.loadavg(), build_s, total_s, by, models_dir, batch_script.is_file()
    )
    code_end = code_state()
    doc = doc.replace("<!-- code -->", describe_code(code_start, code_end))
    out = Path(args.out)
    kept = _kept_sections(out.read_text(encoding="utf-8") if out.is_file() else "")
    out.write_text(doc.rstrip() + ("\n\n" + kept if kept else "") + "\n", encoding="utf-8")
    print(f"\nwrote {args.out} in {total_s:.0f} s", flush=True)
    shutil.rmtree(
        work, ignore_errors=True
    )  # the JSON files, and the models unless --models kept them elsewhere
    failed = [s.name for s in steps if s.error]
    if failed:
        raise SystemExit(f"these benchmarks failed: {', '.join(failed)}")


def _kept_sections(old: str) -> str:
    """Sections other scripts write into BENCHMARKS.md (bench_local_llm.py's needs a server build; bench_checklist.py
    writes its own): kept as they are."""
    kept = []
    for name in ("local-llm", "checklist", "repair", "families", "serve", "vae-tiling", "tool-bare-families"):
        start, end = old.find(f"<!-- {name}"), old.find(f"<!-- /{name} -->")
        if start >= 0 and end > start:
            kept.append(old[start : end + len(f"<!-- /{name} -->")])
    return "\n\n".join(kept)


def describe_code(start: dict[str, Any], end: dict[str, Any]) -> str:
    text = f"- Code: commit `{start['commit']}` ({start['subject']})"
    if start["changed"]:
        text += "; product files not yet committed, measured as they were: " + ", ".join(
            f"`{name}`" for name in start["changed"]
        )
    text += "."
    same = all(start[k] == end[k] for k in ("commit", "changed", "digest"))
    if not same:
        text += (
            f" **The product code changed while the benchmarks ran** (commit `{end['commit']}` at the end): "
            "sections run before and after the change measured different code."
        )
    return text


def render(
    args: argparse.Namespace,
    when: datetime.datetime,
    load_start: list[float],
    load_end: list[float],
    build_s: float,
    total_s: float,
    by: dict[str, Step],
    models: Path,
    have_batch: bool,
) -> str:
    info = _common.machine()
    v = info["versions"]
    r = {name: step.result for name, step in by.items()}
    out: list[str] = []
    w = out.append
    w("# Benchmarks\n")
    w(
        f"Written by `python bench/run_all.py{' --quick' if args.quick else ''}` (also `make bench`) on "
        f"{when:%Y-%m-%d %H:%M %Z}, in {total_s / 60:.1f} minutes (model building {build_s:.0f} s). Every figure "
        "below was produced by the scripts in `bench/` in that run; nothing is edited by hand. Each benchmark compares "
        "two things in the same run, interleaved (A, B, B, A, ...), and reports medians and their ratio; "
        '"paired" is the median of the per-repetition ratios, which is steadier when the machine\'s load drifts.\n'
    )
    w("## Machine\n")
    w(
        f"- CPU: {info['cpu']}, {info['cores']} cores; RAM {info['ram_gib']} GiB; {info['os']}; no GPU (all figures "
        "are CPU, float32)."
    )
    w(
        f"- Python {v.get('python')}, torch {v.get('torch')}, diffusers {v.get('diffusers')}, transformers "
        f"{v.get('transformers')}, langchain-core {v.get('langchain-core')}, langchain-openai "
        f"{v.get('langchain-openai')}, Pillow {v.get('pillow')}."
    )
    w("<!-- code -->")
    w(
        f"- torch intra-op threads: {args.threads} in every model benchmark (`torch.set_num_threads`; the cold-start "
        "children get `OMP_NUM_THREADS`). This machine has two cores shared with other jobs (test suites of other "
        "work ran at the same time); with one thread a busy neighbour slows a call down but cannot stall an "
        "OpenMP barrier, which with two threads made the same SD 1.5-shaped call several times slower from one "
        "call to the next in trial runs. "
        "`bench_batch.py` sets one thread itself. Re-run with `--threads 2` on a quiet machine for its other core."
    )
    seen = [load_start[:1], load_end[:1]]
    seen += [res.get(k, [])[:1] for res in r.values() if res for k in ("loadavg_before", "loadavg_after")]
    busy = max([x for one in seen for x in one] + [0.0])
    w(
        f"- Load average (1, 5, 15 min) at the start {load_start}, at the end {load_end}, highest 1-minute value "
        f"seen {busy}; each section gives its own. Absolute times of the same work differ between sections run "
        "minutes apart (compare an SD 1.5-shaped generation in sections 1, 3 and 6): compare within a section."
        + (
            " The 1-minute load average exceeded 1 during the run, so other processes shared the two cores "
            "for part of it; the interleaving and the paired ratios keep the comparisons fair."
            if busy > 1
            else ""
        )
    )
    w(
        "- Models: random weights built from configs by `bench/models.py` (never a Hub id): the tiny test pipeline "
        "and CLIP from `tests/`; **SD 1.5-shaped**: UNet with SD 1.5's exact config (859.5 M parameters), SD 1.5's "
        "VAE (83.7 M) and CLIP ViT-L/14 text encoder (123.1 M), real CLIP tokenizer, PNDM scheduler, saved as "
        "diffusers safetensors and loaded through `IdeaForge(model=DIR)`; **CLIP B/32-shaped** critic: "
        "`openai/clip-vit-base-patch32`'s architecture (151 M) and 224x224 processor. The SD 1.5-shaped runs use "
        "64x64 images, 2 steps, guidance 7.5.\n"
    )

    w("## Summary\n")
    w("| # | Benchmark | A | B | A/B | Goal |")
    w("|---|---|---|---|---|---|")
    o_t, o_s = r.get("overhead_tiny"), r.get("overhead_sd15")
    if o_t:
        w(
            f"| 1a | Overhead, tiny pipeline: `IdeaForge.run` (rules, no critic) vs bare `pipe(...)` | "
            f"{o_t['a_median'] * 1000:.1f} ms | {o_t['b_median'] * 1000:.1f} ms | {o_t['ratio']:.3f} "
            f"(paired {o_t['paired_ratio']:.3f}) | none (overhead {o_t['overhead_ms']:+.1f} ms) |"
        )
    if o_s:
        w(
            f"| 1b | Overhead, SD 1.5-shaped pipeline, 64x64 | {o_s['a_median']:.3f} s | {o_s['b_median']:.3f} s | "
            f"{o_s['ratio']:.3f} (paired {o_s['paired_ratio']:.3f}) | <= 1.05: "
            f"{_goal(o_s['ratio'] <= 1.05 and o_s['paired_ratio'] <= 1.05)} |"
        )
    b = r.get("batch") or {}
    if b.get("whole"):
        x = b["whole"]
        w(
            f"| 2 | Batching: {b.get('ideas', '?')} ideas, `--batch-size {x['batch']}` vs `--batch-size 1` (tiny) | "
            f"{x['batched']:.1f} images/s | {x['single']:.1f} images/s | {x['ratio']:.2f} | none |"
        )
    if b.get("pipeline"):
        x = b["pipeline"]
        w(
            f"| 2 | Batching, pipeline only: one call of {x['batch']} vs {x['batch']} calls of 1 (tiny) | "
            f"{x['batched']:.1f} images/s | {x['single']:.1f} images/s | {x['ratio']:.2f} | none |"
        )
    for key, label in (
        ("cold_warm_tiny", "tiny SD + tiny CLIP"),
        ("cold_warm_sd15", "SD 1.5-shaped + CLIP B/32-shaped"),
    ):
        c = r.get(key)
        if c:
            w(
                f"| 3 | Cold vs warm, {label}: first call in a process vs later calls | {c['first_median_s']:.2f} s | "
                f"{c['warm_median_s']:.3f} s | {c['ratio']:.1f} | no reload: {_goal(c['no_reload'])} |"
            )
    s = r.get("startup")
    if s:
        floor = s["commands"]["python -c 'pass'"]["median_s"]
        for name in ("ideaforge --help", "python -c 'import ideaforge'"):
            row = s["commands"][name]
            torch_free = "torch" not in (row["heavy_imports"] or [])
            w(
                f"| 4 | Start-up: `{name}` vs `python -c 'pass'` | {row['median_s']:.3f} s | {floor:.3f} s | "
                f"{row['ratio_to_floor']:.1f} | < 0.5 s: {_goal(row['meets_goal'])}; no torch: {_goal(torch_free)} |"
            )
    e = r.get("engines")
    if e:
        ru, op = e["engines"]["rules"], e["engines"]["openai"]
        w(
            f"| 5 | Prompt engines, {e['ideas']} ideas: `openai` (loopback canned server) vs `rules`, median latency | "
            f"{op['latency_median_ms']:.2f} ms | {ru['latency_median_ms']:.2f} ms | "
            f"{e['latency_ratio_openai_to_rules']:.1f} | none |"
        )
    for key, label in (
        ("critic_tiny", "tiny SD + tiny CLIP"),
        ("critic_sd15", "SD 1.5-shaped + CLIP B/32-shaped"),
    ):
        c = r.get(key)
        if c:
            w(
                f"| 6 | Critic, {label}: round with critic vs without | {_secs(c['a_median'])} | "
                f"{_secs(c['b_median'])} | {c['ratio']:.3f} | none (critic {c['critic_share_of_call']:.1%} of the "
                "call) |"
            )
    w("")

    w("## 1. Overhead over bare diffusers\n")
    w(
        'A: `IdeaForge(model=DIR, engine="rules", critique=False, steps=..., size=...).run(idea, seed=7)`: the rules '
        "prompt engine, validation, `DiffusionTool.generate` (step callback with latent previews, token-count "
        "warnings, the pipeline lock) and saving the PNG with its A1111 and JSON records (fsynced). B: "
        "`pipe(prompt=spec.positive, negative_prompt=spec.negative, num_inference_steps, guidance_scale, width, "
        'height, generator=torch.Generator("cpu").manual_seed(7))` on the very pipeline object A uses, so only the '
        'code around the model differs. Both warmed up first; "same pixels" checks they computed the same image.\n'
    )
    for key, label in (
        ("overhead_tiny", "Tiny test pipeline, 64x64, 2 steps"),
        ("overhead_sd15", "SD 1.5-shaped pipeline, 64x64, 2 steps"),
    ):
        if key in by:
            _section(w, by[key], label, models)
    for o, label in ((o_t, "tiny"), (o_s, "SD 1.5-shaped")):
        if o:
            w(
                f"Where A's extra time went on the {label} pipeline (medians): rules engine "
                f"{o['forge_prompt_median_ms']:.1f} ms; `DiffusionTool.generate` over the bare call "
                f"{o['tool_over_bare_ms']:+.1f} ms; validation, the PNG and its records {o['forge_rest_median_ms']:.1f} ms, "
                f"of which looking up the package versions the records carry took {o['version_lookups_ms']:.1f} ms."
            )
    w("")
    if o_s:
        spread = 1000 * (max(o_s["bare"]) - min(o_s["bare"]))
        within = abs(o_s["overhead_ms"]) <= spread
        w(
            "Apart from writing a larger PNG the extra work does not grow with the image, and apart from the step "
            "callback it does not grow with the steps, while the model's time grows with both; so at 2 steps and "
            "64x64, where the model's share is smallest, the SD 1.5-shaped ratio is close to the highest a real run "
            "would show. "
            f"Here the difference of the medians ({o_s['overhead_ms']:+.1f} ms) is "
            + ("within" if within else "larger than")
            + f" the spread of the bare call's own repeats ({spread:.1f} ms).\n"
        )

    w("## 2. Batching\n")
    if have_batch and "batch" in by:
        w(
            "`bench/bench_batch.py` (shared with the batch command's work): whole `ideaforge batch` runs on the same "
            "ideas with `--batch-size 8` versus `--batch-size 1`, interleaved, images per second; then the pipeline "
            "alone; then a 200-idea kill-and-resume check. Tiny models, 64x64, 2 steps, one torch thread.\n"
        )
        _section(w, by["batch"], None, models)
    else:
        w("`bench/bench_batch.py` was not present when this file was written.\n")

    w("## 3. Cold versus warm\n")
    w(
        "Fresh processes (`bench_cold_warm.py` starts each one itself): the first `IdeaForge.run` pays for importing "
        "torch/diffusers/transformers and loading the models; later calls must not. Inside each process the loaders "
        "(`ideaforge.tools.diffusion._load_pipeline`, `ideaforge.tools.critic._load`) are wrapped to count and time real loads, and the "
        "pipeline and CLIP objects are compared by identity across calls and with a second `IdeaForge` of the same "
        "settings. The models are in the page cache (just built), so this is a cold process, not a cold disk; "
        '"pipeline load" includes importing diffusers\' pipeline classes, which happens inside it.\n'
    )
    for key, label in (
        ("cold_warm_tiny", "Tiny SD + tiny CLIP, generation and one critic round"),
        ("cold_warm_sd15", "SD 1.5-shaped + CLIP B/32-shaped, generation and one critic round"),
    ):
        if key in by:
            _section(w, by[key], label, models)
    c = r.get("cold_warm_tiny")
    if c:
        w(
            "A second `IdeaForge` in a process that already holds the models loads nothing (the loaders' counts "
            "stay at one), but its first call is slower than a warm one: it makes a `copy.deepcopy` of the "
            f"model's CLIP tokenizer for counting prompt tokens ({c['tokenizer_deepcopy_median_s']:.3f} s here).\n"
        )

    w("## 4. Start-up\n")
    w(
        "Fresh subprocesses, interleaved: the installed `ideaforge` console script with `--help`, "
        '`python -c "import ideaforge"`, and `python -c "pass"` as the floor (the interpreter alone). Then each of the '
        "first two once more under `python -X importtime`, whose module list is checked for torch, diffusers, "
        "transformers, langchain, streamlit, numpy and PIL.\n"
    )
    if "startup" in by:
        _section(w, by["startup"], None, models)

    w("## 5. Prompt engines\n")
    w(
        "Every idea of `../shared/ideas/public_ideas.tsv` (1,224 PartiPrompts prompts and 18 hand-written "
        "multilingual ideas), engines alternating idea by idea. Columns: median and p95 latency of "
        "`PromptChain.optimize`; share of specs whose positive and negative are both within 77 CLIP tokens (counted "
        "with `ideaforge.tools.clip_tokenizer`); contradictions (specs whose negative holds a content word of the idea, by "
        "stem); content-word recall (share of the idea's content words kept in the positive); added descriptive terms "
        "(positive terms sharing no content word with the idea, per prompt); median token counts.\n"
    )
    w(
        "**What the `openai` row is and is not.** No LLM is reachable here. The row runs the real chain "
        "(`ChatOpenAI.with_structured_output`, the repair round, `finalize`) against the loopback `FakeOpenAI` server "
        "from the tests, which answers at once with a canned reply: the idea echoed, a fixed list of quality terms "
        "(long enough to overflow the budget for long ideas) and a negative that names the idea's first content word. "
        "So its latency is the chain's client, HTTP and parsing overhead, and its prompt columns show what `finalize` "
        "enforces on any LLM reply (the budget; no idea word in the negative), not what a real LLM would write. "
        "Ideas in a non-Latin script are echoed untranslated; the chain's English check rejects that, asks once "
        "more, then falls back to `rules`. The `raw` row is the idea itself as the prompt, for reference.\n"
    )
    if "engines" in by:
        _section(w, by["engines"], None, models)
        if e:
            ru = e["engines"]["rules"]
            w(
                f"`rules` keeps every content word of the idea in {e['ideas'] - ru['ideas_recall_below_1']} of "
                f"{e['ideas']} ideas, adds {ru['added_terms_mean']:.1f} descriptive terms per prompt, stays within "
                f"the budget for {ru['within_budget_share']:.1%} of them and put no idea word in a negative "
                f"({ru['contradictions']} contradictions). Its untranslated non-English ideas count as recalled, "
                "since the words are kept as written.\n"
            )

    w("## 6. The critic's share of a round\n")
    w(
        "One `IdeaForge`, models loaded first; A: `run(idea, seed=7, critique=True, max_attempts=1)` (one round: "
        "prompt, generation, CLIP scoring of the image against the idea and each element, saving); B: the same with "
        "`critique=False`. The critic's share comes from the attempt's own timings (`Attempt.seconds[\"critic\"]`) "
        "over the call's wall time.\n"
    )
    for key, label in (
        ("critic_tiny", "Tiny SD + tiny CLIP"),
        ("critic_sd15", "SD 1.5-shaped + CLIP B/32-shaped"),
    ):
        if key in by:
            _section(w, by[key], label, models)

    w("## Re-running\n")
    w("```bash")
    w(
        "make bench                                  # = .venv/bin/python bench/run_all.py: every benchmark, this file"
    )
    w(
        "python bench/run_all.py --threads 2 --models /tmp/ifb   # two torch threads; keep the models for next time"
    )
    w("MODELS=/tmp/ifb; python bench/models.py $MODELS          # the models alone, for the commands below")
    for step in by.values():
        w(step.shown(models))
    w("```")
    return "\n".join(out) + "\n"


def _secs(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def _section(w: Any, step: Step, label: str | None, models: Path) -> None:
    if label:
        w(f"**{label}**" + (f" — {step.seconds:.0f} s" if step.seconds else "") + "\n")
    if step.error:
        w(
            f"This benchmark failed: `{step.error.splitlines()[-1] if step.error.splitlines() else step.error}`\n"
        )
    w("```")
    w(step.text.replace(str(models), "$MODELS") if step.text else "(no output)")
    w("```")
    w(f"Command: `{step.shown(models)}`\n")


if __name__ == "__main__":
    main()
