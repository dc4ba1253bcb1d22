"""Property-based: every idea list written in any supported format reads back as the same ideas and options."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ideaforge.agent.text import clean_idea
from ideaforge.app.batch.readers import read_ideas
from ideaforge.errors import InputError

# Ideas as people type them: any printable text in any script, at most 200 characters, not only blanks.
ideas = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=200
).filter(lambda s: s.strip() and not s.lstrip().startswith("#"))
rows = st.lists(st.tuples(ideas, st.integers(min_value=0, max_value=2**32 - 1)), min_size=1, max_size=12)


def write(kind: str, data: list[tuple[str, int]]) -> Path:
    path = Path(tempfile.mkdtemp()) / f"ideas.{kind}"
    if kind == "txt":
        path.write_text("\n".join(i for i, _ in data) + "\n", encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("\n".join(json.dumps({"idea": i, "seed": s}, ensure_ascii=False) for i, s in data), encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, delimiter="\t" if kind == "tsv" else ",")
            w.writerow(["Prompt", "seed"])
            w.writerows(data)
    return path


@settings(max_examples=60, deadline=None)
@given(rows, st.sampled_from(["txt", "csv", "tsv", "jsonl"]))
def test_written_lists_read_back_unchanged(data, kind) -> None:
    valid, invalid = [], []
    for i, s in data:
        try:
            valid.append((clean_idea(i), s))
        except InputError:  # e.g. only unassigned code points: nothing is left to draw
            invalid.append(i)
    if not valid and kind == "txt":
        return  # an empty list is an InputError of its own, tested elsewhere
    got = read_ideas(write(kind, data))
    assert [r.idea for r in got.rows] == [i for i, _ in valid]
    assert len(got.bad) == len(invalid) and all("idea is empty" in b.error for b in got.bad)
    if kind != "txt":
        assert [r.options.get("seed") for r in got.rows] == [s for _, s in valid]
    lines = [r.line for r in got.rows] + [b.line for b in got.bad]
    assert len(set(lines)) == len(lines)  # every row keeps its own line number
