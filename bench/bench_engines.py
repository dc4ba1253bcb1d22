"""Prompt engines on the public idea set: latency and what the prompts contain, per engine.

For every idea in ../shared/ideas/public_ideas.tsv (tests/data/public_ideas.tsv when absent) each engine's
`PromptChain.optimize(idea)` is timed, the engines alternating idea by idea. Per engine the report gives:

- median and p95 latency per idea;
- the share of specs within CLIP's 77-token budget (positive and negative each counted with
  `ideaforge.tools.clip_tokenizer.count_tokens`, BOS and EOS included);
- contradictions: specs whose negative prompt holds a content word of the idea (compared by `ideaforge.agent.text.stem`,
  stopwords from `prompts/vocabulary.json` excluded);
- content-word recall: the share of the idea's content words found in the positive prompt (mean over ideas);
- added descriptive terms: comma-separated positive terms that share no content word with the idea (mean).

Engines:

- `rules`: the offline engine.
- `openai`: the real LangChain chain (`ChatOpenAI.with_structured_output`, the repair round, `finalize`) against
  the loopback FakeOpenAI server from the tests, which is no language model: it answers every request at once with
  a canned reply built from the idea (the idea echoed, then fixed quality terms, long enough to overflow the
  budget when the idea is long; a negative that names the idea's first content word). Its latency is therefore
  the chain's client, HTTP and parsing overhead, and its prompt figures show what `finalize` enforces on whatever
  an LLM says (budget, no contradictions), not the quality of any LLM. An idea in a non-Latin script is echoed
  untranslated, which the chain's English check rejects: it asks once more, then falls back to `rules`; those
  ideas show the cost of the repair path. No real LLM is reachable here.
- `raw` (reference): the idea itself as the prompt, no negative; only its budget share is informative.

Per family (`--families`, default every family: sd, sdxl, sd3, flux, flux-schnell, generic), for the rules engine
on every idea (and the openai engine against the same canned server on the first `--llm-ideas` ideas):

- in budget: the share of specs whose every encoder's prompt is within that encoder's budget (CLIP counted with the
  CLIP tokenizer; T5 with `estimate_t5_tokens`, an upper estimate: no T5 tokenizer ships offline);
- checks in 77: the share of specs whose checks' content words (entity, attribute, count, relation, text) are all
  within the first 77 CLIP tokens of every CLIP encoder's prompt;
- prose: the share of positives that read as sentences (`ideaforge.agent.families.prose_like`: ends like a
  sentence, comma-separated pieces of three words or more on average, articles or verbs), for the positive and for
  the T5 prompt where the family has one;
- T5 estimate vs the tiny test tokenizer: the T5 prompts counted with both, when tests/tiny_models.py can train
  its 1,000-piece Unigram tokenizer (which splits far more than T5's 32,000 pieces; a sanity figure only).

Run:
    python bench/bench_engines.py [--limit N] [--method json_schema|function_calling|json_mode]
    python bench/bench_engines.py --families-only [--families sd,flux] [--llm-ideas 100]
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path
from typing import Any

import _common

CANNED_TERMS = (
    "highly detailed, sharp focus, soft natural light, cinematic composition, rich colors, professional photography, "
    "8k, intricate textures, depth of field, award winning, volumetric lighting, masterpiece, best quality"
)
CANNED_NEGATIVE = "lowres, blurry, watermark, text, jpeg artifacts, bad anatomy"


def read_ideas(path: Path, limit: int | None) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if (r.get("idea") or "").strip()]
    return rows[:limit] if limit else rows


class Metrics:
    """The prompt figures, computed the same way for every engine."""

    def __init__(self) -> None:
        from ideaforge import prompts
        from ideaforge.tools.clip_tokenizer import load_clip_tokenizer

        self.stopwords = set(prompts.vocabulary()["stopwords"])
        self.tokenizer = load_clip_tokenizer()

    def content(self, text: str) -> set[str]:
        from ideaforge.agent.text import stem, words

        return {stem(w) for w in words(text) if w not in self.stopwords}

    def measure(self, idea_en: str, positive: str, negative: str) -> dict[str, Any]:
        from ideaforge.agent.text import split_terms
        from ideaforge.tools.clip_tokenizer import count_tokens
        from ideaforge.tools.diffusion import plain_prompt

        idea = self.content(idea_en)
        pos_tokens = count_tokens(plain_prompt(positive), self.tokenizer)
        neg_tokens = count_tokens(plain_prompt(negative), self.tokenizer)
        clashing = sorted(idea & self.content(negative))
        terms = split_terms(positive)
        added = [t for t in terms if not (self.content(t) & idea)]
        return {
            "positive_tokens": pos_tokens,
            "negative_tokens": neg_tokens,
            "within_budget": pos_tokens <= 77 and neg_tokens <= 77,
            "contradiction": bool(clashing),
            "clashing_words": clashing,
            "recall": (len(idea & self.content(positive)) / len(idea)) if idea else None,
            "added_terms": len(added),
        }


def canned_reply(request: dict[str, Any]) -> Any:
    """FakeOpenAI's answer: the idea of the request's last `Idea:` message, echoed with canned terms."""
    from llm_server import Reply

    from ideaforge.agent.text import words

    idea = ""
    for message in reversed(request.get("messages", [])):
        content = message.get("content")
        if isinstance(content, str) and content.startswith("Idea: "):
            idea = content[len("Idea: ") :].strip()
            break
    first_word = next((w for w in words(idea) if len(w) > 3), "")
    return Reply.spec(
        idea_en=idea,
        positive=f"{idea}, {CANNED_TERMS}",
        negative=f"{CANNED_NEGATIVE}, {first_word}".rstrip(", "),
        elements=[" ".join(idea.split()[:4]) or "subject"],
        language="en",
    )


def summarize(rows: list[dict[str, Any]], seconds: list[float]) -> dict[str, Any]:
    recalls = [r["recall"] for r in rows if r["recall"] is not None]
    n = len(rows)
    return {
        "ideas": n,
        "latency_median_ms": 1000 * _common.median(seconds) if seconds else None,
        "latency_p95_ms": 1000 * _common.p95(seconds) if seconds else None,
        "within_budget_share": sum(r["within_budget"] for r in rows) / n,
        "positive_over_budget": sum(r["positive_tokens"] > 77 for r in rows),
        "negative_over_budget": sum(r["negative_tokens"] > 77 for r in rows),
        "contradictions": sum(r["contradiction"] for r in rows),
        "recall_mean": sum(recalls) / len(recalls) if recalls else None,
        "ideas_recall_below_1": sum(r < 1 for r in recalls),
        "added_terms_mean": sum(r["added_terms"] for r in rows) / n,
        "positive_tokens_median": _common.median([r["positive_tokens"] for r in rows]),
        "negative_tokens_median": _common.median([r["negative_tokens"] for r in rows]),
    }


def run(limit: int | None, method: str) -> dict[str, Any]:
    from llm_server import FakeOpenAI

    from ideaforge.agent.chain import PromptChain
    from ideaforge.agent.settings import load_settings

    path = _common.idea_file()
    ideas = read_ideas(path, limit)
    metrics = Metrics()
    rules = PromptChain(load_settings(engine="rules"), tokenizer=metrics.tokenizer)
    results: dict[str, dict[str, list[Any]]] = {
        e: {"rows": [], "seconds": []} for e in ("rules", "openai", "raw")
    }
    extra = {"requests": [], "fallbacks": 0, "repairs": 0, "removed": 0}
    load_before = _common.loadavg()
    with FakeOpenAI(default=canned_reply) as server:
        llm = PromptChain(
            load_settings(
                engine="openai", llm_base_url=server.url, llm_max_retries=0, llm_timeout=30, llm_method=method
            ),
            tokenizer=metrics.tokenizer,
        )
        rules.optimize("a warm-up idea")  # loads prompt data and the structured-output machinery once
        llm.optimize("a warm-up idea")
        for i, row in enumerate(ideas):
            idea = row["idea"]
            order = ("rules", "openai") if i % 2 == 0 else ("openai", "rules")
            for engine in order:
                chain = rules if engine == "rules" else llm
                sent = len(server.requests)
                t0 = time.perf_counter()
                spec = chain.optimize(idea)
                results[engine]["seconds"].append(time.perf_counter() - t0)
                results[engine]["rows"].append(metrics.measure(spec.idea_en, spec.positive, spec.negative))
                if engine == "openai":
                    asked = len(server.requests) - sent
                    extra["requests"].append(asked)
                    extra["repairs"] += asked > 1
                    extra["fallbacks"] += any("openai engine failed" in w for w in spec.warnings)
                    extra["removed"] += any("removed negative terms" in w for w in spec.warnings)
            results["raw"]["rows"].append(metrics.measure(idea, idea, ""))
    engines = {name: summarize(r["rows"], r["seconds"]) for name, r in results.items()}
    engines["raw"]["latency_median_ms"] = engines["raw"]["latency_p95_ms"] = None
    engines["openai"].update(
        requests_per_idea=sum(extra["requests"]) / len(ideas),
        ideas_with_repair_round=extra["repairs"],
        fell_back_to_rules=extra["fallbacks"],
        negatives_cleaned_by_finalize=extra["removed"],
        structured_output_method=method,
    )
    return {
        "idea_file": str(path),
        "ideas": len(ideas),
        "engines": engines,
        "latency_ratio_openai_to_rules": engines["openai"]["latency_median_ms"]
        / engines["rules"]["latency_median_ms"],
        "loadavg_before": load_before,
        "loadavg_after": _common.loadavg(),
    }


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def report(r: dict[str, Any]) -> str:
    lines = [
        f"{r['ideas']} ideas from {r['idea_file']}; load average {r['loadavg_before']} -> {r['loadavg_after']}",
        (
            f"{'engine':8} {'median ms':>9} {'p95 ms':>8} {'in budget':>9} {'contra':>6} {'recall':>6} {'added':>5} "
            f"{'pos tok':>7} {'neg tok':>7}"
        ),
    ]
    for name, e in r["engines"].items():
        lines.append(
            f"{name:8} {_fmt(e['latency_median_ms'], '.2f'):>9} {_fmt(e['latency_p95_ms'], '.2f'):>8} "
            f"{e['within_budget_share']:9.1%} {e['contradictions']:6d} {_fmt(e['recall_mean'], '.3f'):>6} "
            f"{e['added_terms_mean']:5.1f} {e['positive_tokens_median']:7.0f} {e['negative_tokens_median']:7.0f}"
        )
    o = r["engines"]["openai"]
    lines.append(
        f"openai = chain overhead against a canned loopback server ({o['structured_output_method']}), not an LLM: "
        f"{o['requests_per_idea']:.2f} requests per idea, {o['ideas_with_repair_round']} ideas needed the repair "
        f"round, {o['fell_back_to_rules']} fell back to rules; finalize removed an idea word the reply put in the "
        f"negative for {o['negatives_cleaned_by_finalize']} ideas"
    )
    lines.append(
        "ideas whose positive lost an idea word: "
        + ", ".join(
            f"{name} {e['ideas_recall_below_1']}" for name, e in r["engines"].items() if name != "raw"
        )
    )
    lines.append(f"latency ratio openai/rules (medians) {r['latency_ratio_openai_to_rules']:.1f}x")
    return "\n".join(lines)


FAMILIES = ("sd", "sdxl", "sd3", "flux", "flux-schnell", "generic")


def canned_prose(request: dict[str, Any]) -> Any:
    """FakeOpenAI's answer for a prose family: the idea as a sentence, then a fixed sentence of style."""

    reply = canned_reply(request)
    idea = reply.payload["idea_en"].strip().rstrip(".")
    reply.payload["positive"] = (
        f"{idea[:1].upper()}{idea[1:]}. The scene is shown in soft natural light with a shallow depth of field, "
        "rich colors and fine, intricate textures."
    )
    return reply


