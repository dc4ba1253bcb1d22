"""`place_png`: the PNG bytes a Ray worker sends are placed as they are, under the local executor's name."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ideaforge.app.batch.ray_executor import place_png
from ideaforge.errors import InputError
from ideaforge.tools.metadata import RECORD_KEY


def png(record: dict) -> bytes:
    info = PngInfo()
    info.add_text(RECORD_KEY, json.dumps(record), zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def test_bytes_are_placed_unchanged_and_never_over_a_file(tmp_path: Path) -> None:
    data = png({"idea": "a red kitten", "positive": "red kitten", "seed": 7})
    first = place_png(data, tmp_path)
    second = place_png(data, tmp_path)
    assert (first.name, second.name) == ("a-red-kitten-7.png", "a-red-kitten-7-2.png")
    assert first.read_bytes() == data == second.read_bytes()  # not decoded and encoded again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-red-kitten-7-2.png", "a-red-kitten-7.png"]


def test_a_damaged_record_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="invalid ideaforge record: seed"):
        place_png(png({"idea": "a red kitten", "positive": "red kitten", "seed": -1}), tmp_path)
    with pytest.raises(InputError, match="damaged"):
        place_png(b"\x89PNG not really", tmp_path)
    assert list(tmp_path.iterdir()) == []
