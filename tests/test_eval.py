"""`ideaforge eval` end to end on the tiny models: the numbers mean nothing here, the plumbing is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ideaforge.app.evaluate import EvalRow, bootstrap_ci, summarize


def test_eval_runs_three_arms_and_writes_csv_markdown_and_chart(tiny_sd_dir, tiny_clip_dir, tmp_path) -> None:
    ideas = tmp_path / "ideas.tsv"
    ideas.write_text("Prompt\tCategory\na red kitten in a basket\tAnimals\ncozy cabin at night\tOutdoor Scenes\n"
                     "a blue bicycle\tVehicles\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    out = subprocess.run(
        [sys.executable, "-m", "ideaforge.app.cli", "eval", str(ideas), "--model", str(tiny_sd_dir), "--clip-model",
         str(tiny_clip_dir), "--steps", "2", "--size", "64x64", "--limit", "2", "--seeds", "2", "--max-attempts", "2",
         "--out", str(tmp_path / "eval"), "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    arms = data["summary"]["arms"]
    assert {a: arms[a]["n"] for a in arms} == {"raw": 4, "optimized": 4, "critic": 4}
    for a in arms.values():
        assert a["ci95"][0] <= a["mean"] <= a["ci95"][1]
    assert set(data["summary"]["categories"]) == {"Animals", "Outdoor Scenes"}
    rows = (tmp_path / "eval" / "eval.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 2 * 2 * 3
    markdown = (tmp_path / "eval" / "eval.md").read_text(encoding="utf-8")
    assert "| critic |" in markdown and "| arm | share of checks passed | 95% CI |" in markdown
    for a in arms.values():  # the checklist critic judged every image: a share of checks with its interval
        assert 0 <= a["checks_ci95"][0] <= a["checks_mean"] <= a["checks_ci95"][1] <= 1
    from PIL import Image

    with Image.open(data["files"]["chart"]) as chart:
        assert chart.format == "PNG" and chart.size[0] > 300
        assert len(chart.convert("L").getcolors(maxcolors=1 << 16) or []) > 5  # not a blank canvas


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_data() -> None:
    small = [20.0, 30.0, 25.0, 22.0]
    large = small * 25
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s <= 24.25 <= hi_s and lo_l <= 24.25 <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s)


def test_win_rates_pair_arms_on_the_same_idea_and_seed() -> None:
    rows = [EvalRow("a", "", 0, "raw", 20, 1, None), EvalRow("a", "", 0, "optimized", 25, 1, None),
            EvalRow("a", "", 0, "critic", 25, 1, None), EvalRow("b", "", 0, "raw", 30, 1, None),
            EvalRow("b", "", 0, "optimized", 28, 1, None), EvalRow("b", "", 0, "critic", 31, 1, None)]
    wins = summarize(rows)["wins"]
    assert wins["optimized vs raw"] == {"optimized": 0.5, "raw": 0.5, "ties": 0.0, "pairs": 2}
    assert wins["critic vs optimized"]["critic"] == 0.5 and wins["critic vs optimized"]["ties"] == 0.5
