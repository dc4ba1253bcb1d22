"""The chat: an idea in, an image out; each follow-up refines the last result. Start it with `ideaforge ui`.

A thin view over `agent`'s public API. The run happens in a worker thread that only talks to a queue; the
script's thread drains the queue and updates the status, progress bar and preview, because Streamlit elements
may only be touched from the script thread. When the script is interrupted mid-run, the run goes on by itself
and its turn joins the history when it ends; the next script run then decides: the Stop button cancels it
between denoising steps, anything else (a message sent meanwhile, a widget) waits for it, so a message sent
during a run is queued and answered afterwards as a follow-up of the finished result.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from ideaforge import Cancelled, Event, IdeaForge, IdeaForgeError, RunResult, load_settings, prompts

ENGINES = ["auto", "openai", "rules"]
CRITICS = ["clip", "vlm", "vlm+clip"]
NO_STYLE = "none"
SECRET_NAMES = ("IDEAFORGE_OPENAI_API_KEY", "OPENAI_API_KEY")
STOPPED = "Stopped before the run finished."
STOP_WAIT = 60.0  # seconds to wait for a run to stop between steps
RUN_WAIT = 1800.0  # seconds a queued message waits for the run in progress before that run is stopped
STAGES = {
    "prompt": "Optimizing the prompt",
    "generate": "Generating",
    "critic": "Scoring",
    "revise": "Revising",
}


# -- models: one IdeaForge per configuration, shared by every session ----------------------------------------
@st.cache_resource(show_spinner="Loading the diffusion model…", max_entries=4)
def get_forge(
    model: str, clip_model: str, engine: str, llm_base_url: str, llm_model: str, _api_key: str | None,
    vlm_base_url: str = "", vlm_model: str = "",
) -> IdeaForge:
    """Build the forge and load its diffusion model now, under the spinner (a failed load is not cached)."""
    forge = IdeaForge(
        model=model,
        clip_model=clip_model,
        engine=engine,
        llm_base_url=llm_base_url or None,
        llm_model=llm_model,
        openai_api_key=_api_key,
        vlm_base_url=vlm_base_url or None,
        vlm_model=vlm_model or None,
    )
    # Load the pipeline now; the tool's per-pipeline lock makes sharing it between sessions safe.
    _ = forge.generator
    return forge


def secret_key() -> str | None:
    """The OpenAI key from Streamlit secrets, if any (the environment is read by the settings themselves)."""
    for name in SECRET_NAMES:
        try:
            value = st.secrets.get(name)
        except FileNotFoundError:  # no secrets.toml: the environment alone decides
            return None
        if value:
            return str(value)
    return None


# -- the sidebar ---------------------------------------------------------------------------------------------
def sidebar(defaults: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """From the sidebar: the model configuration (selects a cached forge) and the per-run options."""
    sb = st.sidebar
    sb.header("Settings")
    model = sb.text_input(
        "Diffusion model", defaults.model, key="model", help="Hub id, diffusers folder or .safetensors file"
    )
    clip_model = sb.text_input("CLIP critic model", defaults.clip_model, key="clip_model", help="Hub id or folder")
    engine = sb.selectbox(
        "Prompt engine",
        ENGINES,
        index=ENGINES.index(defaults.engine),
        key="engine",
        help="auto uses the LLM when a key or base URL is set, else the offline rules",
    )
    llm_base_url = sb.text_input(
        "LLM base URL",
        defaults.llm_base_url or "",
        placeholder="https://api.openai.com/v1",
        key="llm_base_url",
        help="Any OpenAI-compatible server: Ollama, vLLM, LM Studio, llama.cpp",
    )
    llm_model = sb.text_input("LLM model", defaults.llm_model, key="llm_model")
    has_key = bool(secret_key() or (defaults.openai_api_key and defaults.openai_api_key.get_secret_value()))
    sb.caption("API key: " + ("set (environment or secrets)" if has_key else "not set"))
    styles = [NO_STYLE, *prompts.style_names()]
    style = sb.selectbox(
        "Style", styles, index=styles.index(defaults.style) if defaults.style in styles else 0, key="style"
    )
    steps = sb.number_input("Steps", 1, 500, defaults.steps, step=1, placeholder="model default", key="steps")
    guidance = sb.number_input(
        "Guidance", 0.0, 50.0, defaults.guidance, step=0.5, placeholder="model default", key="guidance"
    )
    size = sb.text_input("Size", defaults.size or "", placeholder="model default, e.g. 512x512", key="size")
    seed = sb.number_input("Seed", 0, 2**32 - 1, None, step=1, placeholder="random", key="seed")
    critique = sb.toggle(
        "Check and repair", defaults.critique, help="Check each image against the checklist and repair what failed",
        key="critique",
    )
    critic = sb.selectbox(
        "Critic", CRITICS, index=CRITICS.index(defaults.critic), disabled=not critique, key="critic",
        help="clip: CLIP per check (local); vlm: a vision LLM on an OpenAI-compatible server; vlm+clip: both",
    )
    vlm_base_url = sb.text_input(
        "Vision LLM base URL", defaults.vlm_base_url or "", placeholder="http://127.0.0.1:8000/v1",
        key="vlm_base_url", disabled=critic == "clip", help="vLLM, Ollama, LM Studio or llama.cpp with a vision model",
    )
    vlm_model = sb.text_input("Vision LLM model", defaults.vlm_model, key="vlm_model", disabled=critic == "clip")
    threshold = sb.number_input(
        "Checks that must pass",
        0.0,
        1.0,
        defaults.threshold if defaults.threshold is not None and defaults.threshold <= 1 else None,
        step=0.05,
        disabled=not critique,
        placeholder="all",
        key="threshold",
        help="The share of the checklist an image must pass to end the loop early",
    )
    attempts = sb.number_input(
        "Attempts at most", 1, 20, defaults.max_attempts, step=1, disabled=not critique, key="max_attempts"
    )
    if sb.button("New conversation", key="new", help="Forget the conversation; the next message is a new idea"):
        st.session_state.turns = []
    config = {
        "model": model.strip(),
        "clip_model": clip_model.strip(),
        "engine": engine,
        "llm_base_url": llm_base_url.strip(),
        "llm_model": llm_model.strip(),
        "vlm_base_url": vlm_base_url.strip(),
        "vlm_model": vlm_model.strip(),
    }
    options = {
        "steps": steps,
        "guidance": guidance,
        "size": size.strip() or None,
        "seed": seed,
        "style": "" if style == NO_STYLE else style,
        "critique": critique,
        "critic": critic,
        "threshold": threshold,
        "max_attempts": attempts,
        "out": str(defaults.out),
    }
    return config, {k: v for k, v in options.items() if v is not None}


# -- rendering -----------------------------------------------------------------------------------------------
def show_result(result: RunResult, key: str) -> None:
    """The best attempt's image(s) with score, seed and attempt; the prompts and scores; the PNG download."""
    best = result.best
    if best is None or result.best_image_path is None:
        st.warning("No usable image was produced: every image was flagged or failed. Try another seed or prompt.")
        return
    number = result.attempts.index(best) + 1
    for i, image in enumerate(best.images):
        if image.path is None or not Path(image.path).exists():
            continue
        score = _score_text(image)
        st.image(
            image.path,
            caption=f"score {score} · seed {image.seed} · attempt {number} of {len(result.attempts)}",
        )
        st.download_button(
            "Download PNG",
            Path(image.path).read_bytes(),
            file_name=Path(image.path).name,
            mime="image/png",
            on_click="ignore",
            key=f"download-{key}-{i}",
            help="The PNG carries its prompt, seed and settings",
        )
    spec = best.spec
    with st.expander("Prompt and scores"):
        st.markdown("**Positive**")
        st.code(spec.positive, language=None, wrap_lines=True)
        st.markdown("**Negative**")
        st.code(spec.negative or "(none)", language=None, wrap_lines=True)
        st.markdown(f"**Elements**: {', '.join(spec.elements)}")
        st.markdown(f"**Engine**: {spec.engine} · style {spec.style or 'none'} · language {spec.language}")
        if spec.checks:
            st.markdown(checklist_markdown(spec))
        st.table(
            [
                {
                    "round": a.round,
                    "candidate": a.candidate,
                    "seed": a.seed,
                    "score": None if a.score is None else round(a.score, 2),
                    "weak": ", ".join(a.weak),
                }
                for a in result.attempts
            ]
        )
        if result.stopped:
            st.caption(f"Loop ended: {result.stopped}")
        reviewed = best.best_image()
        if reviewed is not None and reviewed.review is not None:
            st.markdown(f"**Verdicts** ({reviewed.review.critic})\n\n" + verdicts_markdown(spec, reviewed.review))
    if len(result.attempts) > 1 and any(i.review is not None for a in result.attempts for i in a.images):
        show_rounds(result, key)
        for warning in [*spec.warnings, *result.warnings]:
            st.caption(f"⚠ {warning}")


