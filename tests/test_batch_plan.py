"""Planning a batch: seeds, resume keys and repeated rows, without loading a model or touching the folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ideaforge import IdeaForge
from ideaforge.app.batch.plan import idea_seed, plan_jobs
from ideaforge.app.batch.readers import read_ideas


def forge_for(out: Path, **kw: Any) -> IdeaForge:
    settings: dict[str, Any] = {"model": "tiny", "engine": "rules", "critique": False, "steps": 2,
                                "size": "64x64", "out": str(out)}
    return IdeaForge(**{**settings, **kw})


def test_seeds_and_resume_keys(tmp_path: Path) -> None:
    path = tmp_path / "ideas.jsonl"
    path.write_text('{"idea": "cozy cabin"}\n{"idea": "cozy cabin", "seed": 3}\n{"idea": "cozy cabin"}\n'
                    '{"idea": "a red kitten", "size": "64x48"}\n{"idea": "a red kitten"}\n', encoding="utf-8")
    rows = read_ideas(path).rows
    forge = forge_for(tmp_path)
    jobs, bad, duplicates = plan_jobs(forge, rows)
    assert bad == [] and duplicates == [(3, 1)]  # the same idea with the same settings is rendered once
    cabin, kitten = idea_seed("cozy cabin"), idea_seed("a red kitten")
    assert [j.seed for j in jobs] == [cabin, 3, kitten, kitten]
    assert idea_seed("cozy cabin") == idea_seed("cozy cabin") != idea_seed("cozy cabin ")
    assert len({j.key for j in jobs}) == 4  # seed and size change the key
    with_seed, _, _ = plan_jobs(forge, rows, seed=11)
    assert [j.seed for j in with_seed] == [11, 3, 11, 11]
    other_steps = forge_for(tmp_path, steps=3)
    elsewhere = forge_for(tmp_path / "elsewhere", device="cuda")
    assert plan_jobs(other_steps, rows)[0][0].key != jobs[0].key
    assert plan_jobs(elsewhere, rows)[0][0].key == jobs[0].key  # device and folder are not part of the key


def test_resume_keys_are_those_earlier_versions_wrote(tmp_path: Path) -> None:
    """A folder started before this version resumes rather than starting over: the keys are pinned."""
    path = tmp_path / "ideas.jsonl"
    path.write_text('{"idea": "cozy cabin"}\n{"idea": "cozy cabin", "seed": 3}\n'
                    '{"idea": "a red kitten", "size": "64x48", "style": "Watercolor", "negative": "blurry"}\n'
                    '{"idea": "a red kitten", "critique": true, "steps": 3, "guidance": 4.5}\n', encoding="utf-8")
    jobs, bad, _ = plan_jobs(forge_for(tmp_path, model="tiny"), read_ideas(path).rows)
    assert bad == [] and [j.key for j in jobs] == [
        "7cfecda13df391f0d84c", "7c433413f447c8c7dc0d", "3295a3754af1fe69761c", "2dce30bb601bb0dd3dd3"]


def test_rows_become_jobs_with_their_own_options(tmp_path: Path) -> None:
    path = tmp_path / "ideas.csv"
    path.write_text("idea,style,negative,n,critique,steps\ncozy cabin,Watercolor,blurry,2,,3\n"
                    "a red kitten,,,,true,\n", encoding="utf-8")
    cabin, kitten = plan_jobs(forge_for(tmp_path, style="anime"), read_ideas(path).rows, negative="dark")[0]
    assert (cabin.style, cabin.negative, cabin.images) == ("watercolor", "blurry", 2)
    assert cabin.options == {"n": 2, "steps": 3}  # what `IdeaForge.run` gets; seed, style, negative apart
    assert (kitten.style, kitten.negative, kitten.images) == (None, "dark", None)  # the critic: open-ended
    assert kitten.options == {"critique": True}


def test_planning_loads_nothing_and_leaves_the_folder_alone(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder is checked once, when the store opens it, not per row (`_plan` probes it with a file)."""

    def no_per_row_plan(self: IdeaForge, overrides: dict[str, Any]) -> Any:
        raise AssertionError("planned through IdeaForge._plan")

    monkeypatch.setattr(IdeaForge, "_plan", no_per_row_plan)
    path = tmp_path / "ideas.txt"
    path.write_text("".join(f"idea number {i}\n" for i in range(500)), encoding="utf-8")
    out = tmp_path / "not-yet"
    forge = forge_for(out)
    jobs, _, _ = plan_jobs(forge, read_ideas(path).rows)
    assert len(jobs) == 500 and not out.exists()
    assert forge._generator is None and forge._scorer is None  # no model was loaded
