"""What leaves the process is safe: secrets redacted, terminal control characters removed.

Two rules, applied where text is made (the LLM's reply) and again where it leaves (PNG chunks, `metadata.jsonl`,
stdout and stderr):

- **Secrets.** Every secret the settings hold is registered with `register_secret`, and its exact value is
  replaced by `[redacted]` wherever it appears, however short (a key a server echoes back as an "element" must
  not reach a PNG). Strings shaped like API keys (`sk-...`, `hf_...`, `Bearer ...`) are redacted too.
- **Control characters.** ESC, OSC, CSI and the other C0/C1 controls (and bidi overrides) would let text from an
  LLM or a hand-made PNG retitle or clear the user's terminal; `printable` drops them (newlines and tabs become
  spaces unless `keep_newlines`).

Example:
    >>> register_secret("sk-test")
    >>> redact("the key is sk-test, keep it")
    'the key is [redacted], keep it'
    >>> printable("\\x1b]0;pwned\\x07red kitten\\x1b[2J")
    ']0;pwnedred kitten[2J'
"""

from __future__ import annotations

import re
import threading
import unicodedata
from typing import Any

REDACTED = "[redacted]"
_KEY_SHAPED = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{16,}|hf_[A-Za-z0-9]{16,}|Bearer\s+[A-Za-z0-9._\-]{16,})")
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(value: str | None) -> None:
    """Redact `value` from everything ideaforge writes or prints from now on (in this process)."""
    global _secrets
    if not value or not value.strip():
        return
    with _lock:
        if value not in _secrets:
            # Longest first, so a secret that contains another is replaced whole.
            _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every registered secret and every key-shaped string replaced by `[redacted]`."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPED.sub(REDACTED, text)


def redact_data(value: Any) -> Any:
    """`redact` through JSON-like data: dict keys and values, lists, strings."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_data(k): redact_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_data(v) for v in value]
    return value


def _unsafe(ch: str, keep_newlines: bool) -> bool:
    if keep_newlines and ch in "\n\t":
        return False
    category = unicodedata.category(ch)
    return category == "Cc" or (category == "Cf" and ch not in "\u200d\u200c")  # keep ZWJ/ZWNJ (emoji, scripts)


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` without control or format characters; tabs and newlines become spaces unless `keep_newlines`."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if _unsafe(ch, keep_newlines):
            if ch in "\n\t\r":
                out.append(" ")
            continue
        out.append(ch)
    return "".join(out)


def safe(text: str, *, keep_newlines: bool = False) -> str:
    """Both rules: what may be printed or stored."""
    return printable(redact(text), keep_newlines=keep_newlines)


def safe_data(value: Any) -> Any:
    """`safe` through JSON-like data (keys included)."""
    if isinstance(value, str):
        return safe(value)
    if isinstance(value, dict):
        return {safe_data(k): safe_data(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [safe_data(v) for v in value]
    return value
