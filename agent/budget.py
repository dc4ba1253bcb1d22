"""Keeping prompts within CLIP's 77 tokens, and negatives free of the idea's own words."""

from __future__ import annotations

from typing import Any

from ideaforge.agent.text import join_terms, split_terms, stem, words
from ideaforge.tools.clip_tokenizer import count_tokens

MAX_TOKENS = 77


def count(text: str, tokenizer: Any) -> int:
    """CLIP tokens in `text`, BOS and EOS included (with the given tokenizer, never a default one)."""
    return count_tokens(text, tokenizer)


def fit_terms(terms: list[str], tokenizer: Any, *, protected: int = 1, max_tokens: int = MAX_TOKENS) -> tuple[str, list[str]]:
    """Join comma-separated terms, dropping the lowest-priority ones (the last) until the text fits.

    The first `protected` terms are the subject and are never dropped; if they alone are over budget they are
    shortened word by word from the end, which is reported in the returned warnings.
    """
    terms = [t for t in (s.strip() for s in terms) if t]
    warnings: list[str] = []
    text = join_terms(terms)
    while count(text, tokenizer) > max_tokens and len(terms) > protected:
        terms.pop()
        text = join_terms(terms)
    if count(text, tokenizer) <= max_tokens:
        return text, warnings
    # The subject alone is too long: cut whole words from its end (CLIP would silently drop them anyway).
    before = count(text, tokenizer)
    pieces = text.split(" ")
    lo, hi = 1, len(pieces)
    while lo < hi:  # longest prefix of words that fits
        mid = (lo + hi + 1) // 2
        if count(" ".join(pieces[:mid]), tokenizer) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    text = " ".join(pieces[:lo]).rstrip(" ,")
    dropped = " ".join(pieces[lo:])
    warnings.append(
        f"prompt was {before} CLIP tokens, over the {max_tokens}-token limit; dropped the words {dropped[:80]!r}"
    )
    return text, warnings


def content_stems(text: str, stopwords: set[str]) -> set[str]:
    return {stem(w) for w in words(text) if w not in stopwords}


def remove_contradictions(negative_terms: list[str], idea: str, stopwords: set[str]) -> tuple[list[str], list[str]]:
    """Drop every negative term that shares a content word with the idea ("blurry photo of rain" keeps "blurry").

    Returns the kept terms and the dropped ones.
    """
    idea_stems = content_stems(idea, stopwords)
    kept, dropped = [], []
    for term in negative_terms:
        if content_stems(term, stopwords) & idea_stems:
            dropped.append(term)
        else:
            kept.append(term)
    return kept, dropped


def fit_negative(negative: str, idea: str, tokenizer: Any, stopwords: set[str]) -> tuple[str, list[str]]:
    kept, _ = remove_contradictions(split_terms(negative), idea, stopwords)
    return fit_terms(kept, tokenizer, protected=0)