def family_row(spec: Any, tokenizer: Any, tiny_t5: Any) -> dict[str, Any]:
    from ideaforge.agent.families import (
        CONTENT_KINDS,
        estimate_t5_tokens,
        first_tokens,
        missing,
        prompt_family,
        prompt_for,
        prose_like,
    )

    family = prompt_family(spec.family)
    content = [c for c in spec.checks if c.kind in CONTENT_KINDS]
    within = set(spec.tokens) == set(family.budgets) and all(
        spec.tokens[e] <= n for e, n in family.budgets.items()
    )
    clip = [e for e in family.budgets if e.startswith("clip")]
    in77 = all(not missing(first_tokens(prompt_for(spec, e), tokenizer), content) for e in clip)
    t5 = next((e for e in family.budgets if not e.startswith("clip")), None)
    t5_text = prompt_for(spec, t5) if t5 else None
    row = {
        "within_budget": within,
        "checks_in_77": in77,
        "prose": prose_like(spec.positive),
        "t5_prose": prose_like(t5_text) if t5_text else None,
        "t5_tokens": spec.tokens.get(t5) if t5 else None,
        "negative_empty": spec.negative == "",
    }
    if t5_text and tiny_t5 is not None:
        row["tiny_t5"] = len(tiny_t5(t5_text)["input_ids"])
        row["estimate_t5"] = estimate_t5_tokens(t5_text)
    return row


