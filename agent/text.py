"""Small text utilities shared by the engines: idea validation, language detection, words and terms."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from ideaforge.errors import InputError

MAX_IDEA_CHARS = 2000

_WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
# Latin-script languages told apart by common function words (ideas are short; a detector library guesses).
_LATIN_HINTS = {
    "es": {"el", "la", "los", "las", "un", "una", "unos", "del", "sobre", "con", "en", "y", "que", "por", "para", "muy"},
    "de": {"der", "die", "das", "ein", "eine", "einer", "einem", "mit", "und", "auf", "im", "unter", "über", "ist", "gemütliche"},
    "fr": {"le", "la", "les", "un", "une", "des", "du", "sur", "avec", "et", "dans", "sous", "est", "au", "aux"},
    "it": {"il", "lo", "gli", "uno", "una", "della", "sulla", "con", "nel", "nella", "sotto", "è"},
    "pt": {"o", "os", "um", "uma", "sobre", "com", "em", "no", "na", "do", "da", "é", "muito"},
}
# Unicode blocks that identify a language well enough for a short idea (kana before CJK: see detect_language).
_SCRIPTS = [
    (0x3040, 0x30FF, "ja"),
    (0x4E00, 0x9FFF, "zh"),
    (0x3400, 0x4DBF, "zh"),
    (0xAC00, 0xD7AF, "ko"),
    (0x1100, 0x11FF, "ko"),
    (0x0400, 0x04FF, "ru"),
    (0x0600, 0x06FF, "ar"),
    (0x0590, 0x05FF, "he"),
    (0x0370, 0x03FF, "el"),
    (0x0E00, 0x0E7F, "th"),
    (0x0900, 0x097F, "hi"),
]
_EN_HINTS = {"the", "a", "an", "of", "with", "on", "in", "and", "is", "at", "to", "its", "his", "her", "that"}


def clean_idea(idea: object) -> str:
    """Validate and normalise an idea: text, not empty, at most 2,000 characters, no control characters.

    Raises:
        InputError: naming the problem and the fix.
    """
    if not isinstance(idea, str):
        raise InputError(f"idea must be text, got {type(idea).__name__}; pass the idea as a string")
    text = unicodedata.normalize("NFC", idea)
    # Control and format characters (other than spaces/newlines) only confuse the tokenizer and the LLM.
    text = "".join(" " if ch in "\t\r\n" else ch for ch in text if unicodedata.category(ch)[0] != "C" or ch in "\t\r\n")
    text = re.sub(r"\s+", " ", text).strip()
    if not text:
        raise InputError("idea is empty; describe what the image should show, e.g. 'a red kitten in a basket'")
    if len(text) > MAX_IDEA_CHARS:
        raise InputError(
            f"idea is {len(text):,} characters long, over the {MAX_IDEA_CHARS:,}-character limit; "
            "shorten it to the picture's essentials"
        )
    return text


def detect_language(text: str) -> str:
    """ISO 639-1 code of the idea's language, by script, then by function words for Latin scripts."""
    counts: dict[str, int] = {}
    for ch in text:
        code = ord(ch)
        lang = next((name for low, high, name in _SCRIPTS if low <= code <= high), None)
        if lang is None:
            continue
        counts[lang] = counts.get(lang, 0) + 1
    if counts:
        if counts.get("ja") and counts.get("zh"):
            return "ja"  # Japanese mixes kanji with kana; Chinese has no kana
        return max(counts, key=counts.__getitem__)
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return "en"
    en = sum(w in _EN_HINTS for w in words)
    best, best_hits = "en", en
    for lang, hints in _LATIN_HINTS.items():
        hits = sum(w in hints for w in words)
        if hits > best_hits and hits >= 2:
            best, best_hits = lang, hits
    return best


def is_english(text: str) -> bool:
    return detect_language(text) == "en"


def words(text: str) -> list[str]:
    """Lower-cased words of a text (letters and digits, keeping inner hyphens and apostrophes)."""
    return [w.lower() for w in _WORD.findall(text)]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A deliberately small stemmer: enough to see that 'blurry'/'blur' or 'cats'/'cat' are one word."""
    w = word.lower().strip("'")
    for suffix in ("iness", "ness", "ing", "ies", "ied", "ed", "es", "ly", "ry", "y", "s"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def split_terms(prompt: str) -> list[str]:
    return [t.strip() for t in prompt.split(",") if t.strip()]


def join_terms(terms: list[str]) -> str:
    seen: set[str] = set()
    out = []
    for t in terms:
        key = t.lower().strip()
        if key and key not in seen:
            seen.add(key)
            out.append(t.strip())
    return ", ".join(out)


def has_foreign_script(text: str) -> bool:
    """True if the text holds letters of a non-Latin script (CJK, Cyrillic, Arabic, ...)."""
    for ch in text:
        if ch.isalpha() and ord(ch) > 0x024F and not (0x1E00 <= ord(ch) <= 0x1EFF):
            return True
    return False
