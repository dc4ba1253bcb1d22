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
from ideaforge.app.batch.run import BatchProgress, idea_seed, plan_jobs, run_batch
from ideaforge.app.batch.store import MANIFEST, Store
from ideaforge.errors import GenerationError, InputError
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


# --- reading idea lists -------------------------------------------------------------------------------------


def test_txt_skips_blank_lines_and_comments_and_keeps_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ideas.txt"
    text = "# my ideas\ncozy cabin at night\n\n   \n  a red kitten  \n#later\n猫站在城堡上\n"
    path.write_text(text, encoding="utf-8")
    ideas = read_ideas(path)
    assert [(r.line, r.idea) for r in ideas.rows] == [
        (2, "cozy cabin at night"), (5, "a red kitten"), (7, "猫站在城堡上")]
    assert ideas.bad == [] and all(r.options == {} for r in ideas.rows)


def test_csv_options_are_typed_and_empty_cells_mean_the_commands_value(tmp_path: Path) -> None:
    path = tmp_path / "ideas.csv"
    path.write_text(
        "Idea,Seed,steps,size,style,negative,n,critique,guidance,note\n"
        'cozy cabin,7,3,64x48,Watercolor,"blurry, dark",2,no,4.5,keep\n'
        "a red kitten,,,,,,,,,\n",
        encoding="utf-8",
    )
    ideas = read_ideas(path)
    first, second = ideas.rows
    assert first.options == {"seed": 7, "steps": 3, "size": "64x48", "style": "Watercolor",
                             "negative": "blurry, dark", "n": 2, "critique": False, "guidance": 4.5}
    assert second.options == {} and ideas.ignored == ["note"]


def test_partiprompts_tsv_reads_its_prompt_column_and_quoted_cells(tmp_path: Path) -> None:
    path = tmp_path / "PartiPrompts.tsv"
    path.write_text(
        "Prompt\tCategory\tChallenge\tNote\n"
        "bond\tAbstract\tBasic\t\n"
        '"A green sign that says ""Very Deep Learning"" at the edge of the Grand Canyon."\tWorld\tWriting\t\n'
        '"a poem\nover two lines"\tArts\tBasic\t\n'
        "a tiger\tAnimals\tBasic\t\n",
        encoding="utf-8",
    )
    ideas = read_ideas(path)
    assert [r.idea for r in ideas.rows] == [
        "bond", 'A green sign that says "Very Deep Learning" at the edge of the Grand Canyon.',
        "a poem over two lines", "a tiger",
    ]
    assert [r.line for r in ideas.rows] == [2, 3, 4, 6]  # a quoted cell on two lines moves the next row down
    assert ideas.ignored == ["Category", "Challenge", "Note"]
    public = read_ideas(PUBLIC)
    assert len(public.rows) == 1242 and public.bad == []


