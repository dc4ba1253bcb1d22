"""The output folder of `ideaforge batch`, and what keeps it whole when a run is killed at any moment.

The folder holds the PNGs, `metadata.jsonl` (one line per image, in the Hugging Face `imagefolder` convention:
`file_name`, `text` = the idea, then prompt, negative, seed, scores, attempt, ..., the same columns and types
whatever the options: see `ideaforge.app.batch.manifest`), `README.md` (a dataset card declaring those
features, written only when the folder has none), `failures.jsonl` (one line per idea that failed, with the
error) and `run.json` (settings and versions of the latest run). Failures live
in their own file because `imagefolder` resolves every `file_name` of `metadata.jsonl`, and a failed idea has
no image.

Invariants, and how they hold:

- No half-written PNG: `ideaforge.tools.metadata.save_png` writes a temporary file, fsyncs it and links it to its final
  name.
- No manifest line without its image: an idea's lines are appended, in one write, only after all its images
  are in place and have been read back; the line's values come from the PNG's own record.
- An idea counts as done only when its group of lines ends with its `best` line: a write torn by a kill leaves
  a group without it, and the group is dropped on resume.
- No image without its line: every PNG ideaforge batch writes carries a tag (`batch` in its record) with the
  folder's id and the idea's resume key. On resume, a tagged image without a line either completes a result on
  its own (critique off, all its images present): it is adopted and its lines are appended; or it is the
  remnant of an idea cut short: it is deleted and the idea runs again. Files without this folder's tag are
  never touched.
- No duplicates: a key whose lines are complete is skipped; stray copies of its images are removed.

One batch at a time writes to a folder (an advisory lock on `.ideaforge-batch.lock`).
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.record import PngRecord
from ideaforge.app.batch.manifest import card, is_current, manifest_line
from ideaforge.errors import InputError
from ideaforge.tools.metadata import fsync_dir

__all__ = ["CARD", "FAILURES", "MANIFEST", "RUN_FILE", "Recovery", "Store", "manifest_line", "write_atomic"]

MANIFEST = "metadata.jsonl"
FAILURES = "failures.jsonl"
RUN_FILE = "run.json"
CARD = "README.md"  # the dataset card, written once and never overwritten (see ideaforge.app.batch.manifest)
LOCK_FILE = ".ideaforge-batch.lock"
TAG = "batch"  # the key of the batch tag inside each PNG's ideaforge record


@dataclass
class Recovery:
    """What opening the folder found and repaired."""

    done: set[str] = field(default_factory=set)  # resume keys whose results are complete
    images: int = 0  # image lines kept
    adopted: int = 0  # images saved by an earlier run whose lines were missing, now listed
    removed: int = 0  # images of ideas cut short, deleted so the idea can run again
    dropped_lines: int = 0  # lines without an image, torn or repeated
    temp_files: int = 0  # temporary files of interrupted writes, deleted


def _encode(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temporary file, fsync, rename. A kill leaves the old or the new file."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_dir(path.parent)


def _record_of(path: Path) -> PngRecord | None:
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
    except (json.JSONDecodeError, InputError):
        return None


def link_new(temp: Path, target: Path) -> bool:
    """Give the file `temp` also the name `target` unless that name exists (then False); never overwrites."""
    try:
        os.link(temp, target)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system: reserve the name exclusively, then move onto it
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            return False
        os.replace(temp, target)
        return True


def write_new(path: Path, data: bytes) -> bool:
    """Create `path` with `data` unless it exists (then False: whatever is there is kept). Atomic, like
    `write_atomic`, but it never replaces a file."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        placed = link_new(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    if placed:
        fsync_dir(path.parent)
    return placed


