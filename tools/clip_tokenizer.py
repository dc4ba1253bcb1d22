"""The real CLIP tokenizer, built offline from the bundled BPE vocabulary.

Stable Diffusion's text encoders read at most 77 tokens, BOS and EOS included. Counting words is not counting
tokens, so every prompt budget in ideaforge is checked with this tokenizer, or with the loaded diffusion model's
own tokenizer when there is one.

Example:
    >>> count_tokens("a red kitten")  # BOS, three words, EOS
    5
    >>> count_tokens("一只红色小猫") > 6  # byte-level BPE: CJK costs several tokens a character
    True
    >>> tokenizer = load_clip_tokenizer()
    >>> tokenizer("a red kitten")["input_ids"], tokenizer.model_max_length
    ([49406, 320, 736, 13063, 49407], 77)
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tempfile
import threading
import weakref
from collections import OrderedDict
from importlib import resources
from pathlib import Path
from typing import Any

from ideaforge.tools._lazy import LoadOnce, heavy_import

CLIP_MAX_TOKENS = 77
VOCAB_SIZE = 49408
_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable-unicode table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _vocab_and_merges(bpe_gz: bytes) -> tuple[dict[str, int], list[str]]:
    lines = gzip.decompress(bpe_gz).decode("utf-8").split("\n")
    # As in OpenAI CLIP: the first 48,894 merges after the header line, giving 512 + 48,894 + 2 = 49,408 tokens.
    merges = lines[1 : 49152 - 256 - 2 + 1]
    base = list(_bytes_to_unicode().values())
    tokens = base + [t + "</w>" for t in base] + ["".join(m.split()) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    if len(tokens) != VOCAB_SIZE:
        raise RuntimeError(f"CLIP vocabulary has {len(tokens)} tokens, expected {VOCAB_SIZE}")
    return {t: i for i, t in enumerate(tokens)}, merges


def _cache_root() -> Path:
    root = os.environ.get("IDEAFORGE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache"), "ideaforge"
    )
    return Path(root)


def write_clip_tokenizer(directory: str | os.PathLike[str] | None = None) -> Path:
    """Write a CLIP tokenizer folder (vocab.json, merges.txt, configs) and return its path.

    With no directory, a content-addressed folder under the ideaforge cache is used and reused. The folder is
    written to a temporary name and renamed into place, so concurrent callers never see half a tokenizer.
    """
    bpe = resources.files("ideaforge.tools").joinpath("data").joinpath(_BPE_FILE).read_bytes()
    if directory is None:
        digest = hashlib.sha256(bpe).hexdigest()[:16]
        target = _cache_root() / f"clip-tokenizer-{digest}"
        if (target / "tokenizer_config.json").exists():
            return target
    else:
        target = Path(directory)
        if (target / "tokenizer_config.json").exists():
            return target
    vocab, merges = _vocab_and_merges(bpe)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=target.parent))
    (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    # from_pretrained on the two files works across transformers 4 and 5 (whose constructor arguments differ).
    tok = heavy_import("transformers").CLIPTokenizer.from_pretrained(str(tmp), model_max_length=CLIP_MAX_TOKENS)
    tok.save_pretrained(str(tmp))
    try:
        os.replace(tmp, target)
    except OSError:  # another process won the race; its folder is identical
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


_TOKENIZERS: LoadOnce[str | None, Any] = LoadOnce()


def load_clip_tokenizer(directory: str | None = None) -> Any:
    """The CLIP tokenizer (a `transformers.CLIPTokenizer`, 49,408 tokens, model_max_length=77), loaded once per
    folder however many threads ask at once."""
    return _TOKENIZERS.get(directory, lambda: _load_tokenizer(directory))


def _load_tokenizer(directory: str | None) -> Any:
    path = write_clip_tokenizer(directory)
    return heavy_import("transformers").CLIPTokenizer.from_pretrained(str(path), model_max_length=CLIP_MAX_TOKENS)


# Fast tokenizers change their truncation state on each call and are not safe to share between threads.
_COUNT_LOCK = threading.Lock()


# Counts already made, per tokenizer: prompt assembly counts the same texts again and again (fitting terms into
# the budget, then checking the fit), and a pipeline call counts the prompt its spec already counted.
_COUNTS: dict[int, tuple[weakref.ref[Any], OrderedDict[str, int]]] = {}
_COUNTS_PER_TOKENIZER = 4096


def count_tokens(text: str, tokenizer: Any | None = None) -> int:
    """Number of CLIP tokens in `text`, BOS and EOS included, without truncation."""
    tok = tokenizer if tokenizer is not None else load_clip_tokenizer()
    with _COUNT_LOCK:
        entry = _COUNTS.get(id(tok))
        if entry is None or entry[0]() is not tok:  # a new tokenizer (or a new one where a freed one lived)
            entry = (weakref.ref(tok), OrderedDict())
            _COUNTS[id(tok)] = entry
            for key in [k for k, (ref, _) in _COUNTS.items() if ref() is None]:
                del _COUNTS[key]
        counts = entry[1]
        n = counts.get(text)
        if n is None:
            n = len(tok(text, truncation=False, add_special_tokens=True, verbose=False)["input_ids"])
            counts[text] = n
            if len(counts) > _COUNTS_PER_TOKENIZER:
                counts.popitem(last=False)
        else:
            counts.move_to_end(text)
        return n


_COPIES: dict[int, tuple[Any, Any]] = {}
_COPIES_LOCK = threading.Lock()


def counting_copy(tokenizer: Any) -> Any:
    """One private copy of a pipeline's tokenizer per process, for counting prompt tokens.

    The pipeline encodes with its own tokenizer, possibly in another thread; fast tokenizers change their
    truncation/padding state on each call, so sharing one between threads can corrupt a batch. Copying costs
    a few hundred milliseconds, so the copy is made once and reused.
    """
    if tokenizer is None:
        return None
    with _COPIES_LOCK:
        entry = _COPIES.get(id(tokenizer))
        if entry is None or entry[0] is not tokenizer:
            import copy

            entry = (tokenizer, copy.deepcopy(tokenizer))
            _COPIES[id(tokenizer)] = entry
        return entry[1]
