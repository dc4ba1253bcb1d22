"""`ideaforge batch`: idea lists, per-row options, resume, crash recovery and batching, with the tiny
models."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ideaforge import IdeaForge
from ideaforge.app.batch.readers import read_ideas
from ideaforge.app.batch.run import BatchProgress, idea_seed, run_batch
from ideaforge.app.batch.store import MANIFEST
from ideaforge.errors import GenerationError
from ideaforge.tools.metadata import read_record

PUBLIC = Path(__file__).resolve().parent / "data" / "public_ideas.tsv"
REPO = Path(__file__).resolve().parent.parent


def public_ideas(n: int, start: int = 0) -> list[str]:
    """A slice of the public idea set (PartiPrompts, then hand-written multilingual ideas at the end)."""
    return [r.idea for r in read_ideas(PUBLIC).rows[start:start + n]]


def write_tsv(path: Path, ideas: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t").writerows([["idea", "category"], *([idea, "x"] for idea in ideas)])
    return path


def make_forge(model: Path, out: Path, **kw: Any) -> IdeaForge:
    settings: dict[str, Any] = {"model": str(model), "engine": "rules", "critique": False, "steps": 2,
                                "size": "64x64", "out": str(out)}
    return IdeaForge(**{**settings, **kw})


def lines(out: Path) -> list[dict[str, Any]]:
    text = (out / MANIFEST).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def failures(out: Path) -> list[dict[str, Any]]:
    path = out / "failures.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def check_folder(out: Path, ideas: list[str]) -> list[dict[str, Any]]:
    """The folder's promises, file by file: each idea once, each line's PNG readable and matching."""
    manifest = lines(out)
    names = [line["file_name"] for line in manifest]
    assert len(names) == len(set(names)), "a file is listed twice"
    for line in manifest:
        record = read_record(out / line["file_name"])["ideaforge"]  # decodes the whole PNG
        assert record["batch"]["key"] == line["key"] and record["idea"] == line["text"]
        assert record["seed"] == line["seed"] and record["positive"] == line["prompt"]
    assert sorted(p.name for p in out.glob("*.png")) == sorted(names), "an image without its line, or reverse"
    assert not list(out.glob(".*.tmp")), "a temporary file was left behind"
    best = [line["text"] for line in manifest if line["best"]]
    assert sorted(best) == sorted(ideas), "each idea exactly once"
    return manifest


class Recording:
    """The real tiny pipeline behind a wrapper that records calls and fails each call holding `poison`."""

    def __init__(self, model: Path, poison: str | None = None) -> None:
        from ideaforge.tools.diffusion import DiffusionTool

        self.tool = DiffusionTool(str(model), device="cpu").load()
        self.poison = poison
        self.calls: list[list[str]] = []

    @property
    def tokenizer(self) -> Any:
        return self.tool.tokenizer

    def generate(self, requests: Any, params: Any, *, on_step: Any = None, cancel: Any = None) -> list[Any]:
        self.calls.append([r.positive for r in requests])
        if self.poison and any(self.poison in r.positive for r in requests):
            raise GenerationError(f"the pipeline cannot draw {self.poison!r}")
        return self.tool.generate(requests, params, on_step=on_step, cancel=cancel)


# --- runs with the tiny model -------------------------------------------------------------------------------


def test_per_row_options_reach_the_images(tiny_sd_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ideas.csv"
    path.write_text(
        "idea,seed,steps,size,style,negative,n\n"
        "cozy cabin at night,7,3,64x48,watercolor,\"blurry, text\",2\n"
        "a red kitten in a basket,,,,,,\n",
        encoding="utf-8",
    )
    out = tmp_path / "out"
    summary = run_batch(make_forge(tiny_sd_dir, out), path, batch_size=4)
    assert summary.ok and summary.done == 2 and summary.images == 3
    manifest = check_folder(out, ["cozy cabin at night", "a red kitten in a basket"])
    cabin = [line for line in manifest if line["text"] == "cozy cabin at night"]
    assert sorted(line["seed"] for line in cabin) == [7, 8]  # n=2: seeds 7 and 8
    assert [line["best"] for line in cabin] == [False, True]  # the best line closes the idea's group
    for line in cabin:
        assert (line["steps"], line["size"], line["style"]) == (3, "64x48", "watercolor")
        assert line["negative"] == "blurry, text"
        assert pixels(out / line["file_name"]).shape == (48, 64, 3)
    [kitten] = [line for line in manifest if line["text"] == "a red kitten in a basket"]
    assert (kitten["steps"], kitten["size"]) == (2, "64x64")
    assert kitten["seed"] == idea_seed("a red kitten in a basket")
    assert kitten["negative"] != "blurry, text" and kitten["style"] == ""
    assert kitten["file_name"] == f"a-red-kitten-in-a-basket-{kitten['seed']}.png"
    assert kitten["scored"] is False and kitten["critique"] == "" and kitten["attempt"] == 1


def test_bad_rows_are_reported_with_their_line_and_the_rest_runs(tiny_sd_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ideas.tsv"
    path.write_text("idea\tstyle\tsize\tsteps\nbond\t\t\t\nelement\tnosuchstyle\t\t\nmolecule\t\t65x64\t\n"
                    "protein\t\t\t0\nfire\t\t\ttwo\n\t\t\t\nwater\t\t\t\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(make_forge(tiny_sd_dir, out), path)
    assert not summary.ok and summary.done == 2 and summary.ideas == 6
    assert [(f["line"], f["stage"]) for f in summary.failed] == [(n, "input") for n in (3, 4, 5, 6)]
    errors = {f["line"]: f["error"] for f in failures(out)}
    assert errors[3].startswith("style = 'nosuchstyle': unknown style; choose one of: ") and "65x64" in errors[4]
    assert errors[5] == "steps = 0: Input should be greater than or equal to 1"
    assert errors[6].startswith("steps = 'two': Input should be a valid integer")
    check_folder(out, ["bond", "water"])


def test_one_failing_idea_fails_alone_inside_a_batched_call(tiny_sd_dir: Path, tmp_path: Path) -> None:
    ideas = public_ideas(5) + ["a poisoned apple"]
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    generator = Recording(tiny_sd_dir, poison="poisoned apple")
    forge = make_forge(tiny_sd_dir, out, generator=generator)
    summary = run_batch(forge, path, batch_size=4)
    assert summary.done == 5 and [(f["line"], f["stage"]) for f in summary.failed] == [(7, "generate")]
    assert "cannot draw 'poisoned apple'" in summary.failed[0]["error"]
    merged = [call for call in generator.calls if len(call) > 1 and any("poisoned apple" in p for p in call)]
    assert merged, "the poisoned idea shared a batched call with others"
    assert [c for c in generator.calls if len(c) == 1 and "poisoned apple" in c[0]], "then it ran alone"
    check_folder(out, ideas[:5])
    assert failures(out) == summary.failed


def test_batched_and_one_by_one_runs_give_the_same_pixels(tiny_sd_dir: Path, tmp_path: Path) -> None:
    ideas = public_ideas(8, start=100)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    runs = {}
    for batch_size in (4, 1):
        out = tmp_path / f"b{batch_size}"
        generator = Recording(tiny_sd_dir)
        forge = make_forge(tiny_sd_dir, out, generator=generator)
        assert run_batch(forge, path, batch_size=batch_size).done == 8
        runs[batch_size] = (check_folder(out, ideas), generator.calls, out)
    (batched, batched_calls, a), (single, single_calls, b) = runs[4], runs[1]
    assert len(single_calls) == 8 and all(len(c) == 1 for c in single_calls)
    assert len(batched_calls) < 8 and max(len(c) for c in batched_calls) == 4
    by_name = {line["file_name"]: line for line in single}
    assert {line["file_name"]: line for line in batched} == by_name
    for line in batched:
        diff = np.abs(pixels(a / line["file_name"]).astype(int) - pixels(b / line["file_name"]).astype(int))
        # Batched kernels sum in another order: at most one level of 8-bit rounding, on a few pixels.
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, line["file_name"]


def test_prompts_are_counted_with_a_copy_of_the_pipelines_tokenizer(tiny_sd_dir: Path, tmp_path: Path) -> None:
    """Prompts are made while images render: one tokenizer used by both threads at once can hand the pipeline
    an unpadded sequence, so the chain gets its own copy."""
    from ideaforge.agent.budget import count

    generator = Recording(tiny_sd_dir)
    forge = make_forge(tiny_sd_dir, tmp_path / "out", generator=generator)
    assert run_batch(forge, write_tsv(tmp_path / "ideas.tsv", public_ideas(2, start=800))).ok
    mine, pipeline = forge.chain.tokenizer, generator.tool.tokenizer
    assert mine is not pipeline and type(mine) is type(pipeline)
    text = "Saturn rises on the horizon., landscape photography, dramatic sky"
    assert count(text, mine) == count(text, pipeline)


def test_resume_skips_what_is_done_and_redoes_what_is_missing_or_failed(tiny_sd_dir: Path,
                                                                        tmp_path: Path) -> None:
    ideas = public_ideas(4, start=200) + ["a poisoned apple"]
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    first = run_batch(make_forge(tiny_sd_dir, out, generator=Recording(tiny_sd_dir, poison="poisoned apple")), path)
    assert first.done == 4 and len(first.failed) == 1 and len(failures(out)) == 1

    generator = Recording(tiny_sd_dir)
    second = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
    assert (second.done_before, second.done, second.failed) == (4, 1, [])
    assert generator.calls and all("poisoned apple" in p for c in generator.calls for p in c)  # only it ran
    assert failures(out) == []  # the old failure is gone with its retry
    manifest = check_folder(out, ideas)

    removed = manifest[0]
    (out / removed["file_name"]).unlink()  # an image the user deleted
    generator = Recording(tiny_sd_dir)
    third = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
    assert (third.done_before, third.done, third.recovery.dropped_lines) == (4, 1, 1)
    assert [len(c) for c in generator.calls] == [1] and generator.calls[0] == [removed["prompt"]]
    again = check_folder(out, ideas)
    assert [line for line in again if line["key"] == removed["key"]] == [removed]  # same name, same values

    fourth = run_batch(make_forge(tiny_sd_dir, out, steps=3), path)  # other settings, other keys: all again
    assert (fourth.done_before, fourth.done) == (0, 5)
    assert len(lines(out)) == 10 and len({line["key"] for line in lines(out)}) == 10


def test_a_cancelled_run_keeps_what_it_finished_and_resumes(tiny_sd_dir: Path, tmp_path: Path) -> None:
    ideas = public_ideas(10, start=700)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    cancel = threading.Event()

    def stop_after_three(progress: BatchProgress) -> None:
        if progress.done >= 3:
            cancel.set()

    first = run_batch(make_forge(tiny_sd_dir, out), path, batch_size=2, cancel=cancel,
                      on_progress=stop_after_three)
    assert not first.ok and first.cancelled > 0 and first.failed == []
    assert first.done + first.cancelled == 10 and len(lines(out)) == first.done
    second = run_batch(make_forge(tiny_sd_dir, out), path, batch_size=2)
    assert second.ok and (second.done_before, second.done) == (first.done, 10 - first.done)
    check_folder(out, ideas)


def test_run_json_has_settings_and_versions_but_no_secret(tiny_sd_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdefghijklmnop")
    path = write_tsv(tmp_path / "ideas.tsv", ["cozy cabin at night"])
    out = tmp_path / "out"
    forge = make_forge(tiny_sd_dir, out, llm_base_url="http://user:hunter2@127.0.0.1:9/v1")
    run_batch(forge, path, seed=5, batch_size=2)
    text = (out / "run.json").read_text(encoding="utf-8")
    data = json.loads(text)
    assert data["settings"]["steps"] == 2 and data["settings"]["model"] == str(tiny_sd_dir)
    assert data["batch_size"] == 2 and data["seed"] == 5 and data["summary"]["done"] == 1 and data["finished"]
    assert "torch" in data["versions"] and "diffusers" in data["versions"]
    assert data["settings"]["llm_base_url"] == "http://127.0.0.1:9/v1"  # credentials removed, the rest kept
    assert "sk-test" not in text and "hunter2" not in text and "openai_api_key" not in text


def test_critic_rounds_are_batched_and_match_one_by_one_runs(tiny_sd_dir: Path, tiny_clip_dir: Path,
                                                             tmp_path: Path) -> None:
    ideas = public_ideas(3, start=400)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    settings = {"critique": True, "clip_model": str(tiny_clip_dir), "threshold": 1.0, "max_attempts": 2}
    generator = Recording(tiny_sd_dir)
    forge = make_forge(tiny_sd_dir, out, **settings, generator=generator)
    summary = run_batch(forge, path, batch_size=4)
    assert summary.done == 3
    assert len(generator.calls) < summary.images and max(len(c) for c in generator.calls) >= 2  # merged across ideas
    manifest = check_folder(out, ideas)

    alone = make_forge(tiny_sd_dir, tmp_path / "alone", **settings)
    rounds = 0
    for idea in ideas:
        result = alone.run(idea, seed=idea_seed(idea))
        rounds += len(result.attempts)
        mine = sorted((line for line in manifest if line["text"] == idea), key=lambda line: line["attempt"])
        assert [line["attempt"] for line in mine] == [a.round for a in result.attempts]
        assert [line["seed"] for line in mine] == [a.seed for a in result.attempts]
        assert [line["prompt"] for line in mine] == [a.spec.positive for a in result.attempts]
        shares = [line["checks_passed"] for line in mine]
        assert shares == pytest.approx([a.score for a in result.attempts], abs=1e-3)
        assert all(line["critic"] == "clip" and line["scored"] for line in mine)
        best = next(line for line in mine if line["best"])
        assert best["attempt"] == result.best.round
    assert summary.images == rounds and rounds > 3  # some idea needed a second round: the loop ran in the batch


# --- the command line ---------------------------------------------------------------------------------------


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "IDEAFORGE_")) or k == "IDEAFORGE_CACHE"}
    env["OMP_NUM_THREADS"] = "1"  # tiny models: threads only spin on a small shared machine
    return env


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ideaforge.app.cli", "batch", *args], check=False, capture_output=True,
                          text=True, env=clean_env(), timeout=timeout, cwd=REPO)


def test_cli_exit_status_and_summary(tiny_sd_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ideas.txt"
    path.write_text("cozy cabin at night\na red kitten in a basket\n", encoding="utf-8")
    common = ["--model", str(tiny_sd_dir), "--engine", "rules", "--no-critique", "--steps", "2",
              "--size", "64x64"]
    ok = cli(str(path), "--out", str(tmp_path / "out"), "--json", *common)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["done"] == 2 and "2 done now" in ok.stderr
    jsonl = tmp_path / "ideas.jsonl"
    jsonl.write_text('{"idea": "cozy cabin at night"}\n{"idea": "bond", "style": "nosuchstyle"}\n',
                     encoding="utf-8")
    failed = cli(str(jsonl), "--out", str(tmp_path / "out"), *common)
    assert failed.returncode == 1
    assert "failed: line 2 'bond' (input): style = 'nosuchstyle': unknown style" in failed.stderr
    assert "1 done before, 1 failed" in failed.stderr
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    bad = cli(str(latin), "--out", str(tmp_path / "out2"), *common)
    assert bad.returncode == 2 and "not UTF-8" in bad.stderr and not (tmp_path / "out2").exists()


def test_help_loads_neither_torch_nor_ray() -> None:
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom ideaforge.app.cli import app\n"
            "r = CliRunner().invoke(app, ['batch', '--help'])\n"
            "assert r.exit_code == 0 and '--executor' in r.output\n"
            "print(sorted(m for m in ('torch', 'ray', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=REPO,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# --- killed with SIGKILL, then resumed ----------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_several_points_then_resume_loses_and_repeats_nothing(tiny_sd_dir: Path,
                                                                        tmp_path: Path) -> None:
    ideas = public_ideas(14, start=500) + public_ideas(4, start=1238)  # PartiPrompts, then multilingual ideas
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "ideaforge.app.cli", "batch", str(path), "--out", str(out),
            "--model", str(tiny_sd_dir), "--engine", "rules", "--no-critique", "--steps", "2", "--size", "64x64", "--batch-size", "2"]
    env = clean_env()

    def listed() -> int:
        try:
            return len((out / MANIFEST).read_bytes().splitlines())
        except FileNotFoundError:
            return 0

    def images() -> int:
        return len(list(out.glob("*.png"))) if out.exists() else 0

    def kill_when(condition: Any) -> tuple[int, int]:
        proc = subprocess.Popen(args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while proc.poll() is None and not condition() and time.monotonic() < deadline:
            time.sleep(0.001)
        state = (images(), listed())
        proc.kill()
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
        return state

    # 1: while the model loads (the folder is open, nothing rendered yet)
    kill_when(lambda: (out / "run.json").exists())
    # 2: the moment an image is in place but its line is not yet written (or, if never caught, after 3 lines)
    kill_when(lambda: images() > listed() or listed() >= 3)
    # 3: in the middle of the run, two ideas later
    mid = listed()
    kill_when(lambda: listed() >= mid + 2)
    assert 0 < listed() < len(ideas)
    finished = subprocess.run(args, check=False, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
    assert finished.returncode == 0, finished.stderr
    manifest = check_folder(out, ideas)
    assert len(manifest) == len(ideas)
    for line in manifest:
        with Image.open(out / line["file_name"]) as image:
            image.load()
            assert image.size == (64, 64)
    again = subprocess.run(args, check=False, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"0 done now, {len(ideas)} done before" in again.stderr
    assert lines(out) == manifest