def _read_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """Parsed object lines, and whether the file needs rewriting (a torn or bad line, no final newline)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], False
    out: list[dict[str, Any]] = []
    dirty = bool(raw) and not raw.endswith(b"\n")
    for chunk in raw.split(b"\n"):
        if not chunk.strip():
            continue
        try:
            obj = json.loads(chunk)
        except (json.JSONDecodeError, UnicodeDecodeError):
            dirty = True
            continue
        if isinstance(obj, dict):
            out.append(obj)
        else:
            dirty = True
    return out, dirty


class Store:
    """One batch output folder. `open()` locks and repairs it; `add` and `fail` record results as they come.

    Example:
        >>> store = Store("out")  # doctest: +SKIP
        >>> recovery = store.open()  # doctest: +SKIP
        >>> "3f2a..." in recovery.done  # doctest: +SKIP
    """

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out).expanduser()
        self.folder_id = ""
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._fds: dict[str, int] = {}
        self._files: dict[str, str] = {}  # file name -> key, of every image line
        self.done: set[str] = set()

    # -- opening and recovery -------------------------------------------------------------------------------
    def open(self) -> Recovery:
        """Lock the folder, finish or undo what an interrupted run left, and return what is already done."""
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        except OSError as exc:
            raise InputError(f"cannot use {str(self.out)!r} as the output folder: {exc.strerror or exc}") from None
        previous = self.read_run()
        self.folder_id = str(previous.get("folder") or secrets.token_hex(8))
        recovery = Recovery()
        for temp in [*self.out.glob(".ideaforge-*.png.tmp"), *self.out.glob(f".{MANIFEST}.*.tmp"),
                     *self.out.glob(f".{FAILURES}.*.tmp"), *self.out.glob(f".{RUN_FILE}.*.tmp"), *self.out.glob(f".{CARD}.*.tmp")]:
            temp.unlink(missing_ok=True)
            recovery.temp_files += 1
        lines, dirty = _read_jsonl(self.out / MANIFEST)
        groups: dict[str, list[dict[str, Any]]] = {}
        seen: set[str] = set()
        for line in lines:
            name, key = line.get("file_name"), line.get("key")
            if not isinstance(name, str) or not isinstance(key, str) or name in seen or not (self.out / name).is_file():
                recovery.dropped_lines += 1
                continue
            seen.add(name)
            if not is_current(line):  # written by an older version: the same line in today's columns
                record = _record_of(self.out / name)
                if record is not None:
                    line = manifest_line(record, name, line.get("best") is True)
                    dirty = True
            groups.setdefault(key, []).append(line)
        kept: list[dict[str, Any]] = []
        for key, group in groups.items():
            if group[-1].get("best") is True:  # the best line closes a group; without it the write was torn
                kept.extend(group)
                self.done.add(key)
            else:
                recovery.dropped_lines += len(group)
        listed = {line["file_name"] for line in kept}
        orphans = self._orphans(listed)
        for key, files in orphans.items():
            adopted = self._adoptable(files) if key not in self.done else None
            if adopted is None:
                for path, _ in files:
                    path.unlink(missing_ok=True)
                recovery.removed += len(files)
            else:
                kept.extend(adopted)
                self.done.add(key)
                recovery.adopted += len(adopted)
        if dirty or recovery.dropped_lines or recovery.adopted or not (self.out / MANIFEST).exists():
            write_atomic(self.out / MANIFEST, _encode(kept))
        self._files = {line["file_name"]: line["key"] for line in kept}
        write_new(self.out / CARD, card(MANIFEST).encode("utf-8"))  # a README.md already there is the user's
        recovery.images = len(kept)
        recovery.done = set(self.done)
        return recovery

    def _orphans(self, listed: set[str]) -> dict[str, list[tuple[Path, PngRecord]]]:
        """This folder's tagged images that no kept line lists, by resume key."""
        found: dict[str, list[tuple[Path, PngRecord]]] = {}
        for path in sorted(self.out.glob("*.png")):
            if path.name in listed:
                continue
            record = _record_of(path)
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

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run per folder is then up to the user
            return
        fd = os.open(self.out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"another ideaforge batch is writing to {str(self.out)!r}; wait for it or use another --out"
            ) from None
        self._lock_fd = fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None

    # -- results --------------------------------------------------------------------------------------------
    def tag(self, key: str, line: int, seed: int, images: int | None) -> dict[str, Any]:
        """The tag for each PNG record of an idea (`images`: how many make it whole; None with the critic)."""
        return {TAG: {"folder": self.folder_id, "key": key, "line": line, "seed": seed, "images": images}}

    def add(self, key: str, images: list[tuple[Path, bool]]) -> list[dict[str, Any]]:
        """List one idea's saved images (path, is_best); the lines are built from the PNGs' own records.

        Raises:
            InputError: an image cannot be read back; nothing is listed then.
        """
        lines = []
        for path, best in sorted(images, key=lambda item: item[1]):  # the best line last: it closes the group
            lines.append(manifest_line(PngRecord.from_png(path), path.name, best))
        if sum(line["best"] for line in lines) != 1:
            raise InputError(f"an idea's images must include exactly one best image, got {len(lines)} images")
        with self._lock:
            self._append(MANIFEST, lines)
            self.done.add(key)
            self._files.update({line["file_name"]: key for line in lines})
        return lines

    def fail(self, *, idea: str | None, line: int, key: str | None, stage: str, error: str) -> dict[str, Any]:
        """Record one failed idea in `failures.jsonl`."""
        entry = {"text": idea, "line": line, "key": key, "stage": stage, "error": error}
        with self._lock:
            self._append(FAILURES, [entry])
        return entry

    def reset_failures(self, keys: set[str]) -> None:
        """Forget earlier failures of the ideas this run retries, and of bad rows (they are checked again)."""
        entries, _ = _read_jsonl(self.out / FAILURES)
        keep = [e for e in entries
                if isinstance(e.get("key"), str) and e["key"] not in keys and e["key"] not in self.done]
        if keep != entries or (self.out / FAILURES).exists():
            write_atomic(self.out / FAILURES, _encode(keep))

    def _append(self, name: str, lines: list[dict[str, Any]]) -> None:
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.out / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        _write_all(fd, _encode(lines))
        os.fsync(fd)

    def remove_unlisted(self, key: str) -> int:
        """Delete this folder's images of `key` that no line lists (left by an idea that failed midway)."""
        orphans = self._orphans(set(self._files)).get(key, [])
        for path, _ in orphans:
            path.unlink(missing_ok=True)
        return len(orphans)

    # -- run.json -------------------------------------------------------------------------------------------
    def read_run(self) -> dict[str, Any]:
        try:
            data = json.loads((self.out / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_run(self, data: dict[str, Any]) -> None:
        data = {"folder": self.folder_id, **data}
        text = json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
        write_atomic(self.out / RUN_FILE, text.encode("utf-8"))
