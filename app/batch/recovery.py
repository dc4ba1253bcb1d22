"""What opening a batch output folder finds, and how it is repaired (see `ideaforge.app.batch.store`).

`metadata.jsonl` is read back line by line: ideaforge's lines (a resume key, and an image carrying
ideaforge's tag for that key) are parsed, every other line is kept byte for byte. Torn or repeated lines and
lines whose image is gone are dropped; a result counts as done when its group holds its `best` line. Tagged
images that no line lists are adopted (a whole result by themselves), listed again (their line was lost),
or deleted (copies from two runs at once, remnants of an idea cut short). Files without this folder's tag
are never touched.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.record import PngRecord
from ideaforge.app.batch.files import (
    CARD,
    FAILURES,
    MANIFEST,
    RUN_FILE,
    encode_lines,
    read_run_file,
    write_atomic,
    write_new,
)
from ideaforge.app.batch.manifest import card, is_current, manifest_line
from ideaforge.errors import InputError

__all__ = ["Recovering", "Recovery", "read_manifest", "record_of"]

_OUR_PREFIX = b'{"file_name": '  # how every line ideaforge writes begins (json.dumps of a `manifest_line`)


@dataclass
class Recovery:
    """What opening the folder found and repaired."""

    done: set[str] = field(default_factory=set)  # resume keys whose results are complete
    images: int = 0  # image lines kept
    adopted: int = 0  # images saved by an earlier run whose lines were missing, now listed
    removed: int = 0  # images of ideas cut short, deleted so the idea can run again
    dropped_lines: int = 0  # lines without an image, torn or repeated
    temp_files: int = 0  # temporary files of interrupted writes, deleted
    duplicates: int = 0  # repeated images of a complete result (two runs at once), deleted
    foreign_lines: int = 0  # manifest lines that are not ideaforge's, kept as they are


def record_of(path: Path) -> PngRecord | None:
    """The ideaforge record of a PNG, read from its header chunks without decoding the pixels; None when the file
    or its record is missing or damaged (such an image is never adopted)."""
    from PIL import Image, UnidentifiedImageError

    from ideaforge.tools.metadata import RECORD_KEY

    try:
        with Image.open(path) as image:
            text = image.info.get(RECORD_KEY)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    try:
        return PngRecord.from_data(json.loads(text) if isinstance(text, str) else None, source=repr(str(path)))
    except (ValueError, RecursionError, InputError):
        return None



@dataclass
class _Line:
    """One line of `metadata.jsonl` as read back: its bytes, and for ideaforge's lines the parsed object."""

    raw: bytes
    obj: dict[str, Any] | None = None  # None: not ideaforge's, kept byte for byte
    record: PngRecord | None = None
    changed: bool = False  # `obj` was rewritten: written from it, not from `raw`

    @property
    def name(self) -> str:
        return str((self.obj or {}).get("file_name"))

    @property
    def key(self) -> str:
        return str((self.obj or {}).get("key"))

    @property
    def best(self) -> bool:
        return (self.obj or {}).get("best") is True


def _identity(record: PngRecord) -> tuple[int, int, int]:
    """Which image of an idea's result this is: two runs of one idea make equal identities."""
    return (record.round, record.candidate, record.seed)


def read_manifest(out: Path) -> tuple[list[_Line], int, bool]:
    """Every line of the manifest: ideaforge's parsed (with their image's record), the others as bytes; the
    number of torn or unusable lines of ideaforge's left out, and whether the file needs rewriting."""
    try:
        raw = (out / MANIFEST).read_bytes()
    except FileNotFoundError:
        return [], 0, True
    chunks = raw.split(b"\n")
    torn = chunks.pop()  # after the last newline: b"" unless the last write was cut short
    dirty, dropped = bool(torn.strip()), 0
    if torn.strip():
        try:
            whole = isinstance(json.loads(torn), dict)
        except (ValueError, RecursionError):
            whole = False
        if whole or not torn.startswith(_OUR_PREFIX):
            chunks.append(torn)  # only its newline is missing; or not ours: kept as it is

    lines: list[_Line] = []
    for chunk in chunks:
        if not chunk.strip():
            lines.append(_Line(chunk))
            continue
        try:
            obj = json.loads(chunk)
        except (ValueError, RecursionError):
            obj = None
            if chunk.startswith(_OUR_PREFIX):  # a write of ours cut short, then more appended (older versions)
                dirty, dropped = True, dropped + 1
                continue
        name, key = (obj.get("file_name"), obj.get("key")) if isinstance(obj, dict) else (None, None)
        if not (isinstance(name, str) and isinstance(key, str) and isinstance(obj, dict)
                and isinstance(obj.get("best"), bool)) or "/" in name or "\\" in name or name.startswith("."):
            lines.append(_Line(chunk))  # not a line ideaforge writes
            continue
        path = out / name
        if not path.is_file():  # ideaforge's line whose image is gone: the idea runs again
            dirty, dropped = True, dropped + 1
            continue
        record = record_of(path)
        tag = (record.batch or {}) if record is not None else {}
        if tag.get("key") != key:
            lines.append(_Line(chunk))  # the image is not ideaforge's result for that key: the user's line
            continue
        lines.append(_Line(chunk, obj, record))
    return lines, dropped, dirty


