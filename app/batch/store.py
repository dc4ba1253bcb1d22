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
  are in place and have been read back; the line's values come from the PNG's own record. A write that fails
  (the disk is full) is cut back to where it began, and the run stops with `DiskFull`.
- An idea counts as done when its lines include its `best` line, wherever it is (the file may have been
  sorted): a write torn by a kill leaves a group without it, since the best line is written last, and such a
  group is dropped on resume.
- No image without its line: every PNG ideaforge batch writes carries a tag (`batch` in its record) with the
  folder's id and the idea's resume key. On resume, a tagged image without a line either completes a result on
  its own (critique off, all its images present): it is adopted and its lines are appended; or it belongs to
  a result that is complete already (its line was deleted): it is listed again; or it repeats an image that is
  listed (two runs at once): it is deleted; or it is the remnant of an idea cut short: it is deleted and the
  idea runs again. The folder's id is in `run.json` and, when that is gone, in the tags of the listed images.
- Nothing of the user's is touched: files without this folder's tag are never deleted, and manifest lines that
  are not ideaforge's (no resume key, or an image without ideaforge's tag for that key) are kept byte for byte.
- No duplicates: one line per image, one result per resume key; a key whose lines are complete is skipped.

One batch at a time writes to a folder: an advisory lock on the folder itself (not on a file in it, which a
user could delete).
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ideaforge.agent.record import PngRecord
from ideaforge.app.batch.manifest import card, is_current, manifest_line
from ideaforge.errors import InputError
from ideaforge.tools.metadata import fsync_dir

__all__ = ["CARD", "FAILURES", "MANIFEST", "RUN_FILE", "DiskFull", "Recovery", "Store", "disk_full_cause",
           "manifest_line", "write_atomic"]

MANIFEST = "metadata.jsonl"
FAILURES = "failures.jsonl"
RUN_FILE = "run.json"
CARD = "README.md"  # the dataset card, written once and never overwritten (see ideaforge.app.batch.manifest)
LOCK_FILE = ".ideaforge-batch.lock"  # what earlier versions locked; the folder itself is locked now
TAG = "batch"  # the key of the batch tag inside each PNG's ideaforge record
_OUR_PREFIX = b'{"file_name": '  # how every line ideaforge writes begins (json.dumps of a `manifest_line`)
_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(InputError):
    """The disk holding the output folder is full. What was written before is whole: the run resumes."""


