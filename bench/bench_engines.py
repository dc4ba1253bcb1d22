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

Run:
    python bench/bench_engines.py [--limit N] [--method json_schema|function_calling|json_mode]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N ideas")
    parser.add_argument(
        "--method", default="json_schema", choices=["json_schema", "function_calling", "json_mode"]
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    result = run(args.limit, args.method)
    print(report(result))
    _common.write_json(args.json, result)


if __name__ == "__main__":
    main()
