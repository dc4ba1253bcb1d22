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

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ideaforge.agent.record import PngRecord
from ideaforge.app.batch.files import (
    CARD,
    FAILURES,
    LOCK_FILE,
    MANIFEST,
    RUN_FILE,
    TAG,
    DiskFull,
    append_all,
    disk_full_cause,
    encode_lines,
    human_size,
    read_jsonl,
    read_run_file,
    write_atomic,
    write_new,
)
from ideaforge.app.batch.manifest import manifest_line
from ideaforge.app.batch.recovery import Recovering, Recovery
from ideaforge.errors import InputError
from ideaforge.tools.metadata import link_new

__all__ = ["CARD", "FAILURES", "LOCK_FILE", "MANIFEST", "RUN_FILE", "TAG", "DiskFull", "Recovery", "Store",
           "disk_full_cause", "link_new", "manifest_line", "write_atomic", "write_new"]


class Store(Recovering):
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
            free = human_size(shutil.disk_usage(self.out if self.out.exists() else self.out.parent).free)
        except OSError:
            free = "unknown"
        return DiskFull(
            f"the disk holding {str(self.out)!r} is full ({free} free); free at least {human_size(self.need_bytes)} "
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
        entries, _ = read_jsonl(self.out / FAILURES)
        keep = [e for e in entries
                if isinstance(e.get("key"), str) and e["key"] not in keys and e["key"] not in self.done]
        if keep != entries or (self.out / FAILURES).exists():
            with self._writing():
                write_atomic(self.out / FAILURES, encode_lines(keep))

    def _append(self, name: str, lines: list[dict[str, Any]]) -> None:
        """Append `lines` in one write; a write that fails is cut back, so the file never holds a part."""
        with self._writing():
            fd = self._fds.get(name)
            if fd is None:
                fd = self._fds[name] = os.open(self.out / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            append_all(fd, encode_lines(lines))

    def remove_unlisted(self, key: str) -> int:
        """Delete this folder's images of `key` that no line lists (left by an idea that failed midway)."""
        orphans = self._orphans(set(self._files)).get(key, [])
        for path, _ in orphans:
            path.unlink(missing_ok=True)
        return len(orphans)

    # -- run.json -------------------------------------------------------------------------------------------
    def read_run(self) -> dict[str, Any]:
        return read_run_file(self.out)

    def write_run(self, data: dict[str, Any]) -> None:
        data = {"folder": self.folder_id, **data}
        text = json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"
        with self._writing():
            write_atomic(self.out / RUN_FILE, text.encode("utf-8"))
