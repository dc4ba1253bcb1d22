"""Files and values a careless or hostile user hands ideaforge end in one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ideaforge import IdeaForge, InputError

EXE = [sys.executable, "-m", "ideaforge.app.cli"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_"))}
    env["IDEAFORGE_CACHE"] = os.environ["IDEAFORGE_CACHE"]
    return subprocess.run([*EXE, *args], capture_output=True, text=True, env=env, timeout=120)


def one_line_exit_2(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ideaforge: error: "), out.stderr
    assert "Traceback" not in out.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def bomb(path: Path, side: int = 20000) -> Path:
    """A PNG of a few hundred bytes that declares side x side pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def with_record(path: Path, record: object) -> Path:
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    meta = PngInfo()
    meta.add_text("ideaforge", record if isinstance(record, str) else json.dumps(record))
    Image.new("RGB", (8, 8)).save(path, pnginfo=meta)
    return path


@pytest.mark.parametrize("command", [("info",), ("generate", "--from")])
def test_a_decompression_bomb_is_refused_in_one_line(command: tuple[str, ...], tmp_path: Path) -> None:
    out = cli(*command, str(bomb(tmp_path / "bomb.png")))
    one_line_exit_2(out, "bomb.png", "more pixels than is safe")


def test_score_image_on_a_bomb_is_a_tool_error_naming_it(tmp_path: Path) -> None:
    from ideaforge import make_tools

    tool = {t.name: t for t in make_tools(IdeaForge(engine="rules"))}["score_image"]
    reply = tool.invoke({"type": "tool_call", "id": "1", "name": "score_image",
                         "args": {"image_path": str(bomb(tmp_path / "b.png")), "text": "a cat"}})
    assert reply.status == "error" and "more pixels than is safe" in reply.content


@pytest.mark.parametrize(
    ("record", "needle"),
    [
        ({"positive": "a cat", "seed": 1}, "idea is required"),
        ({"idea": "a cat", "seed": 1}, "positive is required"),
        ({"idea": 123, "positive": "a cat", "seed": 1}, "idea = 123"),
        ({"idea": "a cat", "positive": "a cat", "seed": 1, "elements": "a cat"}, "elements = 'a cat'"),
        ({"idea": "a cat", "positive": "a cat", "seed": 2**40}, "seed"),
        ({"idea": "x" * 5000, "positive": "a cat", "seed": 1}, "idea"),
        ("{not json", "damaged ideaforge record"),
        (["a", "list"], "holds no ideaforge record"),
    ],
)
def test_hand_edited_records_for_from_end_in_one_line(record: object, needle: str, tmp_path: Path) -> None:
    out = cli("generate", "--from", str(with_record(tmp_path / "edited.png", record)))
    one_line_exit_2(out, needle)


def test_misspelt_settings_and_nan_values_are_refused() -> None:
    with pytest.raises(InputError, match="'stepz'"):
        IdeaForge(stepz=2)
    with pytest.raises(InputError, match="'modle'"):
        IdeaForge(modle="x")
    forge = IdeaForge(engine="rules")
    for option in ({"threshold": float("nan")}, {"guidance": float("nan")}, {"strength": float("inf")}):
        with pytest.raises(InputError, match="finite number"):
            forge.check(**option)


def test_an_init_image_bomb_is_refused_in_one_line(tiny_sd_dir: Path, tmp_path: Path) -> None:
    out = cli("generate", "a cat", "--model", str(tiny_sd_dir), "--steps", "2", "--size", "64x64", "--engine", "rules",
              "--no-critique", "--out", str(tmp_path / "out"), "--init-image", str(bomb(tmp_path / "big.png")))
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    last = out.stderr.strip().splitlines()[-1]  # after the prompt stage's own line
    assert last.startswith("ideaforge: error: init image") and "more pixels than is safe" in last
    assert not list((tmp_path / "out").glob("*.png"))


def test_file_names_are_bounded_in_bytes_not_characters(tmp_path: Path) -> None:
    from PIL import Image

    from ideaforge.tools.metadata import save_png, slugify

    idea = "\U0001f431" * 10 + "𠀀" * 70  # four-byte characters: letters of CJK Extension B
    paths = [save_png(Image.new("RGB", (8, 8)), tmp_path, idea=idea, seed=4294967295, parameters="p", record={})
             for _ in range(3)]
    assert len({p.name for p in paths}) == 3
    assert all(len(p.name.encode()) <= 255 for p in paths)
    assert len(slugify(idea).encode()) <= 120 and slugify(idea).startswith("𠀀")


def test_ctrl_c_right_after_the_first_image_reports_what_is_on_disk(tiny_sd_dir: Path, tiny_clip_dir: Path,
                                                                     tmp_path: Path) -> None:
    import re
    import signal
    import time

    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "IDEAFORGE_"))}
    env["IDEAFORGE_CACHE"] = os.environ["IDEAFORGE_CACHE"]
    proc = subprocess.Popen(
        [*EXE, "generate", "three red kittens and two blue balls in a wicker basket", "--model", str(tiny_sd_dir),
         "--clip-model", str(tiny_clip_dir), "--engine", "rules", "--steps", "50", "--size", "64x64",
         "--threshold", "1", "--max-attempts", "20",
         "--keep-seed", "--out", str(out)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for _ in range(1200):  # until the first PNG lands (bounded: 120 s)
            if list(out.glob("*.png")) or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    on_disk = sorted(str(p) for p in out.glob("*.png"))
    m = re.search(r"kept (\d+) complete image\(s\): (.*)$", err.strip().splitlines()[-1])
    assert m is not None and int(m[1]) == len(on_disk) >= 1
    assert sorted(m[2].split(", ")) == on_disk