def test_jsonl_rows_and_bad_lines_with_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "ideas.jsonl"
    rows = [
        '{"idea": "cozy cabin", "seed": 5, "steps": 3, "critique": true, "source": "me"}',
        '{"prompt": "a red kitten", "n": 2}',
        "not json",
        "[1, 2]",
        '{"text": "no idea key"}',
        '{"idea": "x", "seed": "abc"}',
        '{"idea": "   "}',
        '{"idea": "y", "steps": 2.5}',
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    ideas = read_ideas(path)
    assert [(r.line, r.idea, r.options) for r in ideas.rows] == [
        (1, "cozy cabin", {"seed": 5, "steps": 3, "critique": True}), (2, "a red kitten", {"n": 2})]
    assert [b.line for b in ideas.bad] == [3, 4, 5, 6, 7, 8]
    assert "not valid JSON" in ideas.bad[0].error and "JSON object" in ideas.bad[1].error
    assert "no 'idea' key" in ideas.bad[2].error and "seed 'abc' is invalid" in ideas.bad[3].error
    assert "idea is empty" in ideas.bad[4].error and "steps 2.5 is invalid" in ideas.bad[5].error
    assert ideas.ignored == ["source"]


def test_a_file_that_cannot_be_read_is_one_input_error(tmp_path: Path) -> None:
    latin = tmp_path / "ideas.txt"
    latin.write_bytes("cozy cabin\ncaf\xe9 at night\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0xe9 on line 2\)"):
        read_ideas(latin)
    no_column = tmp_path / "ideas.csv"
    no_column.write_text("title,seed\ncozy cabin,1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"no 'idea' or 'Prompt' column \(its columns: 'title', 'seed'\)"):
        read_ideas(no_column)
    with pytest.raises(InputError, match="unknown extension"):
        read_ideas(tmp_path / "ideas.xlsx")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no ideas"):
        read_ideas(empty)
    with pytest.raises(InputError, match="cannot be read"):
        read_ideas(tmp_path / "missing.txt")


# --- planning: seeds and resume keys ------------------------------------------------------------------------


def test_seeds_and_resume_keys(tmp_path: Path) -> None:
    path = tmp_path / "ideas.jsonl"
    path.write_text('{"idea": "cozy cabin"}\n{"idea": "cozy cabin", "seed": 3}\n{"idea": "cozy cabin"}\n'
                    '{"idea": "a red kitten", "size": "64x48"}\n{"idea": "a red kitten"}\n', encoding="utf-8")
    rows = read_ideas(path).rows
    forge = make_forge(Path("unused"), tmp_path)
    jobs, bad, duplicates = plan_jobs(forge, rows)
    assert bad == [] and duplicates == [(3, 1)]  # the same idea with the same settings is rendered once
    cabin, kitten = idea_seed("cozy cabin"), idea_seed("a red kitten")
    assert [j.seed for j in jobs] == [cabin, 3, kitten, kitten]
    assert idea_seed("cozy cabin") == idea_seed("cozy cabin") != idea_seed("cozy cabin ")
    assert len({j.key for j in jobs}) == 4  # seed and size change the key
    with_seed, _, _ = plan_jobs(forge, rows, seed=11)
    assert [j.seed for j in with_seed] == [11, 3, 11, 11]
    other_steps = make_forge(Path("unused"), tmp_path, steps=3)
    elsewhere = make_forge(Path("unused"), tmp_path / "elsewhere", device="cuda")
    assert plan_jobs(other_steps, rows)[0][0].key != jobs[0].key
    assert plan_jobs(elsewhere, rows)[0][0].key == jobs[0].key  # device and folder are not part of the key


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
    assert kitten["negative"] != "blurry, text" and kitten["style"] is None
    assert kitten["file_name"] == f"a-red-kitten-in-a-basket-{kitten['seed']}.png"
    assert kitten["scores"] is None and kitten["attempt"] == 1


def test_bad_rows_are_reported_with_their_line_and_the_rest_runs(tiny_sd_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ideas.tsv"
    path.write_text("idea\tstyle\tsize\tsteps\nbond\t\t\t\nelement\tnosuchstyle\t\t\nmolecule\t\t65x64\t\n"
                    "protein\t\t\t0\nfire\t\t\ttwo\n\t\t\t\nwater\t\t\t\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(make_forge(tiny_sd_dir, out), path)
    assert not summary.ok and summary.done == 2 and summary.ideas == 6
    assert [(f["line"], f["stage"]) for f in summary.failed] == [(n, "input") for n in (3, 4, 5, 6)]
    errors = {f["line"]: f["error"] for f in failures(out)}
    assert "unknown style 'nosuchstyle'" in errors[3] and "65x64" in errors[4]
    assert "steps" in errors[5] and "steps 'two' is invalid" in errors[6]
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


def test_recovery_after_a_kill_between_image_and_line(tiny_sd_dir: Path, tmp_path: Path) -> None:
    """The states a kill can leave, made by hand: each is repaired without losing or repeating an image."""
    ideas = public_ideas(3, start=300)
    path = tmp_path / "ideas.jsonl"
    rows = [json.dumps({"idea": idea, "n": 2 if k == 2 else 1}) + "\n" for k, idea in enumerate(ideas)]
    path.write_text("".join(rows), encoding="utf-8")
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).done == 3
    original = check_folder(out, ideas)
    single, pair = original[0], [line for line in original if line["text"] == ideas[2]]
    raw = (out / MANIFEST).read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [r for r in raw if json.loads(r)["key"] not in {single["key"], pair[0]["key"]}]
    torn = next(r for r in raw if json.loads(r)["key"] == single["key"])[:40]  # a line cut mid-write
    (out / MANIFEST).write_text("".join(keep) + torn, encoding="utf-8")
    (out / pair[0]["file_name"]).unlink()  # the n=2 idea lost one image: its other one is a remnant
    (out / ".ideaforge-abc123.png.tmp").write_bytes(b"\x89PNG half")  # a PNG cut mid-write
    foreign = out / "holiday.png"
    Image.new("RGB", (8, 8)).save(foreign)  # not ideaforge's: never touched

    generator = Recording(tiny_sd_dir)
    summary = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
    rec = summary.recovery
    assert (rec.adopted, rec.removed, rec.temp_files) == (1, 1, 1)  # single image adopted, remnant removed
    assert rec.dropped_lines == 0  # the torn line was not valid JSON: skipped, not counted as a line
    assert summary.done_before == 2 and summary.done == 1
    assert len(generator.calls) == 1 and len(generator.calls[0]) == 2  # only the idea missing an image ran
    foreign.unlink()
    repaired = check_folder(out, ideas)
    assert [line for line in repaired if line["key"] == single["key"]] == [single]  # as it was written
    assert (out / MANIFEST).read_bytes().endswith(b"\n")


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


def test_one_run_at_a_time_per_folder(tmp_path: Path) -> None:
    first = Store(tmp_path)
    first.open()
    with pytest.raises(InputError, match="another ideaforge batch is writing"):
        Store(tmp_path).open()
    first.close()
    again = Store(tmp_path)
    again.open()  # the lock went with the first store
    again.close()


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
    settings = {"critique": True, "clip_model": str(tiny_clip_dir), "threshold": 101.0, "max_attempts": 2}
    generator = Recording(tiny_sd_dir)
    forge = make_forge(tiny_sd_dir, out, **settings, generator=generator)
    summary = run_batch(forge, path, batch_size=4)
    assert summary.done == 3 and summary.images == 6  # two rounds each: the threshold is out of reach
    assert len(generator.calls) < 6 and max(len(c) for c in generator.calls) >= 2  # merged across ideas
    manifest = check_folder(out, ideas)

    alone = make_forge(tiny_sd_dir, tmp_path / "alone", **settings)
    for idea in ideas:
        result = alone.run(idea, seed=idea_seed(idea))
        mine = sorted((line for line in manifest if line["text"] == idea), key=lambda line: line["attempt"])
        assert [line["attempt"] for line in mine] == [a.round for a in result.attempts] == [1, 2]
        assert [line["seed"] for line in mine] == [a.seed for a in result.attempts]
        assert [line["prompt"] for line in mine] == [a.spec.positive for a in result.attempts]
        scores = [line["scores"]["idea"] for line in mine]
        assert scores == pytest.approx([a.score for a in result.attempts], abs=1e-3)
        best = next(line for line in mine if line["best"])
        assert best["attempt"] == result.best.round and best["critique"]


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
    assert "failed: line 2 'bond' (input): unknown style 'nosuchstyle'" in failed.stderr
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