def _score_text(image: Any) -> str:
    r = image.review
    if r is not None:
        return "n/a" if r.alignment is None else f"{r.alignment:.2f} ({r.passed}/{r.judged} checks)"
    return "n/a" if image.scores is None else f"{image.scores.idea:.1f}"


def show_rounds(result: RunResult, key: str) -> None:
    """Every attempt side by side (up to four a row) with its checklist verdicts; the best one marked."""
    with st.expander("Rounds and checklists", expanded=len(result.attempts) > 1):
        attempts = result.attempts
        for start in range(0, len(attempts), 4):
            for col, attempt in zip(st.columns(4), attempts[start:start + 4]):
                image = attempt.best_image()
                mark = "★ best · " if attempt is result.best else ""
                with col:
                    st.markdown(f"**{mark}round {attempt.round}.{attempt.candidate}** ({attempt.action or 'first'})")
                    if image is not None and image.path and Path(image.path).exists():
                        st.image(image.path, caption=f"score {_score_text(image)}")
                    if image is not None and image.review is not None:
                        st.markdown(verdicts_markdown(attempt.spec, image.review))


def verdicts_markdown(spec: Any, review: Any) -> str:
    """A review as a markdown list: ✓, ✗ or ? and the check's question, with the critic's reason."""
    questions = {c.id: c.question for c in spec.checks}
    marks = {True: "✓", False: "✗", None: "?"}
    lines = []
    for v in review.verdicts:
        why = f" — {v.reason.translate(_MARKDOWN_SPECIAL)}" if v.reason else ""
        lines.append(f"- {marks[v.passed]} {questions.get(v.check, str(v.check)).translate(_MARKDOWN_SPECIAL)}{why}")
    return "\n".join(lines)


