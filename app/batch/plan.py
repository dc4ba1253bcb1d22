"""Planning a batch: each validated row becomes a `Job` with its seed and resume key, before anything loads.

A row's options were validated by `GenerateRequest` when the list was read (`ideaforge.app.batch.readers`);
here they are laid over the command's settings. Planning reads no file and loads no model, so a list of 10,000
ideas plans in a fraction of a second; the output folder is checked once, when the store opens it.

Seeds: a row's `seed`, else the command's `seed`, else one derived from the idea's text, so a run is
reproducible and a resumed run makes the same images it would have made.

Example:
    >>> idea_seed("cozy cabin at night") == idea_seed("cozy cabin at night")
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from ideaforge.app.batch.readers import BadRow, Row

# The settings that decide an idea's images, so they are part of its resume key (device and dtype are not).
_KEY_SETTINGS = ("model", "style", "steps", "guidance", "size", "scheduler", "n", "candidates", "critique")
_CRITIC_SETTINGS = ("clip_model", "threshold", "max_attempts", "keep_seed")


@dataclass
class Job:
    """One idea to render, with everything that decides its images."""

    line: int
    idea: str
    key: str  # the resume key: a hash of the idea and its effective settings
    seed: int
    style: str | None  # the row's style ("" for none), None: the command's
    negative: str | None  # replaces the prompt chain's negative when given
    options: dict[str, Any]  # IdeaForge.run overrides from the row (seed, negative and style excluded)
    images: int | None  # how many images make the result whole without the critic; None with it
    tags: dict[str, Any] = field(default_factory=dict)  # stored in each PNG record (see ideaforge.app.batch.store)


def idea_seed(idea: str) -> int:
    """The seed of an idea when neither its row nor the command gives one: stable across runs and machines."""
    return int.from_bytes(hashlib.sha256(idea.encode("utf-8")).digest()[:4], "big")


def resume_key(fields: dict[str, Any]) -> str:
    """A hash of everything that decides an idea's images (see `key_fields`)."""
    text = json.dumps(fields, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def key_fields(idea: str, effective: dict[str, Any], seed: int, negative: str | None, *, engine: str,
               loras: list[str]) -> dict[str, Any]:
    """What the resume key of an idea is made of: the idea, its seed and negative, its effective settings.

    Device and dtype are left out: moving a half-done run to another machine continues it rather than starting
    over.
    """
    fields: dict[str, Any] = {
        "idea": idea, "seed": seed, "negative": negative, "loras": loras, "engine": engine,
        "llm_model": effective["llm_model"] if engine == "openai" else None,
        **{name: effective[name] for name in _KEY_SETTINGS},
    }
    if effective["critique"]:
        fields.update({name: effective[name] for name in _CRITIC_SETTINGS})
    return fields


def plan_jobs(
    forge: Any, rows: list[Row], *, seed: int | None = None, negative: str | None = None
) -> tuple[list[Job], list[BadRow], list[tuple[int, int]]]:
    """Lay every row over the command's settings: jobs, bad rows, repeated rows as (line, first).

    Example:
        >>> jobs, bad, repeated = plan_jobs(forge, read_ideas("ideas.tsv").rows, seed=7)  # doctest: +SKIP
    """
    command = forge.settings.model_dump(include={*_KEY_SETTINGS, *_CRITIC_SETTINGS, "llm_model"})
    engine, loras = forge.chain.engine, list(forge.loras)  # resolved once, not per row
    jobs: list[Job] = []
    duplicates: list[tuple[int, int]] = []
    first_line: dict[str, int] = {}
    for row in rows:
        options = dict(row.options)
        row_seed = options.pop("seed", seed)
        row_negative = options.pop("negative_prompt", negative)
        style = options.pop("style", None)  # "" is "no style", over the command's
        job_seed = row_seed if row_seed is not None else idea_seed(row.idea)
        effective = {**command, **options}
        if style is not None:
            effective["style"] = style or None
        key = resume_key(key_fields(row.idea, effective, job_seed, row_negative, engine=engine, loras=loras))
        if key in first_line:
            duplicates.append((row.line, first_line[key]))
            continue
        first_line[key] = row.line
        jobs.append(Job(
            line=row.line, idea=row.idea, key=key, seed=job_seed, style=style, negative=row_negative,
            options=options, images=None if effective["critique"] else effective["n"] * effective["candidates"],
        ))
    return jobs, [], duplicates

