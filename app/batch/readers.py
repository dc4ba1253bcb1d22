"""Idea lists for `ideaforge batch`: .txt, .csv, .tsv and .jsonl files, with per-row options.

- `.txt`: one idea a line; blank lines and lines starting with `#` are skipped.
- `.csv` / `.tsv`: a header row with an `idea` or `Prompt` column (so PartiPrompts.tsv reads as is), plus
  optional option columns (`seed`, `style`, `negative`, `steps`, `n`, ...). Other columns are ignored and
  named once.
  A quoted cell may span lines; a quote that is never closed, or that takes in whole rows up to a stray
  quote further down, is a bad row on the line where it opened, and the lines after it are read as rows.
- `.jsonl`: one JSON object a line with the same keys; the idea must be a JSON string.

The option columns are `ideaforge.agent.request.GenerateRequest`'s fields (`negative` for `negative_prompt`), and
each row is validated by it: CSV/TSV cells are converted to the field's type first ("7" -> 7, "true" -> True),
JSON values are taken as they are. A file that cannot be read at all (not UTF-8, no idea column, unknown
extension) raises one `InputError`. A row whose values are wrong becomes a `BadRow` with its line number and the
request's one-line message; the other rows are unaffected.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ideas.csv"
    >>> _ = path.write_text("idea,seed\\ncozy cabin at night,7\\n,3\\n", encoding="utf-8")
    >>> ideas = read_ideas(path)
    >>> [(r.line, r.idea, r.options) for r in ideas.rows], [(b.line, b.error[:13]) for b in ideas.bad]
    ([(2, 'cozy cabin at night', {'seed': 7})], [(3, 'idea is empty')])
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.request import GenerateRequest
from ideaforge.agent.text import clean_idea
from ideaforge.errors import InputError

IDEA_COLUMNS = ("idea", "prompt")  # matched case-insensitively; PartiPrompts names its column "Prompt"
SUFFIXES = (".txt", ".csv", ".tsv", ".jsonl")


# Columns that are not `GenerateRequest` field names: the short name a list writer types.
ALIASES = {"negative": "negative_prompt"}
# A `prompt` column is the idea (PartiPrompts), so a row cannot set an explicit positive prompt.
_NOT_OPTIONS = {"idea", "prompt"}


@functools.cache
def _option_types() -> dict[str, str]:
    """Each row option and its JSON-schema type ("integer", "number", "boolean", "string"), from the request."""
    out: dict[str, str] = {}
    for name, prop in GenerateRequest.model_json_schema()["properties"].items():
        if name in _NOT_OPTIONS:
            continue
        kinds = [p.get("type") for p in prop.get("anyOf", [prop])]
        out[name] = next((k for k in kinds if k and k != "null"), "string")
    for alias, name in ALIASES.items():
        out[alias] = out[name]
    return out


def row_options() -> tuple[str, ...]:
    """The column names (or JSON keys) a row may set: `GenerateRequest`'s options, plus `negative`."""
    return tuple(_option_types())


_TRUE, _FALSE = {"true", "yes", "1", "on"}, {"false", "no", "0", "off"}


def _from_cell(kind: str, text: str) -> Any:
    """A CSV/TSV cell as the field's type ("7" -> 7); text that is no such value is left for the request to
    reject, so the message is the request's own."""
    text = text.strip()
    if kind == "integer" and text.lstrip("+-").isdigit():
        try:
            return int(text)
        except ValueError:  # more than 4300 digits, or digits int() does not read ("²"): the request rejects it
            return text[:40] + "..." if len(text) > 40 else text
    if kind == "number":
        try:
            return float(text)
        except ValueError:
            return text
    if kind == "boolean" and text.lower() in _TRUE | _FALSE:
        return text.lower() in _TRUE
    return text


@dataclass
class Row:
    """One idea to render: where it came from, the idea, and the options that override the command's."""

    line: int
    idea: str
    options: dict[str, Any] = field(default_factory=dict)  # `GenerateRequest` field names, validated values


@dataclass
class BadRow:
    """A row that cannot run, and why. `idea` is the raw idea text when there was one."""

    line: int
    idea: str | None
    error: str


@dataclass
class IdeaList:
    path: Path
    rows: list[Row]
    bad: list[BadRow]
    ignored: list[str] = field(default_factory=list)  # columns or keys that are neither idea nor option