def _tiny_t5() -> Any:
    try:
        from tiny_models import t5_tokenizer_dir
        from transformers import T5TokenizerFast

        return T5TokenizerFast.from_pretrained(str(t5_tokenizer_dir()))
    except Exception:  # the tiny tokenizer is a sanity figure only; the bench runs without it
        return None


def run_families(limit: int | None, families: list[str], llm_ideas: int, method: str) -> dict[str, Any]:
    import sys

    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:  # the loopback server and the tiny tokenizer live with the tests
        sys.path.insert(0, tests)
    from llm_server import FakeOpenAI

    from ideaforge.agent.chain import PromptChain
    from ideaforge.agent.settings import load_settings

    path = _common.idea_file()
    ideas = read_ideas(path, limit)
    metrics = Metrics()
    tiny = _tiny_t5()
    rules = PromptChain(load_settings(engine="rules"), tokenizer=metrics.tokenizer)
    out: dict[str, Any] = {"idea_file": str(path), "ideas": len(ideas), "families": {}}
    with FakeOpenAI(default=canned_reply) as server:
        for family in families:
            prose = family not in ("sd", "sdxl")
            server.default = canned_prose if prose else canned_reply
            llm = PromptChain(
                load_settings(engine="openai", llm_base_url=server.url, llm_max_retries=0, llm_timeout=30,
                              llm_method=method),
                tokenizer=metrics.tokenizer,
            )
            rows: dict[str, list[dict[str, Any]]] = {"rules": [], "openai": []}
            seconds: dict[str, list[float]] = {"rules": [], "openai": []}
            for i, row in enumerate(ideas):
                for engine, chain in (("rules", rules), ("openai", llm)):
                    if engine == "openai" and i >= llm_ideas:
                        continue
                    t0 = time.perf_counter()
                    spec = chain.optimize(row["idea"], family=family)
                    seconds[engine].append(time.perf_counter() - t0)
                    rows[engine].append(family_row(spec, metrics.tokenizer, tiny))
            out["families"][family] = {e: _family_summary(r, seconds[e]) for e, r in rows.items() if r}
    return out