_MARKDOWN_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>#|~$"})


def checklist_markdown(spec: Any) -> str:
    """The checklist as a markdown list: id, kind, the yes/no question and what it depends on.

    Example:
        >>> from ideaforge.agent.checklist import link
        >>> from ideaforge.agent.models import PromptSpec
        >>> spec = PromptSpec(idea="a red kitten", idea_en="a red kitten", positive="red kitten", negative="",
        ...                   language="en", engine="rules", checks=link([{"kind": "attribute", "subject": "kitten",
        ...                   "value": "red"}]))
        >>> print(checklist_markdown(spec))
        **Checklist**
        <BLANKLINE>
        1. `entity` Is there a kitten?
        2. `attribute` Is the kitten red? *(after 1)*
    """
    lines = []
    for c in spec.checks:
        after = f" *(after {', '.join(str(d) for d in c.depends_on)})*" if c.depends_on else ""
        lines.append(f"{c.id}. `{c.kind}` {c.question.translate(_MARKDOWN_SPECIAL)}{after}")
    return "**Checklist**\n\n" + "\n".join(lines)


def show_turn(turn: dict[str, Any], key: str) -> None:
    if turn["role"] == "user":
        st.markdown(turn["text"])
    elif turn.get("error"):
        st.error(turn["error"])
    elif turn.get("result") is not None:
        show_result(turn["result"], key)
    else:
        st.info(turn.get("text", ""))


