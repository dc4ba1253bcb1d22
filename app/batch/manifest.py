"""The columns of `metadata.jsonl`, one schema whatever the run's options, and the dataset card that declares it.

A batch folder is a Hugging Face `imagefolder`: `datasets` infers each folder's features from its metadata
lines, and two folders load together (`data_files={"a": [...], "b": [...]}`, `concatenate_datasets`) only when
the features are equal. So every line has every column with one type, whatever the options: no bare null where
a string, a number or a struct can appear, and no list that can be empty in every line of a file (Arrow reads
`[]` as a list of nulls). Without a style, `style` is ""; without the critic, `scored` is false, `critique` is
"" and `scores` has the idea's elements with score 0.

`card()` is the folder's `README.md`: the same features as YAML front matter, as the Hub documents it, so
`datasets.load_dataset(folder)` and the Hub viewer know the types before reading a line.

Example:
    >>> from ideaforge.agent.record import PngRecord
    >>> line = manifest_line(PngRecord(idea="a red kitten", positive="red kitten", seed=7), "a.png", best=True)
    >>> list(line) == list(COLUMNS), line["style"], line["scored"], line["scores"]["elements"][0]["score"]
    (True, '', False, 0.0)
"""

from __future__ import annotations

from typing import Any

from ideaforge.agent.record import PngRecord

# Every column of a metadata line and its `datasets` type: a dtype name, a struct (dict), or a list of a struct
# (a one-item list). `file_name` becomes the `image` column when `datasets` loads the folder.
COLUMNS: dict[str, Any] = {
    "file_name": "string",
    "text": "string",  # the idea as written in the list
    "prompt": "string",  # the positive prompt the image was made from
    "negative": "string",
    "seed": "int64",
    "scored": "bool",  # whether a critic judged the image; without it the scores below are 0
    "scores": {
        "idea": "float64",  # CLIP score against the whole idea (its English form), or the preference score
        "elements": [{"element": "string", "score": "float64", "weak": "bool"}],
    },
    "critique": "string",
    "critic": "string",  # the checklist critic that judged the image ("" without one)
    "checks_passed": "float64",  # share of the checklist passed (0 when not judged)
    "verdicts": [{"check": "int64", "kind": "string", "question": "string", "verdict": "string"}],  # yes/no/unverified
    "attempt": "int64",  # the round of the critic loop
    "candidate": "int64",
    "best": "bool",  # the idea's chosen image; it closes the idea's group of lines
    "style": "string",  # the style preset, "" for none
    "engine": "string",
    "model": "string",
    "steps": "int64",
    "guidance": "float64",
    "size": "string",
    "scheduler": "string",
    "line": "int64",  # the row of the idea list
    "key": "string",  # the resume key
}


def manifest_line(record: PngRecord, file_name: str, best: bool) -> dict[str, Any]:
    """One `metadata.jsonl` line, from the image's own PNG record; its keys and types are `COLUMNS`."""
    tag = record.batch or {}
    scores, review = record.scores, record.review
    if scores is not None:
        weak = set(scores.weak)
        elements = [{"element": str(name), "score": float(value), "weak": name in weak}
                    for name, value in scores.elements.items()]
    else:
        elements = []
    if not elements:  # never an empty list: the idea's elements, unscored
        elements = [{"element": name, "score": 0.0, "weak": False} for name in record.elements or [record.idea]]
    line = {
        "file_name": file_name,
        "text": record.idea,
        "prompt": record.positive,
        "negative": record.negative,
        "seed": record.seed,
        "scored": scores is not None or review is not None,
        "scores": {"idea": _idea_score(record), "elements": elements},
        "critique": scores.critique if scores is not None else "",
        "critic": review.critic if review is not None else "",
        "checks_passed": float(review.alignment or 0.0) if review is not None else 0.0,
        "verdicts": _verdicts(record),
        "attempt": record.round,
        "candidate": record.candidate,
        "best": bool(best),
        "style": record.style or "",
        "engine": record.engine,
        "model": record.model,
        "steps": record.steps or 0,
        "guidance": float(record.guidance or 0.0),
        "size": record.size or "",
        "scheduler": record.scheduler or "",
        "line": int(tag.get("line") or 0),
        "key": str(tag.get("key") or ""),
    }
    return line


def _idea_score(record: PngRecord) -> float:
    """CLIP's score against the idea: the legacy scorer's, else the checklist critic's quality (CLIP's idea score
    unless a preference model was set)."""
    if record.scores is not None:
        return float(record.scores.idea)
    if record.review is not None and record.review.quality is not None:
        return float(record.review.quality)
    return 0.0


def _verdicts(record: PngRecord) -> list[dict[str, Any]]:
    """One entry per check (never an empty list): its verdict as yes, no or unverified ("" when not judged)."""
    said = {v.check: v.passed for v in record.review.verdicts} if record.review is not None else {}
    words = {True: "yes", False: "no", None: "unverified"}
    out = [{"check": c.id, "kind": c.kind, "question": c.question,
            "verdict": words[said[c.id]] if c.id in said else ""} for c in record.checks]
    return out or [{"check": 0, "kind": "", "question": "", "verdict": ""}]


def is_current(line: dict[str, Any]) -> bool:
    """Whether a line read back has this schema's columns (a folder written by an older version may not)."""
    return list(line) == list(COLUMNS) and all(v is not None for v in line.values())


def _yaml_features(features: dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    for name, kind in features.items():
        out.append(f"{pad}- name: {name}")
        if isinstance(kind, dict):
            out += [f"{pad}  struct:", *_yaml_features(kind, indent + 2)]
        elif isinstance(kind, list):
            out += [f"{pad}  list:", *_yaml_features(kind[0], indent + 2)]
        else:
            out.append(f"{pad}  dtype: {kind}")
    return out


def card(manifest: str) -> str:
    """The dataset card (`README.md`) of a batch folder whose metadata file is named `manifest`."""
    features = {("image" if name == "file_name" else name): ("image" if name == "file_name" else kind)
                for name, kind in COLUMNS.items()}
    front = [
        "---",
        "configs:",
        "- config_name: default",
        "  data_files:",
        "  - split: train",
        "    path:",
        f"    - {manifest}",
        '    - "*.png"',
        "dataset_info:",
        "  features:",
        *_yaml_features(features, 2),
        "tags:",
        "- ideaforge",
        "- text-to-image",
        "---",
    ]
    body = f"""
# Images made by `ideaforge batch`

One PNG per image, listed in `{manifest}` (the Hugging Face `imagefolder` layout); ideas that failed are in
`failures.jsonl`, the settings and package versions of the latest run in `run.json`. Every PNG also carries its
full record (prompts, seed, scores, versions) in its `ideaforge` text chunk.

```python
from datasets import load_dataset
images = load_dataset("imagefolder", data_dir=".", split="train")
```

Columns: `text` is the idea, `prompt`/`negative` the prompts the image was made from; `scored` says whether the
critic scored it (`scores.idea`, per-element `scores.elements`, `critique`); `best` marks each idea's chosen
image; `style` is "" when no style preset was used; `line` and `key` tie an image to its row and resume key.

ideaforge writes this file only when the folder has no `README.md`; edit it freely, it is never overwritten.
"""
    return "\n".join(front) + "\n" + body
