"""How well the rules engine's checklist covers what people check in an image (DSG-1k), and negation.

    python bench/bench_checklist.py                       # prints the figures
    python bench/bench_checklist.py --write BENCHMARKS.md # also (re)writes its section of BENCHMARKS.md
    python bench/bench_checklist.py --misses 20           # and 20 uncovered propositions per category

**Coverage** (DSG-1k, the public half in ../shared/benchmarks/dsg1k/, or tests/data/dsg1k_sample.csv): a proposition
is covered when one check of the spec names all its keywords, after the README's normalisation (lower case, no
articles or possessive 's, plural and -ing/-ed forms reduced; number words read as digits). Only propositions whose
keywords the prompt's own words contain are counted. `global`/`other` style propositions are not about content.
Two figures per category: *any check* (the dataset README's rule: the check's words name the keywords) and *by
kind* (only a check of the matching kind counts: entity for entities, attribute or count for attributes, count for
counts, relation for relations, text for text rendering; DSG files some intransitive verbs as attributes and some
as relations, so attribute and relation checks count for each other there).

**Negation** (the public ideas whose words hold a negation cue): each negated object, found by a plain pattern
independent of the engine (the noun phrase after "without", "no", "not any", "free of", ... or before "-free"),
must be absent from the positive prompt, present in the negative prompt, and have no entity check or element.

Also: share of prompts within the 77-token budget, contradictions (a negative term naming a word the positive
idea keeps), and milliseconds per idea for `rules_spec` (the whole rules engine, checklist included).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import re
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import _common

from ideaforge.agent.budget import content_stems
from ideaforge.agent.checklist import analyze, lemma
from ideaforge.agent.checklist.words import QUOTED
from ideaforge.agent.rules import _vocab, rules_spec
from ideaforge.agent.text import split_terms
from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

CATEGORIES = {
    "entities": {("entity", "whole"), ("entity", "part")},
    "attributes": None,  # every attribute except counts
    "counts": {("other", "count"), ("attribute", "count")},
    "relations": {("relation", "spatial"), ("relation", "action")},
    "text": {("other", "text rendering"), ("attribute", "text rendering")},
}
KINDS = {
    "entities": {"entity"},
    "attributes": {"attribute", "count", "relation", "style"},
    "counts": {"count"},
    "relations": {"relation", "attribute"},
    "text": {"text"},
}
TARGETS = {"entities": 0.95, "attributes": 0.90, "counts": 0.90, "relations": 0.85, "text": 0.95}
_NUMBERS = {"one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
            "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13", "fourteen": "14",
            "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18", "nineteen": "19", "twenty": "20",
            "both": "2", "pair": "2", "dozen": "12", "hundred": "100"}
_ARTICLES = {"a", "an", "the"}


def dsg_file() -> Path:
    shared = _common.ROOT.parent / "shared" / "benchmarks" / "dsg1k" / "dsg1k_public.csv"
    return shared if shared.is_file() else _common.ROOT / "tests" / "data" / "dsg1k_sample.csv"


def norm(text: str) -> set[str]:
    """The README's normalisation, as a set of word forms."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"'s\b", "", text)
    text = re.sub(r"_\d+\b", "", text)  # "flowers_1": the first of several flowers
    out = set()
    for w in re.findall(r"[^\W_]+", text):
        if w in _ARTICLES:
            continue
        out.add(_NUMBERS.get(w, lemma(w)))
    return out


def category(row: dict[str, str]) -> str | None:
    key = (row["category_broad"], row["category_detailed"])
    for name, members in CATEGORIES.items():
        if members is None:
            if key[0] == "attribute" and key[1] not in ("count", "text rendering"):
                return name
        elif key in members:
            return name
    return None


def load_dsg(path: Path) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            item = items.setdefault(row["item_id"], {"text": row["text"], "props": []})
            item["props"].append(row)
    return items


