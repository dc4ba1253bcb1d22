"""One `metadata.jsonl` schema whatever the options: folders made with and without style and critic load and
concatenate as one Hugging Face dataset, and the dataset card declares the same features."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_batch import lines, make_forge, public_ideas, write_tsv

from ideaforge.agent.models import Scores
from ideaforge.agent.record import PngRecord
from ideaforge.app.batch.manifest import COLUMNS, card, manifest_line
from ideaforge.app.batch.run import run_batch
from ideaforge.app.batch.store import CARD, MANIFEST

datasets = pytest.importorskip("datasets")


def test_lines_have_every_column_with_one_type_whatever_the_record() -> None:
    bare = PngRecord(idea="a red kitten", positive="red kitten", seed=7)
    scored = PngRecord(idea="a red kitten", positive="red kitten", seed=7, style="watercolor", steps=2,
                       guidance=7, scheduler="euler", size="64x64", batch={"key": "k", "line": 3},
                       scores=Scores(idea=31, elements={"kitten": 30.5, "basket": 12}, weak=["basket"],
                                     critique="the basket is faint"))
    a, b = manifest_line(bare, "a.png", best=True), manifest_line(scored, "b.png", best=False)
    assert list(a) == list(b) == list(COLUMNS)
    for name in COLUMNS:
        assert type(a[name]) is type(b[name]), name  # noqa: E721 - the exact type is the point
        assert a[name] is not None
    assert (a["style"], a["critique"], a["scored"], a["scores"]["idea"]) == ("", "", False, 0.0)
    assert a["scores"]["elements"] == [{"element": "a red kitten", "score": 0.0, "weak": False}]
    assert type(b["guidance"]) is float and type(b["scores"]["idea"]) is float  # 7 and 31 are written as 7.0
    assert b["scores"]["elements"] == [{"element": "kitten", "score": 30.5, "weak": False},
                                       {"element": "basket", "score": 12.0, "weak": True}]


def test_folders_made_with_other_options_load_and_concatenate_as_one_dataset(
        tiny_sd_dir: Path, tiny_clip_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    path = write_tsv(tmp_path / "ideas.tsv", public_ideas(2, start=1000))
    styled = tmp_path / "styled"
    critic = {"critique": True, "clip_model": str(tiny_clip_dir), "threshold": 1.0, "max_attempts": 1}
    assert run_batch(make_forge(tiny_sd_dir, styled, style="watercolor", **critic), path).ok
    plain = tmp_path / "plain"
    assert run_batch(make_forge(tiny_sd_dir, plain), path).ok  # no style, critique off
    assert {x["scored"] for x in lines(styled)} == {True} and {x["scored"] for x in lines(plain)} == {False}

    def files(folder: Path) -> list[str]:
        return [str(folder / MANIFEST), *(str(p) for p in sorted(folder.glob("*.png")))]

    loaded = datasets.load_dataset("imagefolder", data_files={"styled": files(styled), "plain": files(plain)},
                                   cache_dir=str(tmp_path / "cache"))
    both = datasets.concatenate_datasets([loaded["styled"], loaded["plain"]])
    assert len(both) == 4 and sorted(both["style"]) == ["", "", "watercolor", "watercolor"]
    assert both[0]["image"].size == (64, 64)

    declared = datasets.DatasetInfo._from_yaml_dict(_front_matter(styled / CARD)["dataset_info"]).features
    assert declared == loaded["plain"].features == loaded["styled"].features  # the card tells the truth
    from_card = datasets.load_dataset(str(plain), split="train", cache_dir=str(tmp_path / "cache"))
    assert from_card.features == declared and len(from_card) == 2  # the folder alone, through its card


def _front_matter(readme: Path) -> dict:
    import yaml

    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_the_card_names_the_metadata_file_and_every_column() -> None:
    import yaml

    front = yaml.safe_load(card(MANIFEST).split("---\n")[1])
    assert front["configs"][0]["data_files"][0]["path"] == [MANIFEST, "*.png"]
    names = [f["name"] for f in front["dataset_info"]["features"]]
    assert names == ["image", *list(COLUMNS)[1:]]
    assert json.dumps(front)  # plain data: nothing YAML-only in it
