"""Idea lists: .txt, .csv/.tsv (PartiPrompts too) and .jsonl, each row validated by `GenerateRequest`."""

from __future__ import annotations

from pathlib import Path

import pytest

from ideaforge.app.batch.readers import read_ideas, row_options
from ideaforge.errors import InputError

PUBLIC = Path(__file__).resolve().parent / "data" / "public_ideas.tsv"


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
    # Cells become the request's types; names and values are `GenerateRequest`'s ("Watercolor" -> its preset).
    assert first.options == {"seed": 7, "steps": 3, "size": "64x48", "style": "watercolor",
                             "negative_prompt": "blurry, dark", "n": 2, "critique": False, "guidance": 4.5}
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
    assert "no 'idea' key" in ideas.bad[2].error
    assert ideas.bad[3].error == "seed = 'abc': Input should be a valid integer"
    assert "idea is empty" in ideas.bad[4].error
    assert ideas.bad[5].error.startswith("steps = 2.5: Input should be a valid integer")
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


def test_row_options_are_the_requests_fields() -> None:
    from ideaforge.agent.request import GenerateRequest

    fields = set(GenerateRequest.model_fields) - {"idea", "prompt"}  # a `prompt` column is the idea (PartiPrompts)
    assert set(row_options()) == fields | {"negative"}


def test_every_problem_of_a_row_is_one_line_from_the_request(tmp_path: Path) -> None:
    path = tmp_path / "ideas.csv"
    path.write_text("idea,seed,size,scheduler,keep_seed,threshold\n"
                    "a,4294967296,,,,\nb,,64x65,,,\nc,,,nosuch,,\nd,,,,maybe,\ne,,,,,-1\n"
                    "f,-0,,Euler a,yes,2.5\n", encoding="utf-8")
    ideas = read_ideas(path)
    errors = {b.line: b.error for b in ideas.bad}
    assert errors[2] == "seed = 4294967296: Input should be less than or equal to 4294967295"
    assert errors[3].startswith("size = '64x65': size 64x65 is invalid")
    assert errors[4].startswith("scheduler = 'nosuch': unknown scheduler; choose one of: ")
    assert errors[5].startswith("keep_seed = 'maybe': ")
    assert errors[6] == "threshold = -1.0: Input should be greater than or equal to 0"
    assert all("\n" not in e for e in errors.values())
    [row] = ideas.rows
    assert row.line == 7 and row.options["seed"] == 0 and row.options["keep_seed"] is True
    assert row.options["threshold"] == 2.5 and row.options["scheduler"] != "Euler a"  # the canonical name


def test_json_values_are_taken_as_typed(tmp_path: Path) -> None:
    path = tmp_path / "ideas.jsonl"
    path.write_text('{"idea": "a", "seed": "7"}\n{"idea": "b", "critique": false, "negative": "blur"}\n'
                    '{"idea": "c", "style": ""}\n', encoding="utf-8")
    ideas = read_ideas(path)
    assert [b.line for b in ideas.bad] == [1]  # a seed is a number, not text, in JSON
    assert ideas.bad[0].error == "seed = '7': Input should be a valid integer"
    # An empty value, as an empty cell, means the command's value.
    assert [r.options for r in ideas.rows] == [{"critique": False, "negative_prompt": "blur"}, {}]