class Recovering:
    """The repairs `Store.open()` makes, and the search for this folder's unlisted images (a base of `Store`)."""

    out: Path
    folder_id: str
    done: set[str]
    _files: dict[str, str]  # file name -> key, of every image line
    _identities: dict[str, set[tuple[int, int, int]]]  # key -> its listed images' identities

    def _recover(self) -> Recovery:
        recovery = Recovery()
        for temp in [*self.out.glob(".ideaforge-*.png.tmp"), *self.out.glob(f".{MANIFEST}.*.tmp"),
                     *self.out.glob(f".{FAILURES}.*.tmp"), *self.out.glob(f".{RUN_FILE}.*.tmp"),
                     *self.out.glob(f".{CARD}.*.tmp")]:
            temp.unlink(missing_ok=True)
            recovery.temp_files += 1
        lines, recovery.dropped_lines, dirty = read_manifest(self.out)
        ours = [line for line in lines if line.obj is not None]
        recovery.foreign_lines = sum(1 for line in lines if line.obj is None and line.raw.strip())
        self.folder_id = self._folder_id([line.record for line in ours])
        # One line per image; a result per key needs its best line (lines may be in any order).
        by_key: dict[str, list[_Line]] = {}
        seen: set[str] = set()
        for line in ours:
            if line.name in seen:
                recovery.dropped_lines += 1
                dirty = True
                continue
            seen.add(line.name)
            by_key.setdefault(line.key, []).append(line)
        keep: set[int] = set()  # ids of the _Line objects kept
        delete: list[Path] = []
        for key, group in by_key.items():
            best = next((line for line in group if line.best), None)
            if best is None:  # a torn write: the best line comes last, so the idea was cut short
                recovery.dropped_lines += len(group)
                dirty = True
                continue
            self.done.add(key)
            identities: dict[tuple[int, int, int], _Line] = {}
            for line in [best, *(line for line in group if line is not best)]:
                assert line.record is not None
                ident = _identity(line.record)
                if ident in identities and (line.record.batch or {}).get("folder") == self.folder_id:
                    # A copy of a kept image: two runs of this idea at once. Ideaforge's own copy of a complete
                    # result goes, with its line.
                    delete.append(self.out / line.name)
                    recovery.duplicates += 1
                    dirty = True
                    continue
                if line.best and line is not best:  # a second result's best: still listed, no longer best
                    line.obj, line.changed, dirty = manifest_line(line.record, line.name, False), True, True
                identities.setdefault(ident, line)
                keep.add(id(line))
            self._identities[key] = set(identities)
        kept: list[_Line] = []
        for line in lines:
            if line.obj is None or id(line) in keep:
                if line.obj is not None and not is_current(line.obj) and line.record is not None:
                    line.obj = manifest_line(line.record, line.name, line.best)  # an older version's line
                    line.changed = dirty = True
                kept.append(line)
        for path in delete:
            path.unlink(missing_ok=True)
        listed = {line.name for line in kept if line.obj is not None}
        listed |= self._foreign_names(kept)
        appended: list[dict[str, Any]] = []
        for key, files in self._orphans(listed).items():
            lines_for = self._settle(key, files, recovery)
            appended.extend(lines_for)
        chunks = [json.dumps(line.obj, ensure_ascii=False).encode() if line.changed and line.obj else line.raw
                  for line in kept]
        while chunks and not chunks[-1].strip():
            chunks.pop()
        if dirty or appended or not (self.out / MANIFEST).exists():
            data = b"".join(chunk + b"\n" for chunk in chunks) + encode_lines(appended)
            write_atomic(self.out / MANIFEST, data)
        all_ours = [line.obj for line in kept if line.obj is not None] + appended
        self._files = {str(obj["file_name"]): str(obj["key"]) for obj in all_ours}
        write_new(self.out / CARD, card(MANIFEST).encode("utf-8"))  # a README.md already there is the user's
        recovery.images = len(all_ours)
        recovery.done = set(self.done)
        return recovery

    def _folder_id(self, listed: list[PngRecord | None]) -> str:
        """This folder's id: from run.json; without it, the one most listed images carry; else the one every
        tagged image carries; else a new one."""
        previous = str(read_run_file(self.out).get("folder") or "")
        if previous:
            return previous
        found = Counter(str(r.batch["folder"]) for r in listed if r is not None and r.batch and r.batch.get("folder"))
        if not found:
            tags = {str(r.batch["folder"]) for r in (record_of(p) for p in self.out.glob("*.png"))
                    if r is not None and r.batch and r.batch.get("folder")}
            if len(tags) == 1:  # more than one: images copied from elsewhere, none of them is surely ours
                return tags.pop()
        return found.most_common(1)[0][0] if found else secrets.token_hex(8)

    @staticmethod
    def _foreign_names(lines: list[_Line]) -> set[str]:
        """The images named by the lines that are not ideaforge's: whatever they are, they stay."""
        names: set[str] = set()
        for line in lines:
            if line.obj is None and line.raw.strip():
                try:
                    obj = json.loads(line.raw)
                except (ValueError, RecursionError):
                    continue
                if isinstance(obj, dict) and isinstance(obj.get("file_name"), str):
                    names.add(obj["file_name"])
        return names

    def _settle(self, key: str, files: list[tuple[Path, PngRecord]], recovery: Recovery) -> list[dict[str, Any]]:
        """What becomes of this folder's unlisted images of `key`: the lines to append for them (the others are
        deleted as copies or remnants)."""
        if key in self.done:
            listed = self._identities.setdefault(key, set())
            out = []
            for path, record in files:
                if _identity(record) in listed:  # a copy of a listed image: a second run of a done idea
                    path.unlink(missing_ok=True)
                    recovery.duplicates += 1
                    continue
                try:
                    PngRecord.from_png(path)
                except InputError:
                    continue  # unreadable: not listed, not deleted
                listed.add(_identity(record))
                out.append(manifest_line(record, path.name, False))  # its line was lost: listed again
            recovery.adopted += len(out)
            return out
        adopted = self._adoptable(files)
        if adopted is None:
            for path, _ in files:
                path.unlink(missing_ok=True)
            recovery.removed += len(files)
            return []
        self.done.add(key)
        self._identities[key] = {_identity(record) for _, record in files}
        recovery.adopted += len(adopted)
        return adopted

    def _orphans(self, listed: set[str]) -> dict[str, list[tuple[Path, PngRecord]]]:
        """This folder's tagged images that no kept line lists, by resume key."""
        found: dict[str, list[tuple[Path, PngRecord]]] = {}
        for path in sorted(self.out.glob("*.png")):
            if path.name in listed:
                continue
            record = record_of(path)
            tag = record.batch if record is not None else None
            if record is not None and tag and tag.get("folder") == self.folder_id and isinstance(tag.get("key"), str):
                found.setdefault(tag["key"], []).append((path, record))
        return found

    @staticmethod
    def _adoptable(files: list[tuple[Path, PngRecord]]) -> list[dict[str, Any]] | None:
        """Lines for images that form a whole result by themselves, else None.

        Only a run without the critic is whole from its images alone: `images` says how many it makes, and the
        best is the first (lowest seed) image. With the critic, whether more rounds would follow is unknown.
        """
        tag = files[0][1].batch or {}
        expected, first_seed = tag.get("images"), tag.get("seed")
        if not isinstance(expected, int) or len(files) != expected:
            return None
        try:
            for path, _ in files:
                PngRecord.from_png(path)  # decodes the pixels: only whole, readable images are adopted
        except InputError:
            return None
        best = [i for i, (_, record) in enumerate(files) if record.seed == first_seed]
        if len(best) != 1:
            return None
        order = [i for i in range(len(files)) if i != best[0]] + best  # the best line closes the group
        return [manifest_line(files[i][1], files[i][0].name, i == best[0]) for i in order]