def _share(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return sum(bool(v) for v in values) / len(values) if values else None


def _family_summary(rows: list[dict[str, Any]], seconds: list[float]) -> dict[str, Any]:
    t5 = [r["t5_tokens"] for r in rows if r["t5_tokens"] is not None]
    pairs = [(r["estimate_t5"], r["tiny_t5"]) for r in rows if "tiny_t5" in r]
    return {
        "ideas": len(rows),
        "within_budget": _share(rows, "within_budget"),
        "checks_in_77": _share(rows, "checks_in_77"),
        "prose": _share(rows, "prose"),
        "t5_prose": _share(rows, "t5_prose"),
        "negative_empty": _share(rows, "negative_empty"),
        "t5_tokens_median": _common.median(t5) if t5 else None,
        "t5_tokens_max": max(t5) if t5 else None,
        "estimate_ge_tiny_t5": (sum(e >= t for e, t in pairs) / len(pairs)) if pairs else None,
        "tiny_t5_over_estimate_max": max((t / e for e, t in pairs), default=None),
        "latency_median_ms": 1000 * _common.median(seconds) if seconds else None,
    }


def report_families(r: dict[str, Any]) -> str:
    lines = [
        f"{r['ideas']} ideas from {r['idea_file']}, per family (T5 counted by the upper estimate)",
        f"{'family':13} {'engine':7} {'ideas':>5} {'in budget':>9} {'checks<77':>9} {'prose':>6} {'t5 prose':>8} "
        f"{'no neg':>6} {'t5 med':>6} {'t5 max':>6} {'ms':>6}",
    ]
    for family, engines in r["families"].items():
        for engine, e in engines.items():
            lines.append(
                f"{family:13} {engine:7} {e['ideas']:5d} {_fmt(e['within_budget'], '.1%'):>9} "
                f"{_fmt(e['checks_in_77'], '.1%'):>9} {_fmt(e['prose'], '.0%'):>6} {_fmt(e['t5_prose'], '.0%'):>8} "
                f"{_fmt(e['negative_empty'], '.0%'):>6} {_fmt(e['t5_tokens_median'], '.0f'):>6} "
                f"{_fmt(e['t5_tokens_max'], '.0f'):>6} {_fmt(e['latency_median_ms'], '.1f'):>6}"
            )
    tiny = [(f, e["rules"]) for f, e in r["families"].items() if e["rules"].get("estimate_ge_tiny_t5") is not None]
    for family, e in tiny:
        lines.append(
            f"{family}: the T5 estimate >= the tiny 1,000-piece test tokenizer's count for "
            f"{e['estimate_ge_tiny_t5']:.1%} of prompts (tiny/estimate at most {e['tiny_t5_over_estimate_max']:.2f})"
        )
    lines.append("openai = the chain against a canned loopback server (not an LLM): what finalize enforces")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N ideas")
    parser.add_argument(
        "--method", default="json_schema", choices=["json_schema", "function_calling", "json_mode"]
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--families", default=",".join(FAMILIES), help="families to measure, comma-separated")
    parser.add_argument("--families-only", action="store_true", help="only the per-family table")
    parser.add_argument("--llm-ideas", type=int, default=200, help="ideas per family for the openai engine")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    if not args.families_only:
        result = run(args.limit, args.method)
        print(report(result))
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    if families:
        result["per_family"] = run_families(args.limit, families, args.llm_ideas, args.method)
        print(report_families(result["per_family"]))
    _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
