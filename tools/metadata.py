"""PNG metadata and file names: A1111's `parameters` text, ideaforge's JSON record, safe unique saving.

Every image ideaforge writes carries two text chunks:

- `parameters`: the AUTOMATIC1111 "infotext" (prompt line, `Negative prompt:` line, then
  `Steps: 30, Sampler: Euler a, CFG scale: 7.5, Seed: 7, Size: 512x512, Model: ...`), quoted by A1111's rules, so
  A1111, ComfyUI-style readers and `sd-parsers` read our images. The prompts there are written on one line with
  runs of whitespace collapsed to one space, which is exactly what CLIP's tokenizer sees anyway.
- `ideaforge`: the full JSON record (exact prompts, spec, engine, model, LoRAs, scores, package versions), from
  which `ideaforge generate --from IMAGE.png` reproduces the image. Keys that name secrets are never written.

Example:
    >>> text = a1111_parameters("a red kitten", "blurry", steps=1, sampler="Euler a", cfg_scale=0.0, seed=7,
    ...                         width=512, height=512, model="stabilityai/sd-turbo")
    >>> parse_a1111_parameters(text)["seed"]
    7
"""

from __future__ import annotations

import functools
import json
import os
import platform
import re
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from ideaforge.errors import InputError
from ideaforge.tools.sanitize import safe

A1111_KEY = "parameters"
RECORD_KEY = "ideaforge"
NEGATIVE_PREFIX = "Negative prompt:"

# A1111's own pattern for one `Key: value` item of the last line (modules/infotext_utils.py).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_EXTRA_KEY = re.compile(r"\w[\w \-/]*\w")
_FIXED_KEYS = ("Steps", "Sampler", "CFG scale", "Seed", "Size", "Model")
_SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|passw(or)?d|authori[sz]ation|credentials?|(^|[_-])token)$", re.IGNORECASE
)


# --- A1111 parameters ---------------------------------------------------------------------------------------


def _quote(value: Any) -> str:
    """A1111's rule (JSON-quote a value holding ',', ':' or a newline), plus the cases its reader would change."""
    text = _number(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ",:\n\r") or text.startswith('"') or text != text.strip() or not text:
        return json.dumps(text, ensure_ascii=False)
    return text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return text
        return value if isinstance(value, str) else text
    return text


def _number(value: float) -> str:
    """7.0 -> '7', 7.5 -> '7.5'; exact (repr) otherwise, so the value reads back unchanged."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def a1111_parameters(
    positive: str,
    negative: str,
    *,
    steps: int,
    sampler: str,
    cfg_scale: float,
    seed: int,
    width: int,
    height: int,
    model: str,
    extra: dict[str, Any] | None = None,
) -> str:
    """The A1111 infotext for one image. `extra` adds `Key: value` items (None values are left out).

    A positive prompt that itself starts with "Negative prompt:" cannot be told apart by any A1111 reader; the
    ideaforge JSON record keeps it exactly.
    """
    fields: dict[str, Any] = {
        "Steps": int(steps),
        "Sampler": sampler,
        "CFG scale": _number(cfg_scale),
        "Seed": int(seed),
        "Size": f"{int(width)}x{int(height)}",
        "Model": model,
    }
    for key, value in (extra or {}).items():
        if not _EXTRA_KEY.fullmatch(key) or key in fields:
            raise InputError(
                f"parameters key {key!r} is invalid: use letters, digits, spaces, '-' or '/', not one of "
                f"{', '.join(_FIXED_KEYS)}"
            )
        if value is not None:
            fields[key] = value
    line = ", ".join(f"{key}: {_quote(value)}" for key, value in fields.items() if value not in (None, ""))
    negative_line = f"\n{NEGATIVE_PREFIX} {_one_line(negative)}" if negative.strip() else ""
    return f"{_one_line(positive)}{negative_line}\n{line}".strip()


def parse_a1111_parameters(text: str) -> dict[str, Any]:
    """Read an A1111 infotext as A1111 does.

    Returns:
        {"prompt", "negative_prompt", "steps", "sampler", "cfg_scale", "seed", "width", "height", "model",
        "extra"}: typed values (None when absent or unreadable) and `extra`, every other item as text.
    """
    *lines, last = text.strip().split("\n")
    if len(_PARAM.findall(last)) < 3:  # no parameters line: everything is prompt
        lines.append(last)
        last = ""
    prompt, negative, in_negative = "", "", False
    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX) :].strip()
        if in_negative:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    items = {key: _unquote(value) for key, value in _PARAM.findall(last)}

    def take(key: str, convert: Any) -> Any:
        if key not in items:
            return None
        try:
            return convert(items.pop(key))
        except ValueError:
            return None

    size = _SIZE.match(items.get("Size", ""))
    if size:
        items.pop("Size")
    return {
        "prompt": prompt,
        "negative_prompt": negative,
        "steps": take("Steps", int),
        "sampler": items.pop("Sampler", None),
        "cfg_scale": take("CFG scale", float),
        "seed": take("Seed", int),
        "width": int(size.group(1)) if size else None,
        "height": int(size.group(2)) if size else None,
        "model": items.pop("Model", None),
        "extra": items,
    }


# --- records ------------------------------------------------------------------------------------------------


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that decide the pixels, for the record (looked up once)."""
    return dict(_package_versions())


