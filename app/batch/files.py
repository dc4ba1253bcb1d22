"""The files of a batch output folder and how they are written: whole or not at all, even on a full disk.

Every write here is atomic: a new file is written beside its target, fsynced and renamed (`write_atomic`) or
linked (`write_new`, which never replaces a file); an append (`append_all`) is one write, cut back to where it
began when it fails. An OSError saying "no space left" (or "quota exceeded") behind any of them becomes
`DiskFull` in `ideaforge.app.batch.store.Store`.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError
from ideaforge.tools.metadata import fsync_dir, link_new

__all__ = ["CARD", "FAILURES", "LOCK_FILE", "MANIFEST", "RUN_FILE", "TAG", "DiskFull", "append_all",
           "disk_full_cause", "encode_lines", "human_size", "read_jsonl", "read_run_file", "write_atomic",
           "write_new"]

MANIFEST = "metadata.jsonl"
FAILURES = "failures.jsonl"
RUN_FILE = "run.json"
CARD = "README.md"  # the dataset card, written once and never overwritten (see ideaforge.app.batch.manifest)
LOCK_FILE = ".ideaforge-batch.lock"  # what earlier versions locked; the folder itself is locked now
TAG = "batch"  # the key of the batch tag inside each PNG's ideaforge record
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


def human_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def encode_lines(lines: list[dict[str, Any]]) -> bytes:
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


def append_all(fd: int, data: bytes) -> None:
    """Append `data` to the file open at `fd` in one write and fsync it; a write that fails is cut back to where
    it began, so the file never holds a part."""
    start = os.fstat(fd).st_size
    try:
        _write_all(fd, data)
        os.fsync(fd)
    except BaseException:
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass  # a torn tail is dropped by the next open
        raise


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


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], bool]:
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


def read_run_file(out: Path) -> dict[str, Any]:
    """The settings of the folder's latest run (`run.json`); {} when it is missing or damaged."""
    try:
        data = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
