"""`ideaforge eval`: do the optimized prompts and the critic help? Three arms, the same seeds, one CLIP judge.

Arms, per idea and seed:
- `raw`: the idea itself as the prompt, no negative prompt;
- `optimized`: the prompt engine's spec, one image;
- `critic`: the spec plus the critique-and-revise loop (its best round).

Every image is scored by the same CLIP critic against the idea's English form. The critic arm's score is the
best of its rounds, as a user of the loop would see it; the same critic choosing and judging favours that arm,
so compare it with care (a second, held-out CLIP model as judge is the stricter test: pass `judge`).
"""

from __future__ import annotations

import csv
import json
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.critics import is_checklist_critic, review
from ideaforge.agent.models import PromptSpec
from ideaforge.errors import InputError

ARMS = ("raw", "optimized", "critic")


@dataclass
class EvalRow:
    idea: str
    category: str
    seed: int
    arm: str
    score: float | None
    seconds: float
    image: str | None
    error: str | None = None
    checks: float | None = None  # share of the idea's checks the image passed (checklist critics)


@dataclass
class EvalReport:
    rows: list[EvalRow] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


def bootstrap_ci(values: list[float], *, samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap confidence interval of the mean.

    Example:
        >>> low, high = bootstrap_ci([20.0, 30.0, 25.0, 22.0])
        >>> low <= 24.25 <= high
        True
    """
    if not values:
        return (float("nan"), float("nan"))
    if len(values) == 1:
        return (values[0], values[0])
    rng = random.Random(seed)
    means = sorted(statistics.fmean(rng.choices(values, k=len(values))) for _ in range(samples))
    return (means[int(0.025 * samples)], means[int(0.975 * samples) - 1])


def _categories(path: Path) -> dict[int, str]:
    """Line number -> category, for tables with a category column (PartiPrompts has `Category`)."""
    if path.suffix.lower() not in (".tsv", ".csv"):
        return {}
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
        column = next((c for c in reader.fieldnames or [] if c.strip().lower() == "category"), None)
        if column is None:
            return {}
        return {i + 2: (row.get(column) or "").strip() for i, row in enumerate(reader)}


def evaluate(
    forge: Any,
    ideas_file: str | Path,
    *,
    out: str | Path,
    limit: int | None = None,
    seeds: int = 1,
    first_seed: int = 0,
    judge: Any = None,
    progress: Callable[[str], None] = lambda msg: None,
    **overrides: Any,
) -> EvalReport:
    """Run the three arms over an idea file and write `eval.csv`, `eval.md` and `eval.png` into `out`."""
    from ideaforge.app.batch.readers import read_ideas

    if seeds < 1:
        raise InputError(f"seeds {seeds!r} is invalid; use 1 or more")
    if limit is not None and limit < 1:
        raise InputError(f"limit {limit!r} is invalid; use 1 or more")
    ideas = read_ideas(ideas_file)
    cats = _categories(Path(ideas_file))
    rows = ideas.rows[:limit] if limit else ideas.rows
    out = Path(out)
    forge.check(**{k: v for k, v in overrides.items()}, out=str(out / "images"))
    judge = judge or forge.scorer
    report = EvalReport()
    for r_index, row in enumerate(rows):
        category = cats.get(row.line, "")
        spec = forge.optimize(row.idea)
        raw = PromptSpec(
            idea=row.idea, idea_en=spec.idea_en, positive=row.idea, negative="", elements=spec.elements,
            language=spec.language, engine="raw",
        )
        for k in range(seeds):
            seed = first_seed + k
            for arm in ARMS:
                progress(f"[{r_index + 1}/{len(rows)}] seed {seed} {arm}: {row.idea[:60]}")
                t0 = time.perf_counter()
                try:
                    result = forge.run(
                        row.idea, spec=raw if arm == "raw" else spec, seed=seed, critique=(arm == "critic"),
                        out=str(out / "images" / arm), **overrides,
                    )
                    path = result.best_image_path
                    score = checks = None
                    if path:
                        score, checks = _judge(judge, path, spec)
                    report.rows.append(EvalRow(row.idea, category, seed, arm, score, time.perf_counter() - t0, path,
                                               checks=checks))
                except Exception as exc:  # one idea's failure is a data point, not the end of the evaluation
                    report.rows.append(EvalRow(row.idea, category, seed, arm, None, time.perf_counter() - t0, None,
                                               f"{type(exc).__name__}: {exc}"))
    report.summary = summarize(report.rows)
    report.files = write_report(report, out)
    return report


def _judge(judge: Any, path: str, spec: PromptSpec) -> tuple[float | None, float | None]:
    """(score, share of checks passed) of one image: a checklist critic's quality and alignment, or CLIP's score."""
    if not is_checklist_critic(judge):
        return judge.score([path], spec.idea_en, spec.elements)[0].idea, None
    from PIL import Image

    with Image.open(path) as im:
        image = im.convert("RGB")
    [r] = review(judge, [image], spec)
    return r.quality, r.alignment


def summarize(rows: list[EvalRow]) -> dict[str, Any]:
    ok = [r for r in rows if r.score is not None]
    arms: dict[str, Any] = {}
    for arm in ARMS:
        vals = [r.score for r in ok if r.arm == arm]
        secs = [r.seconds for r in rows if r.arm == arm]
        lo, hi = bootstrap_ci(vals)  # type: ignore[arg-type]
        arms[arm] = {
            "n": len(vals),
            "mean": statistics.fmean(vals) if vals else None,  # type: ignore[arg-type]
            "ci95": [lo, hi],
            "seconds_mean": statistics.fmean(secs) if secs else None,
            "failed": sum(1 for r in rows if r.arm == arm and r.score is None),
        }
        shares = [r.checks for r in rows if r.arm == arm and r.checks is not None]
        if shares:
            arms[arm]["checks_mean"] = statistics.fmean(shares)
            arms[arm]["checks_ci95"] = list(bootstrap_ci(shares))
    by_key: dict[tuple[str, int], dict[str, float]] = {}
    for r in ok:
        by_key.setdefault((r.idea, r.seed), {})[r.arm] = r.score  # type: ignore[assignment]
    wins = {}
    for a in ARMS:
        for b in ARMS:
            if a < b:
                pairs = [(v[a], v[b]) for v in by_key.values() if a in v and b in v]
                if pairs:
                    wins[f"{a} vs {b}"] = {
                        a: sum(x > y for x, y in pairs) / len(pairs),
                        b: sum(y > x for x, y in pairs) / len(pairs),
                        "ties": sum(x == y for x, y in pairs) / len(pairs),
                        "pairs": len(pairs),
                    }
    categories: dict[str, dict[str, float | None]] = {}
    for cat in sorted({r.category for r in ok if r.category}):
        categories[cat] = {}
        for arm in ARMS:
            scores = [r.score for r in ok if r.category == cat and r.arm == arm and r.score is not None]
            categories[cat][arm] = statistics.fmean(scores) if scores else None
    return {"arms": arms, "wins": wins, "categories": categories}


def write_report(report: EvalReport, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path, png_path, json_path = out / "eval.csv", out / "eval.md", out / "eval.png", out / "eval.json"
    with csv_path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["idea", "category", "seed", "arm", "score", "seconds", "image", "error", "checks_passed"])
        for r in report.rows:
            w.writerow([r.idea, r.category, r.seed, r.arm, "" if r.score is None else f"{r.score:.4f}",
                        f"{r.seconds:.3f}", r.image or "", r.error or "",
                        "" if r.checks is None else f"{r.checks:.4f}"])
    s = report.summary
    lines = ["| arm | images | mean CLIP score | 95% CI | mean seconds | failed |", "|---|---|---|---|---|---|"]
    for arm, a in s["arms"].items():
        mean = "n/a" if a["mean"] is None else f"{a['mean']:.2f}"
        ci = "n/a" if a["mean"] is None else f"{a['ci95'][0]:.2f} – {a['ci95'][1]:.2f}"
        secs = "n/a" if a["seconds_mean"] is None else f"{a['seconds_mean']:.2f}"
        lines.append(f"| {arm} | {a['n']} | {mean} | {ci} | {secs} | {a['failed']} |")
    if any("checks_mean" in a for a in s["arms"].values()):
        lines += ["", "| arm | share of checks passed | 95% CI |", "|---|---|---|"]
        for arm, a in s["arms"].items():
            if "checks_mean" in a:
                lo, hi = a["checks_ci95"]
                lines.append(f"| {arm} | {a['checks_mean']:.3f} | {lo:.3f} – {hi:.3f} |")
    if s["wins"]:
        lines += ["", "| pair | first wins | second wins | ties | pairs |", "|---|---|---|---|---|"]
        for pair, w in s["wins"].items():
            a, b = pair.split(" vs ")
            lines.append(f"| {pair} | {w[a]:.0%} | {w[b]:.0%} | {w['ties']:.0%} | {w['pairs']} |")
    if s["categories"]:
        lines += ["", "| category | " + " | ".join(ARMS) + " |", "|---" * (len(ARMS) + 1) + "|"]
        for cat, v in s["categories"].items():
            lines.append(f"| {cat} | " + " | ".join("n/a" if v[a] is None else f"{v[a]:.2f}" for a in ARMS) + " |")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    json_path.write_text(json.dumps(s, indent=2), encoding="utf-8")
    _chart(s, png_path)
    return {"csv": str(csv_path), "markdown": str(md_path), "chart": str(png_path), "json": str(json_path)}


def _chart(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in ARMS if summary["arms"][a]["mean"] is not None]
    means = [summary["arms"][a]["mean"] for a in arms]
    lo = [m - summary["arms"][a]["ci95"][0] for a, m in zip(arms, means)]
    hi = [summary["arms"][a]["ci95"][1] - m for a, m in zip(arms, means)]
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.bar(arms, means, yerr=[lo, hi], capsize=6, color=["#9aa5b1", "#4c9be8", "#2f6fb5"][: len(arms)])
    ax.set_ylabel("mean CLIP score (95% CI)")
    ax.set_title("ideaforge eval: raw vs optimized vs critic")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