def coverage(items: dict[str, dict[str, Any]], tok: Any, keep: int = 8) -> dict[str, Any]:
    """Coverage per category and reading, with up to `keep` uncovered propositions per category (each keyword)."""
    total: dict[str, int] = defaultdict(int)
    keyword_hit: dict[str, int] = defaultdict(int)
    union_hit: dict[str, int] = defaultdict(int)
    any_hit: dict[str, int] = defaultdict(int)
    kind_hit: dict[str, int] = defaultdict(int)
    misses: dict[str, list[str]] = defaultdict(list)
    for item in items.values():
        text = item["text"]
        spec = rules_spec(text, tokenizer=tok)
        prompt_words = norm(text)
        checks = [(c.kind, norm(" ".join(x for x in (c.subject, c.value, c.object) if x))) for c in spec.checks]
        for row in item["props"]:
            cat = category(row)
            if cat is None:
                continue
            keys = [norm(k.strip().strip("\"'").lstrip("=<>")) for k in row["keywords"].split(",") if k.strip()]
            keys = [k for k in keys if k]
            if not keys or not all(k <= prompt_words for k in keys):
                continue
            need = set().union(*keys)
            total[cat] += 1
            named = set().union(*(words for _, words in checks)) if checks else set()
            keyword_hit[cat] += all(any(k <= words for _, words in checks) for k in keys)
            union_hit[cat] += need <= named
            hit_any = any(need <= words for _, words in checks)
            hit_kind = any(need <= words and kind in KINDS[cat] for kind, words in checks)
            any_hit[cat] += hit_any
            kind_hit[cat] += hit_kind
            if not all(any(k <= words for _, words in checks) for k in keys) and len(misses[cat]) < keep:
                miss = [sorted(k) for k in keys if not any(k <= words for _, words in checks)]
                misses[cat].append(f"{row['tuple']} | MISS {miss} | {text[:200]}")
    return {
        cat: {"propositions": total[cat],
              "keyword": keyword_hit[cat] / total[cat] if total[cat] else 0.0,
              "union": union_hit[cat] / total[cat] if total[cat] else 0.0,
              "any": any_hit[cat] / total[cat] if total[cat] else 0.0,
              "kind": kind_hit[cat] / total[cat] if total[cat] else 0.0, "target": TARGETS[cat],
              "misses": misses[cat]}
        for cat in CATEGORIES
    }


# An engine-independent reading of negation, for the check: the words after the cue up to a preposition or the end.
_CUE = re.compile(r"(?i)\b(?:without(?: any| a| an| the| its| their)?|with no|but no|has no|have no|no|not any|"
                  r"free of|empty of|devoid of|lacking(?: any)?)\s+([a-z][a-z' -]*)")
_STOP = {"on", "in", "at", "next", "to", "near", "of", "with", "that", "which", "and", "or", "but", "it", "its",
         "inside", "under", "over", "behind", "by", "from"}


def negated_objects(idea: str) -> list[str]:
    out = []
    for m in _CUE.finditer(idea):
        words = []
        for w in m.group(1).lower().split():
            if w in _STOP:
                break
            words.append(w.strip(",.;"))
        if words and words[0] not in ("one", "longer", "matter", "more", "less", "wonder"):
            out.append(words[-1])
    out += [m.group(1).lower() for m in re.finditer(r"(?i)\b([a-z]+)-free\b", idea)]
    return out


def negation(ideas: list[str], tok: Any) -> dict[str, Any]:
    objects = ok_positive = ok_negative = entity_free = 0
    failures = []
    for idea in ideas:
        names = negated_objects(idea)
        if not names:
            continue
        spec = rules_spec(idea, tokenizer=tok)
        positive = norm(re.sub(QUOTED, " ", spec.positive))  # quoted text is the idea's own words
        negative_terms = [norm(t) for t in split_terms(spec.negative)]
        entities = [norm(c.subject) for c in spec.checks if c.kind == "entity"] + [norm(e) for e in spec.elements]
        for name in names:
            head = lemma(name)
            objects += 1
            a = head not in positive
            b = any(head in t for t in negative_terms)
            c = not any(head in e for e in entities)
            ok_positive += a
            ok_negative += b
            entity_free += c
            if not (a and b and c):
                failures.append(f"{idea!r}: {name} (positive ok {a}, negative ok {b}, no entity {c})")
    return {"ideas": sum(1 for i in ideas if negated_objects(i)), "objects": objects,
            "out_of_positive": ok_positive / objects if objects else 1.0,
            "in_negative": ok_negative / objects if objects else 1.0,
            "no_entity": entity_free / objects if objects else 1.0, "failures": failures}