@functools.lru_cache(maxsize=1)
def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in ("ideaforge", "torch", "diffusers", "transformers", "peft", "pillow"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def _scrub(value: Any) -> Any:
    """Drop entries whose key names a secret and secret-typed values; redact secrets and control characters."""
    if isinstance(value, dict):
        return {
            safe(str(k)): _scrub(v)
            for k, v in value.items()
            if not _SECRET_KEY.search(str(k)) and type(v).__name__ not in ("SecretStr", "SecretBytes")
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, str):
        return safe(value)
    return value


MAX_SLUG_BYTES = 120  # file names are limited in bytes (255 on most file systems), and CJK characters take 3 to 4


def slugify(text: str, max_len: int = 60, max_bytes: int = MAX_SLUG_BYTES) -> str:
    """A file-name-safe slug: lower-case letters and digits (any script) joined by '-', at most `max_len`
    characters and `max_bytes` bytes of UTF-8, so `<slug>-<seed>-<n>.png` always fits a file name.

    Never contains a path separator, a dot or a control character; "image" when nothing is left.

    Example:
        >>> slugify("../../etc/passwd"), slugify("A Red Kitten, in a basket!")
        ('etc-passwd', 'a-red-kitten-in-a-basket')
    """
    words = re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", text).lower())

    def fits(candidate: str) -> bool:
        return len(candidate) <= max_len and len(candidate.encode("utf-8")) <= max_bytes

    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if not fits(candidate):
            break
        slug = candidate
    if not slug and words:
        slug = words[0]
        while slug and not fits(slug):
            slug = slug[:-1]
    return slug or "image"


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


def fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (best effort where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows, where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_png(
    image: Any,
    out_dir: str | os.PathLike[str],
    *,
    idea: str,
    seed: int,
    parameters: str,
    record: dict[str, Any],
) -> Path:
    """Write `image` as `<out_dir>/<slug of idea>-<seed>.png` with both metadata chunks; returns the path.

    The file is written to a temporary name, fsynced, then linked to its final name, so readers never see half a
    PNG and an existing file is never overwritten: a taken name gets `-2`, `-3`, ... The name comes only from
    `slugify(idea)` and the seed, so no idea can place a file outside `out_dir`. The record is stored without
    secret-named keys, with `versions` added when missing.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> folder = Path(tempfile.mkdtemp())
        >>> first = save_png(Image.new("RGB", (8, 8)), folder, idea="a red kitten", seed=7, parameters="a red kitten",
        ...                  record={"idea": "a red kitten", "api_key": "never stored"})
        >>> again = save_png(Image.new("RGB", (8, 8)), folder, idea="a red kitten", seed=7, parameters="a red kitten",
        ...                  record={"idea": "a red kitten"})
        >>> first.name, again.name, sorted(read_record(first)["ideaforge"])
        ('a-red-kitten-7.png', 'a-red-kitten-7-2.png', ['idea', 'versions'])
    """
    from PIL.PngImagePlugin import PngInfo

    root = Path(out_dir).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    stem = f"{slugify(idea)}-{int(seed)}"
    record = _scrub(dict(record))
    if "versions" not in record:
        record["versions"] = package_versions()
    info = PngInfo()
    info.add_text(A1111_KEY, safe(parameters, keep_newlines=True))
    info.add_text(RECORD_KEY, json.dumps(record, ensure_ascii=False, default=str), zip=True)

    fd, temp_name = tempfile.mkstemp(prefix=".ideaforge-", suffix=".png.tmp", dir=root)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="PNG", pnginfo=info)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        for attempt in range(1, 100_000):
            target = root / (f"{stem}.png" if attempt == 1 else f"{stem}-{attempt}.png")
            if target.parent != root:  # slugify guarantees this; checked so no future change can break it
                raise InputError(f"file name {target.name!r} would leave the output folder {str(root)!r}")
            if link_new(temp, target):
                fsync_dir(root)
                return target
        raise InputError(f"too many images named {stem}-*.png in {str(root)!r}; use another --out folder")
    finally:
        temp.unlink(missing_ok=True)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Both metadata chunks of an image: {"parameters": str | None, "ideaforge": dict | None}.

    Example:
        >>> read_record("no/such/image.png")
        Traceback (most recent call last):
        ...
        ideaforge.errors.InputError: image 'no/such/image.png' does not exist; pass the path of a PNG that ideaforge wrote
    """
    from PIL import Image, UnidentifiedImageError

    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"image {str(path)!r} does not exist; pass the path of a PNG that ideaforge wrote")
    try:
        with Image.open(file) as image:
            image.load()  # text chunks after the image data are read only now
            text = dict(getattr(image, "text", None) or {})
            text.update({k: v for k, v in image.info.items() if isinstance(v, str) and k not in text})
    except Image.DecompressionBombError:
        raise InputError(
            f"image {str(path)!r} declares more pixels than is safe to decode; it is not an image ideaforge wrote"
        ) from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise InputError(f"image {str(path)!r} is not a readable image ({exc}); pass a PNG") from None
    record = text.get(RECORD_KEY)
    if record is not None:
        try:
            record = json.loads(record)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"image {str(path)!r} has a damaged ideaforge record (invalid JSON: {exc})"
            ) from None
    return {"parameters": text.get(A1111_KEY), "ideaforge": record if isinstance(record, dict) else None}