def read_ideas(path: str | Path) -> IdeaList:
    """Read an idea list; see the module docstring for the formats.

    Raises:
        InputError: the file is missing, not UTF-8, of an unknown kind, without idea column, or empty.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"idea file {str(path)!r} has an unknown extension; use {', '.join(SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"idea file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"idea file {str(path)!r} is not UTF-8 text (byte {data[exc.start]:#04x} on line {line}); "
            "save it as UTF-8"
        ) from None
    if suffix == ".txt":
        result = _read_txt(text)
    elif suffix == ".jsonl":
        result = _read_jsonl(text)
    else:
        result = _read_table(text, "\t" if suffix == ".tsv" else ",", path)
    rows, bad, ignored = result
    if not rows and not bad:
        raise InputError(f"idea file {str(path)!r} holds no ideas")
    return IdeaList(path, rows, bad, ignored)


def _row(line: int, idea: Any, values: dict[str, Any], *, cells: bool = False) -> Row | BadRow:
    """Validate one row through `GenerateRequest`; a problem makes it a `BadRow` with the request's one line.

    `cells`: the values are CSV/TSV text, converted to each field's type first; JSON values are taken as typed.
    """
    raw = None if idea is None else str(idea)
    try:
        cleaned = clean_idea(raw if raw is not None else "")
    except InputError as exc:
        return BadRow(line, raw, str(exc))
    types = _option_types()
    options: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or (isinstance(value, str) and not value.strip()):
            continue  # an empty cell means "the command's value"
        options[ALIASES.get(key, key)] = _from_cell(types[key], value) if cells and isinstance(value, str) else value
    try:
        request = GenerateRequest.parse(idea=cleaned, **options)
    except InputError as exc:
        return BadRow(line, cleaned, str(exc))
    given = request.given()
    if request.negative_prompt is not None:
        given["negative_prompt"] = request.negative_prompt
    return Row(line, cleaned, given)


def _read_txt(text: str) -> tuple[list[Row], list[BadRow], list[str]]:
    rows: list[Row] = []
    bad: list[BadRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        item = _row(number, stripped, {})
        (rows if isinstance(item, Row) else bad).append(item)  # type: ignore[arg-type]
    return rows, bad, []


def _read_jsonl(text: str) -> tuple[list[Row], list[BadRow], list[str]]:
    rows: list[Row] = []
    bad: list[BadRow] = []
    ignored: dict[str, None] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(number, None, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            bad.append(BadRow(number, None, f"not usable JSON ({' '.join(str(exc).split(';')[0].split())[:120]})"))
            continue
        except RecursionError:
            bad.append(BadRow(number, None, "not usable JSON (nested too deeply)"))
            continue
        if not isinstance(obj, dict):
            bad.append(BadRow(number, None, f"expected a JSON object, got {type(obj).__name__}"))
            continue
        keys = {str(k).strip().lower(): v for k, v in obj.items()}
        column = next((c for c in IDEA_COLUMNS if c in keys), None)
        if column is None:
            bad.append(BadRow(number, None, f"no 'idea' key (keys: {', '.join(map(str, obj)) or 'none'})"))
            continue
        for key in keys:
            if key != column and key not in _option_types():
                ignored[key] = None
        if not isinstance(keys[column], str) and keys[column] is not None:
            shown = json.dumps(keys[column], ensure_ascii=False)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            bad.append(BadRow(number, None, f"{column!r} must be text, got {type(keys[column]).__name__} {shown}"))
            continue
        item = _row(number, keys[column], {k: v for k, v in keys.items() if k in _option_types()})
        (rows if isinstance(item, Row) else bad).append(item)  # type: ignore[arg-type]
    return rows, bad, list(ignored)


_UNCLOSED = ("a quote opened on line {line} is not closed: it {rest}; close it, or write a quote inside a quoted "
             "cell as two (\"\")")


def _physical_lines(text: str) -> list[str]:
    """The file's lines with their endings, split where `csv` splits them (\\n, \\r\\n, \\r) and nowhere else."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _read_table(text: str, delimiter: str, path: Path) -> tuple[list[Row], list[BadRow], list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(f"idea file {str(path)!r} is empty; it needs a header row with an 'idea' column") \
            from None
    except csv.Error as exc:
        raise InputError(f"idea file {str(path)!r}: the header row is malformed ({exc})") from None
    names = [h.strip().lower() for h in header]
    column = next((names.index(c) for c in IDEA_COLUMNS if c in names), None)
    if column is None:
        shown = ", ".join(repr(h) for h in header) or "none"
        raise InputError(
            f"idea file {str(path)!r} has no 'idea' or 'Prompt' column (its columns: {shown}); "
            "name the column of ideas 'idea'"
        )
    options = {i: n for i, n in enumerate(names) if n in _option_types()}
    ignored = [h.strip() for i, h in enumerate(header) if i != column and i not in options and h.strip()]
    rows: list[Row] = []
    bad: list[BadRow] = []
    lines = _physical_lines(text)
    at = reader.line_num  # physical lines taken by the header (a quoted header cell may span lines)
    while at < len(lines):
        start = at + 1  # 1-based line number where this record begins
        record = csv.reader(iter(lines[at:]), delimiter=delimiter, strict=True)
        try:
            cells = next(record)
        except StopIteration:
            break
        except csv.Error as exc:
            if "end of data" in str(exc):  # a quote never closed: it would swallow the rest of the file
                bad.append(BadRow(start, None, _UNCLOSED.format(line=start, rest="runs to the end of the file")))
            elif record.line_num > 1:  # a quote that took in later lines, up to a stray quote there
                rest = f"takes in the lines after it, up to line {start + record.line_num - 1}"
                bad.append(BadRow(start, None, _UNCLOSED.format(line=start, rest=rest)))
            else:
                bad.append(BadRow(start, None, f"malformed row ({exc})"))
            at += 1  # the lines after it are rows of their own
            continue
        span = max(1, record.line_num)
        if span > 1 and any(delimiter in cell.split("\n", 1)[1] for cell in cells if "\n" in cell):
            # A cell over several lines that holds whole rows: a stray quote, closed by another one lines later.
            rest = f"takes in the lines after it, up to line {start + span - 1}"
            bad.append(BadRow(start, None, _UNCLOSED.format(line=start, rest=rest)))
            at += 1
            continue
        at += span
        if not cells or not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            bad.append(BadRow(start, None, f"{len(cells)} cells but the header has {len(header)} columns"))
            continue
        cells += [""] * (len(header) - len(cells))
        item = _row(start, cells[column], {name: cells[i] for i, name in options.items()}, cells=True)
        (rows if isinstance(item, Row) else bad).append(item)  # type: ignore[arg-type]
    return rows, bad, ignored