def budget_and_speed(ideas: list[str], tok: Any) -> dict[str, Any]:
    """Each idea assembled once; a copy of the tokenizer, so no token count made while scoring is reused."""
    tok = copy.deepcopy(tok)
    stop = _vocab()["_stopwords"]
    within = contradictions = 0
    times = []
    for idea in ideas:
        started = time.perf_counter()
        spec = rules_spec(idea, tokenizer=tok)
        times.append(time.perf_counter() - started)
        within += spec.positive_tokens <= 77 and spec.negative_tokens <= 77
        # Quoted text is to be written, not drawn as a thing ("a bar without a wrapper, with the word 'WRAPPER'").
        kept = content_stems(re.sub(QUOTED, " ", analyze(idea).positive), stop)
        contradictions += sum(bool(content_stems(t, stop) & kept) for t in split_terms(spec.negative))
    return {"ideas": len(ideas), "within_budget": within / len(ideas), "contradictions": contradictions,
            "ms_median": 1000 * statistics.median(times), "ms_p95": 1000 * _common.p95(times)}


def public_ideas() -> list[str]:
    with _common.idea_file().open(encoding="utf-8") as fh:
        return [row["idea"] for row in csv.DictReader(fh, delimiter="\t") if row.get("idea")]


def section(results: dict[str, Any]) -> str:
    cov, neg, speed = results["coverage"], results["negation"], results["speed"]
    lines = ["<!-- checklist: written by bench/bench_checklist.py; run_all.py keeps this section -->",
             "## 8. The checklist (rules engine, offline)", "",
             f"DSG-1k public half ({results['prompts']} prompts, `{results['source']}`): share of propositions the "
             "checks cover, counting only propositions whose keywords the prompt's own words contain, under four "
             "readings of \"the spec's checks name its keywords\", from the most lenient: *together* (the checks' "
             "words together hold every keyword), *each keyword* (every keyword, e.g. `rubix cube` and `purple`, is "
             "named by some check), *one check* (a single check names all the keywords), *one check of its kind* "
             "(and that check is of the matching kind).", "",
             "| category | propositions | together | each keyword | one check | one check of its kind | target |",
             "|---|---|---|---|---|---|---|"]
    for cat, r in cov.items():
        lines.append(f"| {cat} | {r['propositions']} | {r['union']:.3f} | {r['keyword']:.3f} | {r['any']:.3f} | "
                     f"{r['kind']:.3f} | ≥ {r['target']:.2f} |")
    lines += ["", f"Negation ({neg['ideas']} public ideas with a negation cue, {neg['objects']} negated objects): "
              f"{100 * neg['out_of_positive']:.0f}% out of the positive prompt, {100 * neg['in_negative']:.0f}% in the "
              f"negative prompt, {100 * neg['no_entity']:.0f}% without an entity check or element.", "",
              f"All {speed['ideas']} public ideas and DSG-1k prompts: {100 * speed['within_budget']:.0f}% within the "
              f"77-token budget, {speed['contradictions']} contradictions, `rules_spec` {speed['ms_median']:.2f} ms "
              f"median per idea ({speed['ms_p95']:.2f} ms p95), one warm process.", "",
              "`python bench/bench_checklist.py --write BENCHMARKS.md` rewrites this section.",
              "<!-- /checklist -->"]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, help="rewrite this section of the given BENCHMARKS.md")
    parser.add_argument("--misses", type=int, nargs="?", const=8, default=0, metavar="N",
                        help="print N (default 8) uncovered propositions per category, with the keywords no check names")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    tok = load_clip_tokenizer()
    path = dsg_file()
    items = load_dsg(path)
    ideas = public_ideas()
    rules_spec("warm up", tokenizer=tok)
    results = {
        "source": str(path.relative_to(_common.ROOT.parent)) if _common.ROOT.parent in path.parents else str(path),
        "prompts": len(items),
        "coverage": coverage(items, tok, keep=args.misses),
        "negation": negation(ideas, tok),
        "speed": budget_and_speed(ideas + [i["text"] for i in items.values()], tok),
    }
    text = section(results)
    print(text)
    if args.misses:
        for cat, r in results["coverage"].items():
            print(f"-- {cat}")
            for m in r["misses"]:
                print("  ", m)
        for f in results["negation"]["failures"]:
            print("  negation:", f)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    if args.write:
        _common.write_section(args.write, text, "checklist")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
