"""What a hostile or careless user does to a batch folder or an idea list, and the clean outcome of each: nothing
lost or listed twice, a bounded wait, one line and exit 2 (or a typed exception)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from test_batch import REPO, Recording, check_folder, clean_env, failures, lines, make_forge, public_ideas, write_tsv

from ideaforge.app.batch import files as files_module
from ideaforge.app.batch.readers import read_ideas
from ideaforge.app.batch.run import run_batch
from ideaforge.app.batch.store import MANIFEST, RUN_FILE, DiskFull, Store
from ideaforge.errors import InputError, ModelNotFoundError


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def ours(out: Path) -> list[dict[str, Any]]:
    return [line for line in lines(out) if "key" in line]


# --- 1. a folder that already holds a dataset -----------------------------------------------------------------


def test_a_folder_holding_a_dataset_keeps_its_captions_and_images(tiny_sd_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    theirs = []
    for i in range(5):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(out / f"photo{i}.png")
        theirs.append({"file_name": f"photo{i}.png", "text": f"my caption {i}"})
    user_bytes = "".join(json.dumps(x) + "\n" for x in theirs).encode()
    (out / MANIFEST).write_bytes(user_bytes)
    ideas = public_ideas(2, start=30)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    for _ in range(2):  # the second run resumes: still nothing of theirs is touched
        summary = run_batch(make_forge(tiny_sd_dir, out), path)
        assert summary.ok and summary.recovery.dropped_lines == 0 and summary.recovery.removed == 0
        data = (out / MANIFEST).read_bytes()
        assert data.startswith(user_bytes), "the user's lines are kept byte for byte, where they were"
        assert all((out / f"photo{i}.png").exists() for i in range(5))
        assert sorted(x["text"] for x in ours(out) if x["best"]) == sorted(ideas)
    assert summary.done_before == 2 and summary.recovery.foreign_lines == 5
    for line in lines(out):  # every line names an existing file, as imagefolder needs
        assert (out / line["file_name"]).is_file()


def test_a_user_line_naming_an_ideaforge_image_and_a_keyless_line_stay(tiny_sd_dir: Path, tmp_path: Path) -> None:
    ideas = public_ideas(2, start=40)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).ok
    first = lines(out)[0]
    # The user captions one of the images themselves, in their own line, and adds a note without an image.
    extra = (json.dumps({"text": "my caption", "file_name": first["file_name"]}) + "\n"
             + '{"note": "made on my laptop"}\n').encode()
    (out / MANIFEST).write_bytes((out / MANIFEST).read_bytes() + extra)
    summary = run_batch(make_forge(tiny_sd_dir, out), path)
    assert summary.done_before == 2 and summary.recovery.dropped_lines == 0
    assert (out / MANIFEST).read_bytes().endswith(extra)


# --- 2. sorting metadata.jsonl --------------------------------------------------------------------------------


def test_a_sorted_and_reformatted_manifest_renders_nothing_and_keeps_every_image(tiny_sd_dir: Path,
                                                                                tmp_path: Path) -> None:
    ideas = public_ideas(3, start=60)
    path = write_jsonl(tmp_path / "ideas.jsonl", [{"idea": idea, "n": 2} for idea in ideas])
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).images == 6
    before = {p.name: p.read_bytes() for p in out.glob("*.png")}
    raw = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    # `sort -o metadata.jsonl metadata.jsonl`, and one line rewritten by a tool with other key order and spacing
    raw = sorted(raw)
    raw[0] = json.dumps(json.loads(raw[0]), sort_keys=True, indent=None, separators=(" , ", " : "))
    (out / MANIFEST).write_text("\n".join(raw) + "\n", encoding="utf-8")
    for _ in range(2):
        generator = Recording(tiny_sd_dir)
        summary = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
        rec = summary.recovery
        assert generator.calls == [] and (summary.done_before, summary.done) == (3, 0)
        assert (rec.removed, rec.dropped_lines, rec.adopted, rec.duplicates) == (0, 0, 0, 0)
        assert {p.name: p.read_bytes() for p in out.glob("*.png")} == before
    after = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    assert after[1:] == raw[1:] and json.loads(after[0]) == json.loads(raw[0])  # in their order; same values
    check_folder(out, ideas)


# --- 3. the lock file, duplicates, run.json -------------------------------------------------------------------


def test_deleting_the_lock_file_does_not_let_a_second_batch_in(tmp_path: Path) -> None:
    first = Store(tmp_path)
    first.open()
    for stale in tmp_path.glob(".ideaforge-batch*"):
        stale.unlink()  # what a user tidying the folder does
    with pytest.raises(InputError, match="another ideaforge batch is writing"):
        Store(tmp_path).open()
    first.close()
    again = Store(tmp_path)
    again.open()
    again.close()


def test_duplicate_results_of_two_runs_at_once_are_repaired_and_nothing_is_lost(tiny_sd_dir: Path,
                                                                                tmp_path: Path) -> None:
    ideas = public_ideas(3, start=80)
    path = write_jsonl(tmp_path / "ideas.jsonl", [{"idea": ideas[0]}, {"idea": ideas[1], "n": 2},
                                                  {"idea": ideas[2], "n": 2}])
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).ok
    original = lines(out)
    # What two runs at once leave: idea 0 rendered twice (a second image, `-2`, and its line)...
    single = next(x for x in original if x["text"] == ideas[0])
    copy = single["file_name"].replace(".png", "-2.png")
    shutil.copy(out / single["file_name"], out / copy)
    # ... and idea 1's second result saved but only partly listed (the other run was killed).
    pair = [x for x in original if x["text"] == ideas[1]]
    copies = [x["file_name"].replace(".png", "-2.png") for x in pair]
    for x, name in zip(pair, copies):
        shutil.copy(out / x["file_name"], out / name)
    duplicated = [{**single, "file_name": copy}, {**pair[0], "file_name": copies[0]}]
    with (out / MANIFEST).open("a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(x) + "\n" for x in duplicated)
    # And the user deleted the line of idea 2's first image: the image is complete, so it is listed again.
    lost = next(x for x in original if x["text"] == ideas[2] and not x["best"])
    kept_raw = [r for r in (out / MANIFEST).read_text(encoding="utf-8").splitlines()
                if json.loads(r)["file_name"] != lost["file_name"]]
    (out / MANIFEST).write_text("\n".join(kept_raw) + "\n", encoding="utf-8")

    generator = Recording(tiny_sd_dir)
    summary = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
    assert generator.calls == [] and summary.done_before == 3
    assert summary.recovery.duplicates == 3 and summary.recovery.adopted == 1
    assert not (out / copy).exists() and not any((out / name).exists() for name in copies)
    repaired = check_folder(out, ideas)  # one line per image, one result per idea
    assert sorted(x["file_name"] for x in repaired) == sorted(x["file_name"] for x in original)


def test_without_run_json_the_remnants_of_a_killed_run_are_still_found(tiny_sd_dir: Path, tmp_path: Path) -> None:
    ideas = public_ideas(2, start=120)
    path = write_jsonl(tmp_path / "ideas.jsonl", [{"idea": idea, "n": 2} for idea in ideas])
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).ok
    cut = [x for x in lines(out) if x["text"] == ideas[1]]
    (out / MANIFEST).write_text("".join(json.dumps(x) + "\n" for x in lines(out) if x["text"] != ideas[1]),
                                encoding="utf-8")
    (out / cut[0]["file_name"]).unlink()  # killed after one of its two images: the other is a remnant
    (out / RUN_FILE).unlink()
    summary = run_batch(make_forge(tiny_sd_dir, out), path)
    assert summary.recovery.removed == 1 and (summary.done_before, summary.done) == (1, 1)
    check_folder(out, ideas)  # no stranded image, no `-2` copy
    # Both gone: the folder id is read from the images' own tags.
    (out / RUN_FILE).unlink()
    (out / MANIFEST).unlink()
    summary = run_batch(make_forge(tiny_sd_dir, out), path)
    assert (summary.recovery.adopted, summary.done_before, summary.done) == (4, 2, 0)
    check_folder(out, ideas)


# --- 4. a batch that fails on a bad model --------------------------------------------------------------------


def test_a_bad_model_leaves_the_folder_as_it_was(tiny_sd_dir: Path, tmp_path: Path) -> None:
    path = write_tsv(tmp_path / "ideas.tsv", ["cozy cabin at night", "a red kitten"])
    fresh = tmp_path / "fresh"
    with pytest.raises(ModelNotFoundError):
        run_batch(make_forge(tmp_path / "no-such-model", fresh), path)
    assert not fresh.exists()

    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), write_tsv(tmp_path / "one.tsv", ["cozy cabin at night"])).ok
    Image.new("RGB", (8, 8)).save(out / "holiday.png")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ModelNotFoundError):
        run_batch(make_forge(tmp_path / "no-such-model", out), path)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_cli_bad_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "ideas.txt"
    path.write_text("cozy cabin at night\n", encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "ideaforge.app.cli", "batch", str(path), "--out", str(out),
                           "--model", str(tmp_path / "nope"), "--engine", "rules", "--no-critique"],
                          check=False, capture_output=True, text=True, env=clean_env(), timeout=120, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("ideaforge: error:")]
    assert not out.exists()


# --- 5. the disk fills up ------------------------------------------------------------------------------------


def _target(fd: int) -> str:
    try:
        return os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="names open files through /proc")
@pytest.mark.parametrize("victim", [MANIFEST, "failures.jsonl", RUN_FILE, "png"])
def test_a_full_disk_stops_the_batch_with_one_error_and_the_folder_resumes(
        victim: str, tiny_sd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ideaforge.tools import metadata

    ideas = public_ideas(4, start=140)
    path = tmp_path / "ideas.tsv"
    path.write_text("idea\tsteps\n" + "".join(f"{i}\t\n" for i in ideas) + "bad row\t0\n", encoding="utf-8")
    out = tmp_path / "out"
    real_write, real_save = files_module._write_all, metadata.save_png
    state = {"calls": 0}

    def full_write(fd: int, data: bytes) -> None:
        name = _target(fd)
        hit = name == victim or (victim == RUN_FILE and name.startswith(f".{RUN_FILE}."))
        if hit:
            state["calls"] += 1
        # run.json: the first write (run start) works, the last one (the summary) hits a full disk
        if hit and (victim != RUN_FILE or state["calls"] > 1):
            os.write(fd, data[: len(data) // 2])  # part of it fits
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(fd, data)

    def full_save(*args: Any, **kwargs: Any) -> Path:
        state["calls"] += 1
        if state["calls"] > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(*args, **kwargs)

    if victim == "png":
        monkeypatch.setattr(metadata, "save_png", full_save)
    else:
        monkeypatch.setattr(files_module, "_write_all", full_write)
    with pytest.raises(DiskFull) as caught:
        run_batch(make_forge(tiny_sd_dir, out), path, batch_size=1)
    message = str(caught.value)
    assert repr(str(out)) in message and "is full" in message and "free at least" in message
    assert caught.value.exit_code == 2 and "\n" not in message
    assert not list(out.glob(".*.tmp"))
    for line in lines(out) if (out / MANIFEST).exists() else []:  # whatever is listed is whole
        assert (out / line["file_name"]).is_file()
    assert all(f["stage"] == "input" for f in failures(out)), "no idea is blamed for the full disk"

    monkeypatch.undo()
    summary = run_batch(make_forge(tiny_sd_dir, out), path, batch_size=1)
    assert summary.done + summary.done_before == 4 and [f["line"] for f in summary.failed] == [6]
    check_folder(out, ideas)


def test_cli_full_disk_is_one_line_and_exit_2(tiny_sd_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ideaforge.app.cli import app

    path = tmp_path / "ideas.txt"
    path.write_text("cozy cabin at night\n", encoding="utf-8")

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files_module, "_write_all", full)
    result = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "out"), "--model",
                                      str(tiny_sd_dir), "--engine", "rules", "--no-critique", "--steps", "2",
                                      "--size", "64x64"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "is full" in errors[0] and "Traceback" not in result.output


# --- 6. hostile idea lists -----------------------------------------------------------------------------------


def test_hostile_jsonl_rows_are_bad_rows_and_the_rest_runs(tmp_path: Path) -> None:
    path = tmp_path / "ideas.jsonl"
    path.write_text(
        '{"idea": "a red kitten", "seed": ' + "9" * 5000 + "}\n"
        '{"idea": ["a", "list"]}\n'
        '{"idea": {"nested": "object"}}\n'
        '{"idea": 42}\n'
        + "[" * 100_000 + "\n"
        + '{"idea": "cozy cabin at night", "seed": 7}\n',
        encoding="utf-8",
    )
    ideas = read_ideas(path)
    assert [(r.line, r.idea, r.options) for r in ideas.rows] == [(6, "cozy cabin at night", {"seed": 7})]
    errors = {b.line: b.error for b in ideas.bad}
    assert sorted(errors) == [1, 2, 3, 4, 5]
    assert "4300 digits" in errors[1] and len(errors[1]) < 200
    assert errors[2].startswith("'idea' must be text, got list") and "must be text" in errors[4]


@pytest.mark.parametrize("delimiter", [",", "\t"])
def test_an_unclosed_quote_is_a_bad_row_on_the_line_it_opened(delimiter: str, tmp_path: Path) -> None:
    d = delimiter
    path = tmp_path / ("ideas.csv" if d == "," else "ideas.tsv")
    path.write_text(f"idea{d}seed\ncozy cabin{d}1\n\"a red kitten{d}2\nbond{d}3\nwater{d}{'9' * 5000}\n"
                    f"\"a poem\nover two lines\"{d}5\nfire{d}6\n\"never closed{d}7\nlast{d}8\n", encoding="utf-8")
    ideas = read_ideas(path)
    assert [(r.line, r.idea) for r in ideas.rows] == [(2, "cozy cabin"), (4, "bond"), (6, "a poem over two lines"),
                                                     (8, "fire"), (10, "last")]
    errors = {b.line: b.error for b in ideas.bad}
    assert sorted(errors) == [3, 5, 9]
    assert errors[3].startswith("a quote opened on line 3 is not closed") and "up to line 6" in errors[3]
    assert errors[9].startswith("a quote opened on line 9 is not closed: it runs to the end of the file")
    assert errors[5].startswith("seed = ") and len(errors[5]) < 200


def test_hostile_rows_fail_alone_in_a_batch(tiny_sd_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "ideas.jsonl"
    path.write_text('{"idea": "a red kitten", "seed": ' + "1" * 5000 + '}\n{"idea": ["a", "list"]}\n'
                    '{"idea": "cozy cabin at night"}\n', encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(make_forge(tiny_sd_dir, out), path)
    assert summary.done == 1 and [(f["line"], f["stage"]) for f in summary.failed] == [(1, "input"), (2, "input")]
    check_folder(out, ["cozy cabin at night"])


# --- 7, 8. Ctrl-C, once and twice ----------------------------------------------------------------------------


def _interrupt(tiny_sd_dir: Path, tmp_path: Path, signals: int) -> tuple[subprocess.Popen[str], str, Path, Path]:
    ideas = public_ideas(12, start=160)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    log = tmp_path / "stderr.txt"
    args = [sys.executable, "-m", "ideaforge.app.cli", "batch", str(path), "--out", str(out), "--model",
            str(tiny_sd_dir), "--engine", "rules", "--no-critique", "--steps", "25", "--size", "64x64",
            "--batch-size", "2"]
    with log.open("w") as stderr:
        proc = subprocess.Popen(args, env=clean_env(), cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            deadline = time.monotonic() + 240
            while proc.poll() is None and not list(out.glob("*.png")) and time.monotonic() < deadline:
                time.sleep(0.001)  # polling for the event: the first image in the folder
            assert proc.poll() is None, log.read_text()
            for _ in range(signals):
                proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    return proc, log.read_text(), out, path


@pytest.mark.slow
@pytest.mark.parametrize("signals", [1, 2, 5])
def test_ctrl_c_once_or_repeatedly_ends_cleanly_naming_the_images_on_disk(signals: int, tiny_sd_dir: Path,
                                                                          tmp_path: Path) -> None:
    proc, err, out, path = _interrupt(tiny_sd_dir, tmp_path, signals)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "terminate called" not in err
    [last] = [line for line in err.splitlines() if line.startswith("ideaforge: error: interrupted")]
    listed = [x["file_name"] for x in lines(out)]
    on_disk = sorted(p.name for p in out.glob("*.png"))
    assert listed and sorted(listed) == on_disk  # every complete image is listed, whatever events arrived
    assert f"kept {len(listed)} complete image(s)" in last and listed[0] in last
    resumed = subprocess.run([sys.executable, "-m", "ideaforge.app.cli", "batch", str(path), "--out", str(out),
                              "--model", str(tiny_sd_dir), "--engine", "rules", "--no-critique", "--steps", "25",
                              "--size", "64x64", "--batch-size", "2"],
                             check=False, capture_output=True, text=True, env=clean_env(), timeout=300, cwd=REPO)
    assert resumed.returncode == 0, resumed.stderr
    final = check_folder(out, public_ideas(12, start=160))
    assert set(listed) <= {x["file_name"] for x in final}  # nothing kept was redone or lost