def disk_full_cause(exc: BaseException | None) -> OSError | None:
    """The OSError saying "no space left" (or "quota exceeded") behind `exc`, following causes; else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


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


def _encode(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_temp(path: Path, data: bytes) -> Path:
    """`data` in a new fsynced temporary file beside `path`; nothing is left behind when that fails."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data`: temporary file, fsync, rename. A kill or a full disk leaves the old or the new
    file, never a part."""
    temp = _write_temp(path, data)
    try:
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
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
    except (ValueError, RecursionError, InputError):
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
    if path.exists():
        return False
    temp = _write_temp(path, data)
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
        except (ValueError, RecursionError):
            dirty = True
            continue
        if isinstance(obj, dict):
            out.append(obj)
        else:
            dirty = True
    return out, dirty


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


def _read_manifest(out: Path) -> tuple[list[_Line], int, bool]:
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
        record = _record_of(path)
        tag = (record.batch or {}) if record is not None else {}
        if tag.get("key") != key:
            lines.append(_Line(chunk))  # the image is not ideaforge's result for that key: the user's line
            continue
        lines.append(_Line(chunk, obj, record))
    return lines, dropped, dirty


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
        self.need_bytes = 8 << 20  # roughly what the next step writes: the DiskFull message asks for this
        self.added: list[str] = []  # file names this run listed
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._fds: dict[str, int] = {}
        self._files: dict[str, str] = {}  # file name -> key, of every image line
        self._identities: dict[str, set[tuple[int, int, int]]] = {}  # key -> its listed images' identities
        self._before: dict[str, bytes | None] = {}  # the files as they were before open(), for `undo`
        self._made_folder = False
        self.done: set[str] = set()

    # -- the full disk -------------------------------------------------------------------------------------
    def disk_full(self) -> DiskFull:
        """The error for a full disk: the folder, the space left, roughly what the next step needs."""
        try:
            free = _size(shutil.disk_usage(self.out if self.out.exists() else self.out.parent).free)
        except OSError:
            free = "unknown"
        return DiskFull(
            f"the disk holding {str(self.out)!r} is full ({free} free); free at least {_size(self.need_bytes)} "
            "there and run the same command again: what is written is whole, and the batch resumes"
        )

    @contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if disk_full_cause(exc) is None:
                raise
            raise self.disk_full() from None

    # -- opening and recovery -------------------------------------------------------------------------------
    def open(self) -> Recovery:
        """Lock the folder, finish or undo what an interrupted run left, and return what is already done.

        Raises:
            InputError: the folder cannot be used, or another batch is writing to it.
            DiskFull: a repair cannot be written.
        """
        try:
            self._made_folder = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            self._take_lock()
        except OSError as exc:
            if disk_full_cause(exc) is not None:
                raise self.disk_full() from None
            raise InputError(f"cannot use {str(self.out)!r} as the output folder: {exc.strerror or exc}") from None
        for name in (RUN_FILE, FAILURES, MANIFEST, CARD):
            try:
                self._before[name] = (self.out / name).read_bytes()
            except OSError:
                self._before[name] = None
        with self._writing():
            return self._recover()

    def _recover(self) -> Recovery:
        recovery = Recovery()
        for temp in [*self.out.glob(".ideaforge-*.png.tmp"), *self.out.glob(f".{MANIFEST}.*.tmp"),
                     *self.out.glob(f".{FAILURES}.*.tmp"), *self.out.glob(f".{RUN_FILE}.*.tmp"),
                     *self.out.glob(f".{CARD}.*.tmp")]:
            temp.unlink(missing_ok=True)
            recovery.temp_files += 1
        lines, recovery.dropped_lines, dirty = _read_manifest(self.out)
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
            data = b"".join(chunk + b"\n" for chunk in chunks) + _encode(appended)
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
        previous = str(self.read_run().get("folder") or "")
        if previous:
            return previous
        found = Counter(str(r.batch["folder"]) for r in listed if r is not None and r.batch and r.batch.get("folder"))
        if not found:
            tags = {str(r.batch["folder"]) for r in (_record_of(p) for p in self.out.glob("*.png"))
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

    def adopt_complete(self) -> list[str]:
        """List this folder's unlisted images that form a whole result (after an interrupted run); deletes
        nothing. Returns their file names."""
        with self._lock, self._writing():
            names: list[str] = []
            for key, files in self._orphans(set(self._files)).items():
                if key in self.done:
                    continue
                lines = self._adoptable(files)
                if lines is None:
                    continue
                self._append(MANIFEST, lines)
                self.done.add(key)
                self._files.update({line["file_name"]: key for line in lines})
                names += [line["file_name"] for line in lines]
            return names

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
        """Lock the folder itself, through a descriptor of it: no file a user could delete holds the lock."""
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; one run per folder is then up to the user
            return
        fd = os.open(self.out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"another ideaforge batch is writing to {str(self.out)!r}; wait for it or use another --out"
            ) from None
        except OSError:  # a file system without locks (some network mounts): one run at a time is the user's
            os.close(fd)
            return
        self._lock_fd = fd

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the lock
            self._lock_fd = None

    def undo(self) -> None:
        """Put back what `open()` and this run changed, for a run that failed before listing any image: files it
        created are removed, run.json and failures.jsonl get their old bytes, a folder it created goes if empty.
        Repairs of the manifest stay (they are what the next run would do); nothing else is touched."""
        for name, before in self._before.items():
            path = self.out / name
            try:
                if before is None and name == MANIFEST and path.exists() and path.stat().st_size > 0:
                    continue  # lines adopted by the repair: kept
                if before is None:
                    path.unlink(missing_ok=True)
                elif name in (RUN_FILE, FAILURES) and path.read_bytes() != before:
                    write_atomic(path, before)
            except OSError:
                pass  # best effort: what stays is still a consistent folder
        if self._made_folder:
            try:
                self.out.rmdir()
            except OSError:
                pass

    # -- results --------------------------------------------------------------------------------------------
    def tag(self, key: str, line: int, seed: int, images: int | None) -> dict[str, Any]:
        """The tag for each PNG record of an idea (`images`: how many make it whole; None with the critic)."""
        return {TAG: {"folder": self.folder_id, "key": key, "line": line, "seed": seed, "images": images}}

    def add(self, key: str, images: list[tuple[Path, bool]]) -> list[dict[str, Any]]:
        """List one idea's saved images (path, is_best); the lines are built from the PNGs' own records.

        Raises:
            InputError: an image cannot be read back; nothing is listed then.
            DiskFull: the line cannot be written; nothing is listed then.
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
            self.added += [line["file_name"] for line in lines]
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
            with self._writing():
                write_atomic(self.out / FAILURES, _encode(keep))

    def _append(self, name: str, lines: list[dict[str, Any]]) -> None:
        """Append `lines` in one write; a write that fails is cut back, so the file never holds a part."""
        with self._writing():
            fd = self._fds.get(name)
            if fd is None:
                fd = self._fds[name] = os.open(self.out / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            start = os.fstat(fd).st_size
            try:
                _write_all(fd, _encode(lines))
                os.fsync(fd)
            except BaseException:
                try:
                    os.ftruncate(fd, start)
                except OSError:
                    pass  # a torn tail is dropped by the next open
                raise

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
        except (OSError, ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_run(self, data: dict[str, Any]) -> None:
        data = {"folder": self.folder_id, **data}
        text = json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
        with self._writing():
            write_atomic(self.out / RUN_FILE, text.encode("utf-8"))
