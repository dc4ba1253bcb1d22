"""The batch output folder: one writer at a time, repair after a kill, the dataset card, PNG records read through
`PngRecord`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from test_batch import Recording, check_folder, lines, make_forge, public_ideas, write_tsv

from ideaforge.app.batch.manifest import COLUMNS
from ideaforge.app.batch.run import run_batch
from ideaforge.app.batch.store import CARD, MANIFEST, Store
from ideaforge.errors import InputError


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




def test_one_run_at_a_time_per_folder(tmp_path: Path) -> None:
    first = Store(tmp_path)
    first.open()
    with pytest.raises(InputError, match="another ideaforge batch is writing"):
        Store(tmp_path).open()
    first.close()
    again = Store(tmp_path)
    again.open()  # the lock went with the first store
    again.close()


def test_the_dataset_card_is_written_once_and_a_users_readme_is_never_touched(tmp_path: Path) -> None:
    store = Store(tmp_path / "fresh")
    store.open()
    store.close()
    card = (tmp_path / "fresh" / CARD).read_text(encoding="utf-8")
    assert card.startswith("---\nconfigs:\n") and "dataset_info:" in card and "dtype: image" in card
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / CARD).write_text("# my holiday renders\n", encoding="utf-8")
    for _ in range(2):
        store = Store(mine)
        store.open()
        store.close()
    assert (mine / CARD).read_text(encoding="utf-8") == "# my holiday renders\n"
    assert not list(mine.glob(".*.tmp"))


def test_an_image_with_a_damaged_record_is_never_adopted(tiny_sd_dir: Path, tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    from ideaforge.tools.metadata import RECORD_KEY

    ideas = public_ideas(2, start=900)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).done == 2
    first = lines(out)[0]
    (out / MANIFEST).write_text("".join(json.dumps(x) + "\n" for x in lines(out)[1:]), encoding="utf-8")
    image = out / first["file_name"]
    with Image.open(image) as png:
        png.load()
        record = json.loads(png.text[RECORD_KEY])
        pixels = png.copy()
    record["seed"] = -5  # out of range: PngRecord rejects it
    info = PngInfo()
    info.add_text(RECORD_KEY, json.dumps(record))
    pixels.save(image, pnginfo=info)

    generator = Recording(tiny_sd_dir)
    summary = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
    assert (summary.recovery.adopted, summary.done_before, summary.done) == (0, 1, 1)
    assert generator.calls == [[first["prompt"]]]  # the idea ran again rather than adopting a bad image
    assert image.exists()  # not this folder's tag any more (unreadable): never touched
    image.unlink()
    check_folder(out, ideas)


def test_lines_written_by_an_older_version_get_todays_columns(tiny_sd_dir: Path, tmp_path: Path) -> None:
    ideas = public_ideas(2, start=950)
    path = write_tsv(tmp_path / "ideas.tsv", ideas)
    out = tmp_path / "out"
    assert run_batch(make_forge(tiny_sd_dir, out), path).done == 2
    today = lines(out)
    old = [{**{k: v for k, v in x.items() if k not in ("scored",)}, "style": None, "scores": None,
            "critique": None} for x in today]  # what earlier versions wrote without a style and critic
    (out / MANIFEST).write_text("".join(json.dumps(x) + "\n" for x in old), encoding="utf-8")
    generator = Recording(tiny_sd_dir)
    summary = run_batch(make_forge(tiny_sd_dir, out, generator=generator), path)
    assert (summary.done_before, summary.done, generator.calls) == (2, 0, [])
    assert lines(out) == today and all(list(x) == list(COLUMNS) for x in lines(out))