def last_result() -> RunResult | None:
    for turn in reversed(st.session_state.turns):
        if turn.get("result") is not None and turn["result"].best is not None:
            return turn["result"]
    return None


# -- one run -------------------------------------------------------------------------------------------------
def readable(exc: BaseException) -> str:
    """One line for the user. ideaforge's own errors already name the fix; anything else is a bug."""
    text = " ".join(str(exc).split())
    if isinstance(exc, IdeaForgeError):
        return text
    return f"Unexpected {type(exc).__name__}: {text or 'no details'}. This is a bug; please report it"


class Run:
    """One message's run: a worker thread that only talks to a queue, and the events to stop and await it."""

    def __init__(self, stop_key: str = "") -> None:
        self.stop_key = stop_key  # the Stop button's widget key: True in the script run its click starts
        self.cancel = threading.Event()
        self.finished = threading.Event()  # set once this run's turn is in the history
        self.events: queue.Queue[Event | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.outcome: Any = None  # a RunResult or an exception, once the worker is done

    def start(self, work: Callable[[Callable[[Event], None], threading.Event], RunResult]) -> None:
        def target() -> None:
            try:
                self.outcome = work(self.events.put, self.cancel)
            except Exception as exc:  # noqa: BLE001 - reported to the user as one line, never a traceback
                self.outcome = exc
            self.events.put(None)  # done: the outcome is set

        self.thread = threading.Thread(target=target, name="ideaforge-run", daemon=True)
        self.thread.start()

    def wait(self, timeout: float | None) -> Any:
        if self.thread is not None:
            self.thread.join(timeout)
        return self.outcome

    def finish_in_background(self, turns: list[dict[str, Any]]) -> None:
        """The script stopped watching: the run goes on, and its turn joins `turns` when it ends."""

        def finish() -> None:
            turns.append(outcome_turn(self.wait(None)))
            self.finished.set()

        threading.Thread(target=finish, name="ideaforge-run-finish", daemon=True).start()


def outcome_turn(outcome: Any) -> dict[str, Any]:
    if outcome is None or isinstance(outcome, Cancelled):
        return {"role": "assistant", "text": STOPPED}
    if isinstance(outcome, BaseException):
        return {"role": "assistant", "error": readable(outcome)}
    return {"role": "assistant", "result": outcome}


def answer(text: str, config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """Answer one message; its turn joins the history even when the script is interrupted mid-run."""
    run = st.session_state.run = Run(stop_key=f"stop-{len(st.session_state.turns)}")
    turns = st.session_state.turns  # held here: a stopped script raises again on any session_state access
    turn = None
    try:
        turn = run_in_chat(run, text, config, options)
    finally:
        # Also reached when Streamlit stops this script (Stop, a new message, a closed tab): nothing is thrown
        # away here; the next script run stops the run (Stop) or waits for it (anything else).
        if turn is None:
            run.finish_in_background(turns)
        else:
            turns.append(turn)
            run.finished.set()
    return turn


def settle(earlier: Run | None) -> None:
    """Before anything else is drawn or answered: stop the run in progress (Stop button) or let it finish."""
    if earlier is None or earlier.finished.is_set():
        return
    stopping = bool(st.session_state.get(earlier.stop_key))
    if stopping:
        earlier.cancel.set()
    label = "Stopping the run…" if stopping else "Finishing the run in progress; your message is next…"
    beat = st.empty()
    deadline = time.monotonic() + (STOP_WAIT if stopping else RUN_WAIT)
    with st.spinner(label):
        # Short waits with an element update between them, so a newer message can still interrupt this script.
        while not earlier.finished.wait(0.25):
            if time.monotonic() > deadline:
                earlier.cancel.set()
                earlier.finished.wait(STOP_WAIT)
                break
            beat.empty()


def run_in_chat(run: Run, text: str, config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The assistant's message while it works: status with stages, progress bar and preview, a Stop button."""
    previous = last_result()
    stop_slot = st.empty()
    status = st.status("Loading models…", expanded=True)
    with status:
        try:
            IdeaForge().check(**options)  # bad settings fail here, before any model loads
            forge = get_forge(**config, _api_key=secret_key())
            if options.get("critique", True):
                with st.spinner("Preparing the critic…"):
                    _ = forge.scorer  # loaded once per forge, before the run starts
        except Exception as exc:  # noqa: BLE001 - shown as one line; the chat stays usable
            status.update(label="Could not start", state="error", expanded=False)
            return outcome_turn(exc)
        log, bar, preview, beat = st.container(), st.empty(), st.empty(), st.empty()
    stop_slot.button("Stop generating", key=run.stop_key, help="Stops between steps")
    working(status, "Refining the prompt" if previous else "Optimizing the prompt")
    started = time.perf_counter()
    if previous is None:
        run.start(lambda on_event, cancel: forge.run(text, on_event=on_event, cancel=cancel, **options))
    else:
        run.start(lambda on_event, cancel: forge.refine(previous, text, on_event=on_event, cancel=cancel, **options))
    stage = ""
    while True:
        try:
            event = run.events.get(timeout=0.25)
        except queue.Empty:
            beat.empty()  # an element update is where Streamlit can stop this script when asked to
            continue
        if event is None:
            break
        stage = show_event(event, stage, status, log, bar, preview)
    for slot in (stop_slot, bar, preview):
        slot.empty()
    turn = outcome_turn(run.outcome)
    if "result" in turn:
        done = f"Done in {time.perf_counter() - started:.1f} s: {run.outcome.stopped or 'finished'}"
        status.update(label=done, state="complete", expanded=False)
    else:
        status.update(label="Stopped" if "text" in turn else "Failed", state="error", expanded=False)
    return turn


def working(status: Any, label: str) -> None:
    # State and expanded are repeated on purpose: the browser reads an update without them as "collapsed, done".
    status.update(label=f"{label}…", state="running", expanded=True)


def show_event(ev: Event, stage: str, status: Any, log: Any, bar: Any, preview: Any) -> str:
    """Reflect one progress event; returns the stage now shown."""
    if ev.stage == "done":
        return stage
    label = STAGES.get(ev.stage, ev.stage)
    if ev.round > 1:
        label += f" (round {ev.round})"
    if label != stage:
        working(status, label)
    if ev.stage == "prompt" and ev.data.get("spec"):
        log.markdown(f"Prompt: `{ev.data['spec']['positive']}`")
    elif ev.stage == "revise" and ev.message:
        log.markdown(f"Critique: {ev.message}")
    elif ev.stage == "generate" and ev.total:
        bar.progress(ev.step / ev.total, text=f"step {ev.step} of {ev.total}")
        if ev.preview is not None:
            preview.image(ev.preview, caption="preview", width=192)
    return label


# -- the page ------------------------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="ideaforge", page_icon="🎨")
    st.title("ideaforge")
    st.session_state.setdefault("turns", [])
    try:
        defaults = load_settings()
    except IdeaForgeError as exc:  # a bad IDEAFORGE_* variable: nothing can run until it is fixed
        st.error(readable(exc))
        st.stop()
    config, options = sidebar(defaults)
    has_result = last_result() is not None
    message = st.chat_input(
        "A follow-up, e.g. make it night" if has_result else "An idea, e.g. a red kitten in a basket",
        key="message",
    )
    if not st.session_state.turns and not message:
        st.caption(
            "Describe an idea in any language. Follow-ups refine the last image; "
            "“New conversation” in the sidebar starts over."
        )
    inbox = st.session_state.setdefault("inbox", [])  # messages sent while a run was in progress wait here
    if message:
        inbox.append(message)
    settle(st.session_state.get("run"))
    for i, turn in enumerate(st.session_state.turns):
        with st.chat_message(turn["role"]):
            show_turn(turn, str(i))
    while inbox:
        text = inbox.pop(0)
        st.session_state.turns.append({"role": "user", "text": text})
        with st.chat_message("user"):
            st.markdown(text)
        with st.chat_message("assistant"):
            turn = answer(text, config, options)
            if turn is not None:
                show_turn(turn, str(len(st.session_state.turns) - 1))


main()
