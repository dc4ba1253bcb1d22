"""Negation: what the idea says must not be there, out of the positive text and into `absent` checks."""

from __future__ import annotations

import re
from typing import Any

from ideaforge.agent.checklist.phrases import NP
from ideaforge.agent.checklist.words import Tok, _data, lemma


class Negation:
    """The negated objects of one idea, the character spans to leave out and the words to put in ("empty")."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.d = _data()
        self.negated: list[NP] = []
        self.removed: list[tuple[int, int]] = []
        self.rephrase: dict[int, str] = {}  # NP start offset -> adjective to insert ("empty")

    def lead_in(self, units: list[Any], k: int) -> int:
        """Where the negation's words start: 'that has no bananas', 'but no sandpipers', 'with no windows'."""
        start = units[k].start
        j = k - 1
        words: list[Tok] = []
        while j >= 0 and isinstance(units[j], Tok) and len(words) < 2:
            words.insert(0, units[j])
            j -= 1
        lows = tuple(t.low for t in words)
        for ws in self.d["_lead_in"]:
            if lows[-len(ws):] == ws:
                start = words[-len(ws)].start
                break
        return start

    def negate(self, np: NP, start: int, units: list[Any], k: int, host: NP | None) -> None:
        """A negated object: out of the prompt (with what only refers to it: 'on it'), into `absent`."""
        end = np.end
        # The thing as the idea names it, adjectives included ("orange juice"), articles and quantifiers aside.
        name = re.sub(r"(?i)^(?:(?:a|an|the|any|some|its|their|his|her|single)\s+)+", "", self.text[np.start:np.end]).strip()
        name = name or np.subject
        j = k + 1
        # "a statue of a horse": the whole phrase is what must be absent.
        if j + 1 < len(units) and isinstance(units[j], Tok) and units[j].low == "of" and isinstance(units[j + 1], NP):
            units[j + 1].negated = True
            name = f"{name} of {self.text[units[j + 1].start:units[j + 1].end]}"
            end = units[j + 1].end
            j += 2
        # "without any books on it": the trailing place refers back to the host.
        if j + 1 < len(units) and isinstance(units[j], Tok) and units[j].tag == "PREP" \
                and (units[j].value or units[j].low) in ("on", "in", "inside", "within", "on top of", "at") \
                and isinstance(units[j + 1], Tok) and units[j + 1].tag == "PRON":
            end = units[j + 1].end
            if j + 2 < len(units) and isinstance(units[j + 2], Tok) and units[j + 2].tag == "POSS":
                end = units[j + 2].end
        elif j + 1 < len(units) and isinstance(units[j], Tok) and units[j].tag == "PREP" and isinstance(units[j + 1], NP) \
                and units[j + 1].words and units[j + 1].start < len(self.text) \
                and self.text[units[j + 1].start:units[j + 1].end].lower().startswith(("its ", "their ", "his ", "her ")):
            end = units[j + 1].end  # "no letters on its keyboard": the keyboard is the host's
        self.negated.append(NP(np.head, [name], start=start, end=end, negated=True))
        self.removed.append((start, end))
        if host is not None:
            word = self.d["negation"]["rephrase"].get(lemma(np.head))
            if word == "empty" and lemma(host.head) not in self.d["negation"]["empty_hosts"]:
                word = None  # "an empty street", but not "an empty dog"
            written = self.text[host.start:host.end].split()
            if (len(written) > 1 and written[-1][:1].isupper()) or host.head[:1].isupper() \
                    or host.head.lower() in self.d["_time_words"] | self.d["_skip_entities"]:
                word = None  # not "Ha empty Long Bay", not "at empty night"
            if word and word not in host.adjectives:
                self.rephrase[host.start] = word

    def positive(self) -> str:
        """The idea without its negated parts, rephrased where a word says it ("a street" -> "an empty street")."""
        text = self.text
        pieces: list[str] = []
        pos = 0
        inserts = sorted(self.rephrase.items())
        for start, end in sorted(self.removed):
            if start < pos:
                continue
            pieces.append(text[pos:start])
            pos = end
        pieces.append(text[pos:])
        out = "".join(pieces)
        # The insertions refer to offsets in the original; apply them before the cut, from the back.
        if inserts:
            out = text
            for start, end in sorted(self.removed, reverse=True):
                out = out[:start] + out[end:]
            for at, word in sorted(inserts, reverse=True):
                shift = sum(e - s for s, e in self.removed if e <= at)
                at -= shift
                out = _insert_adjective(out, at, word)
        out = re.sub(r"\s+([,.;:!?])", r"\1", out)
        out = re.sub(r"([,;:])\1+", r"\1", out)
        out = re.sub(r"\s{2,}", " ", out).strip(" ,;:")
        out = re.sub(r"(^|[.;!?]\s*)[,;:]\s*", r"\1", out)
        return out


def _insert_adjective(text: str, at: int, word: str) -> str:
    """Put `word` before the noun phrase that starts at `at`, after its article ('a street' -> 'an empty street')."""
    m = re.match(r"(?i)(an?|the|this|that|some)\s+", text[at:])
    if m:
        article = m.group(1)
        if article.lower() in ("a", "an"):
            article = ("an" if word[0] in "aeiou" else "a") if article.islower() else ("An" if word[0] in "aeiou" else "A")
        return text[:at] + f"{article} {word} " + text[at + m.end():]
    return text[:at] + f"{word} " + text[at:]
