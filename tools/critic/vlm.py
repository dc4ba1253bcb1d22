"""The vision-LLM critic: any OpenAI-compatible chat model that takes images answers the checklist.

One request per image carries the image (a base64 PNG data URL, downscaled to `max_side`) and every check as a
numbered yes/no question; the structured reply (`{"answers": [{"id", "answer", "reason"}]}`) is validated with
pydantic. What servers differ in is handled here, as the prompt engine does for specs (`agent/ask.py`):

- **The structured-output method.** `auto` uses what last worked with this server and model, else json_schema,
  then json_mode when the server refuses json_schema (a 400). function_calling only when asked for.
- **Logprobs.** Asked for (`top_logprobs=5`) unless the server refused them once; then P(yes) of each check is
  read from the tokens of its `answer` value, VQAScore-style (None where the server sends none).
- **Bad replies.** Garbage gets one repair round, then `LLMError`. Ids never asked are dropped (a warning); ids
  left out get one round asking only for them, then stay unverified (`passed=None`, a warning).
- **Failures.** Timeouts, 5xx and refused connections are retried `max_retries` times, then `LLMError` with a
  one-line, redacted reason (the caller falls back to CLIP).

`absent` checks are asked the positive way round ("Is there any triangle in the image?") and the answer inverted:
small VLMs answer negated questions unreliably. The idea itself is not sent: the questions say what to look for,
and the idea's words would invite the model to see what was asked for rather than what is there.

The client is langchain-openai's `ChatOpenAI` over `bounded_http_client`: it returns the logprobs in
`response_metadata`, so the `openai` client is not needed directly. Retries are ours (the client's are off), so
`Review.calls` counts every request.

Example (needs a server, so not run here):
    >>> critic = VLMCritic("http://127.0.0.1:8000/v1", "Qwen/Qwen2.5-VL-3B-Instruct")  # doctest: +SKIP
    >>> [review] = critic.review([image], checks, "a red kitten")  # doctest: +SKIP
    >>> [(v.check, v.passed, v.probability) for v in review.verdicts]  # doctest: +SKIP
    [(1, True, 0.97), (2, False, 0.08)]
"""

from __future__ import annotations

import base64
import contextvars
import io
import json
import math
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ValidationError, field_validator, model_validator

from ideaforge.errors import InputError, LLMError
from ideaforge.tools import llm as _llm
from ideaforge.tools.critic.verdicts import CheckLike, Review, Verdict, alignment
from ideaforge.tools.sanitize import register_secret, safe

METHODS = ("auto", "json_schema", "function_calling", "json_mode")
PROMPT_FILES = {"system": "critic_vlm.md", "user": "critic_vlm_user.md", "repair": "critic_vlm_repair.md",
                "absent": "critic_vlm_absent.md"}
TOOL = "report_answers"
TOP_LOGPROBS = 5
TOKENS_PER_CHECK = 96  # {"id": 12, "answer": "yes", "reason": <= 200 characters} is about 70 tokens
MAX_REASON = 200
_ITEM = {"type": "object", "additionalProperties": False, "required": ["id", "answer", "reason"], "properties": {
    "id": {"type": "integer", "description": "The question's number."},
    "answer": {"type": "string", "enum": ["yes", "no"]},
    "reason": {"type": "string", "description": "What is visible, in a few words (at most 200 characters)."}}}
SCHEMA: dict[str, Any] = {"type": "object", "additionalProperties": False, "required": ["answers"],
                          "properties": {"answers": {"type": "array", "items": _ITEM}}}
_no_logprobs: set[tuple[str | None, str]] = set()  # servers that refused logprobs once (per process)
_lock = threading.Lock()


class Answer(BaseModel):
    """One answer as the model gives it; "Yes", "YES." and true are read as yes."""

    id: int
    answer: Literal["yes", "no"]
    reason: str = ""

    @field_validator("answer", mode="before")
    @classmethod
    def _yes_no(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return "yes" if v else "no"
        return re.sub(r"[^a-z]", "", v.lower()) if isinstance(v, str) else v

    @field_validator("reason", mode="before")
    @classmethod
    def _short(cls, v: Any) -> Any:  # the reason reaches records and terminals: one safe line
        return safe(" ".join(str(v).split()))[:MAX_REASON] if v is not None else ""


class Answers(BaseModel):
    answers: list[Answer]

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, v: Any) -> Any:
        return {"answers": v} if isinstance(v, list) else v


class _Unsupported(Exception):
    """The server refused this structured-output method's request (a 400); another method may work."""


@dataclass
class _Cost:
    calls: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Reply:
    answers: Answers | None
    error: str
    raw: str
    tokens: list[dict[str, Any]] | None = None  # logprobs["content"] of the reply, where the server sent them


class VLMCritic:
    """Checks answered by a vision LLM on an OpenAI-compatible server; one `Review` per image.

    Args:
        base_url: the server, e.g. http://127.0.0.1:8000/v1 (vLLM), http://127.0.0.1:11434/v1 (Ollama); None is
            OpenAI's.
        model: the model name the server knows.
        api_key: str or SecretStr; None for local servers that need none. Never logged.
        timeout: seconds one request may take in all (connect, headers, body).
        max_retries: retries of a request after a timeout, a 5xx or a refused connection.
        method: auto, json_schema, function_calling or json_mode.
        max_side: the longest image side sent (downscaled, never upscaled).
        concurrency: requests in flight at once (one per image).
        temperature: sampling temperature; 0 for repeatable verdicts.
        prompts: templates replacing the bundled ones, by key: system, user ({checks}, {count}, {ids}), repair
            ({error}, {reply}, {ids}), absent ({subject}).
    """

    name = "vlm"

    def __init__(self, base_url: str | None = None, model: str = "gpt-4o-mini", api_key: Any = None, *,
                 timeout: float = 60.0, max_retries: int = 2, method: str = "auto", max_side: int = 768,
                 concurrency: int = 4, temperature: float = 0.0, prompts: Mapping[str, str] | None = None) -> None:
        if method not in METHODS:
            raise InputError(f"`method` must be one of {', '.join(METHODS)}, not {method!r}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise InputError(f"`timeout` must be a positive number of seconds, not {timeout!r}")
        for label, value, low in (("max_retries", max_retries, 0), ("max_side", max_side, 16),
                                  ("concurrency", concurrency, 1)):
            if not isinstance(value, int) or value < low:
                raise InputError(f"`{label}` must be an integer >= {low}, not {value!r}")
        unknown = sorted(set(prompts or {}) - set(PROMPT_FILES))
        if unknown:
            raise InputError(f"`prompts` may hold {', '.join(PROMPT_FILES)}, not {', '.join(map(repr, unknown))}")
        self.prompts = {**bundled_prompts(), **(prompts or {})}
        from pydantic import SecretStr

        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        register_secret(key)  # redacted from everything ideaforge prints or stores
        self._key = SecretStr(key or "not-needed")  # local servers accept any key; the client insists on one
        self.base_url, self.model, self.timeout, self.max_retries = base_url, model, float(timeout), max_retries
        self.method, self.max_side, self.concurrency, self.temperature = method, max_side, concurrency, temperature
        self._llm: Any = None
        self._llm_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VLMCritic(base_url={self.base_url!r}, model={self.model!r}, method={self.method!r})"

    @property
    def llm(self) -> Any:
        with self._llm_lock:
            if self._llm is None:
                from langchain_openai import ChatOpenAI

                self._llm = ChatOpenAI(model=self.model, base_url=self.base_url, api_key=self._key,
                                       timeout=self.timeout, max_retries=0, temperature=self.temperature,
                                       http_client=_llm.bounded_http_client(self.timeout))
            return self._llm

    def review(self, images: Sequence[Any], checks: Sequence[CheckLike], idea: str) -> list[Review]:
        """One `Review` per image, in order; the images' requests run concurrently (at most `concurrency`).

        Raises:
            LLMError: a request failed after its retries, or a reply was unusable after the repair round.
            InputError: an image is not a PIL image (or has none in `.image`).
        """
        if not images:
            return []
        checks, urls = list(checks), [self._data_url(image) for image in images]
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, len(urls)), thread_name_prefix="ideaforge-vlm")
        try:  # each worker runs in a copy of the caller's context, so the caller's call_scope bounds it too
            futures = [pool.submit(contextvars.copy_context().run, self._review_one, url, checks) for url in urls]
            return [f.result() for f in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    # -- one image -------------------------------------------------------------------------------------------------
    def _review_one(self, url: str, checks: list[CheckLike]) -> Review:
        t0 = time.perf_counter()
        cost = _Cost()
        got: dict[int, tuple[Answer, float | None]] = {}
        if checks:
            with _llm.call_scope(self.timeout * (self.max_retries + 1) * 3):  # the request, its repair, the missing
                got = self._answers(url, checks, cost)
                missing = [c for c in checks if c.id not in got]
                if missing:
                    try:
                        got.update(self._answers(url, missing, cost))
                    except LLMError as exc:
                        cost.warnings.append(f"the VLM's second try for the unanswered checks failed: {exc}")
        verdicts = []
        for c in checks:
            if c.id not in got:
                verdicts.append(Verdict(c.id, None, None, "the VLM gave no answer", self.name))
                continue
            a, p = got[c.id]
            passed = (a.answer == "yes") != (c.kind == "absent")
            if c.kind == "absent" and p is not None:
                p = 1.0 - p
            verdicts.append(Verdict(c.id, passed, p, a.reason, self.name))
        unanswered = [v.check for v in verdicts if v.passed is None]
        if unanswered:
            cost.warnings.append(f"the VLM did not answer check(s) {', '.join(map(str, unanswered))}; left unverified")
        return Review(verdicts, alignment(verdicts, checks), critic=self.name, calls=cost.calls,
                      seconds=time.perf_counter() - t0, warnings=cost.warnings)

    def _answers(self, url: str, checks: list[CheckLike], cost: _Cost) -> dict[int, tuple[Answer, float | None]]:
        """The answers to `checks` by id (only ids asked), with P(yes) where the server sent logprobs."""
        from langchain_core.messages import HumanMessage

        messages = self._messages(url, checks)
        ids = ", ".join(str(c.id) for c in checks)
        methods = self._methods()
        problems = []
        for k, method in enumerate(methods):
            try:
                reply = self._request(messages, len(checks), method, cost, last=k == len(methods) - 1)
                if reply.answers is None:
                    repair = _fill(self.prompts["repair"], ids=ids, error=reply.error,
                                   reply=reply.raw[:1500] or "(nothing)")
                    reply = self._request([*messages, HumanMessage(repair)], len(checks), method, cost,
                                          last=k == len(methods) - 1)
            except _Unsupported as exc:
                problems.append(f"{method}: {exc}")
                continue
            if reply.answers is None:
                raise LLMError(f"the VLM's reply was unusable twice: {reply.error}")
            _llm.remember_method(self.base_url, self.model, method)
            return self._match(reply, {c.id for c in checks}, cost)
        raise LLMError(f"the VLM server accepted none of the structured-output methods ({'; '.join(problems)})")

    def _match(self, reply: _Reply, asked: set[int], cost: _Cost) -> dict[int, tuple[Answer, float | None]]:
        assert reply.answers is not None
        answers = reply.answers.answers
        probs = yes_probabilities(reply.tokens, len(answers)) if reply.tokens else [None] * len(answers)
        out: dict[int, tuple[Answer, float | None]] = {}
        unknown = []
        for a, p in zip(answers, probs):
            if a.id not in asked:
                unknown.append(a.id)
            elif a.id not in out:
                out[a.id] = (a, p)
        if unknown:
            cost.warnings.append(f"the VLM answered check id(s) never asked ({', '.join(map(str, unknown[:10]))}); "
                                 "ignored")
        return out

    # -- requests ----------------------------------------------------------------------------------------------------
    def _methods(self) -> list[str]:
        if self.method != "auto":
            return [self.method]
        known = _llm.known_method(self.base_url, self.model)
        return [known] if known else ["json_schema", "json_mode"]

    def _messages(self, url: str, checks: list[CheckLike]) -> list[Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        lines = "\n".join(f"{c.id}. {_question(c, self.prompts['absent'])}" for c in checks)
        user = _fill(self.prompts["user"], checks=lines, count=str(len(checks)),
                     ids=", ".join(str(c.id) for c in checks))
        return [SystemMessage(self.prompts["system"]),
                HumanMessage([{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": user}])]

    def _request(self, messages: list[Any], n: int, method: str, cost: _Cost, *, last: bool) -> _Reply:
        """One request with its retries; a 400 on logprobs drops them (remembered), other 400s `_Unsupported`."""
        import openai

        kwargs: dict[str, Any]
        if method == "function_calling":
            tool = {"type": "function", "function": {"name": TOOL, "description": "Report the answers.",
                                                     "parameters": SCHEMA}}
            kwargs = {"tools": [tool], "tool_choice": {"type": "function", "function": {"name": TOOL}}}
        elif method == "json_schema":
            kwargs = {"response_format": {"type": "json_schema",
                                          "json_schema": {"name": "answers", "strict": True, "schema": SCHEMA}}}
        else:
            kwargs = {"response_format": {"type": "json_object"}}
        server = (self.base_url, self.model)
        with _lock:
            logprobs = method != "function_calling" and server not in _no_logprobs  # tool arguments carry none
        tries = 0
        while True:
            cost.calls += 1
            extra = {"logprobs": True, "top_logprobs": TOP_LOGPROBS} if logprobs else {}
            try:  # max_tokens: a small model looping inside a string ends with finish_reason length, not never
                message = self.llm.invoke(messages, max_tokens=TOKENS_PER_CHECK * n + 64, **kwargs, **extra)
            except openai.LengthFinishReasonError:
                return _Reply(None, "the reply was cut off at the length limit; answer much more briefly", "")
            except Exception as exc:
                why = _one_line(_llm.reason(exc))
                if _llm.is_context_error(exc):
                    raise LLMError(f"the image and checks do not fit the VLM's context window ({why}); "
                                   "lower max_side") from exc
                if _llm.is_unsupported_request(exc):
                    if logprobs and ("logprob" in str(exc).lower() or last):
                        with _lock:
                            _no_logprobs.add(server)
                        logprobs = False
                        continue
                    raise _Unsupported(why) from None
                if tries < self.max_retries and _retryable(exc):
                    tries += 1
                    time.sleep(min(0.25 * 2 ** (tries - 1), 2.0))
                    continue
                after = f" after {tries + 1} tries" if tries else ""
                raise LLMError(f"the VLM request failed{after}: {why}") from exc
            return _parse(message)

    def _data_url(self, image: Any) -> str:
        from PIL import Image

        img = getattr(image, "image", image)
        if not isinstance(img, Image.Image):
            raise InputError(f"the vlm critic reviews PIL images, not {type(image).__name__!r}")
        img = img.convert("RGB")
        scale = self.max_side / max(img.size)
        if scale < 1:
            size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            img = img.resize(size, Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# -- replies ---------------------------------------------------------------------------------------------------------
def _parse(message: Any) -> _Reply:
    """The answers in a reply (a tool call's arguments, or JSON in the content), or why there are none."""
    calls = getattr(message, "tool_calls", None) or []
    content = message.content if isinstance(message.content, str) else "".join(
        p.get("text", "") if isinstance(p, dict) else str(p) for p in message.content)
    tokens = ((getattr(message, "response_metadata", None) or {}).get("logprobs") or {}).get("content")
    raw = json.dumps(calls[0].get("args", {}), ensure_ascii=False) if calls else content
    if not raw.strip():
        bad = getattr(message, "invalid_tool_calls", None) or []
        raw = str(bad[0].get("args") or "") if bad else ""
        if not raw.strip():
            return _Reply(None, "the reply was empty", "")
    try:
        data = calls[0].get("args", {}) if calls else json.loads(_json_text(raw))
        return _Reply(Answers.model_validate(data), "", raw, None if calls else tokens)
    except (ValueError, ValidationError) as exc:
        return _Reply(None, _one_line(str(exc), 300), raw)


def _json_text(text: str) -> str:
    """The outermost JSON object (or list) in a reply; models wrap JSON in prose or code fences."""
    starts = [i for i in (text.find("{"), text.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON in the reply")
    start = min(starts)
    end = text.rfind("}" if text[start] == "{" else "]")
    if end <= start:
        raise ValueError("no complete JSON in the reply")
    return text[start : end + 1]


_ANSWER = re.compile(r'"answer"\s*:\s*"?')


def yes_probabilities(tokens: list[dict[str, Any]] | None, n: int) -> list[float | None]:
    """P(yes) for each of the reply's `n` answers, from the logprobs of the token each `answer` value starts with.

    Among that token's top alternatives, yes-like tokens ("yes", "Yes", "y") and no-like ones are summed and
    normalized (VQAScore's P("yes"), made robust to the case and spacing variants a tokenizer splits "yes" into).
    None for every answer when the tokens cannot be lined up with the answers.

    >>> toks = [{"token": '{"answer":"', "logprob": 0.0}, {"token": "yes", "logprob": -0.1,
    ...          "top_logprobs": [{"token": "yes", "logprob": -0.1}, {"token": "no", "logprob": -2.4}]},
    ...         {"token": '"}', "logprob": 0.0}]
    >>> [round(p, 3) for p in yes_probabilities(toks, 1)]
    [0.909]
    """
    if not tokens:
        return [None] * n
    starts, text = [], ""
    for t in tokens:
        starts.append(len(text))
        text += str(t.get("token", ""))
    offsets = [m.end() for m in _ANSWER.finditer(text)]
    if len(offsets) != n:
        return [None] * n
    out: list[float | None] = []
    for offset in offsets:
        k = max(i for i, s in enumerate(starts) if s <= offset)
        if starts[k] + len(str(tokens[k].get("token", ""))) <= offset and k + 1 < len(tokens):
            k += 1
        out.append(_p_yes(tokens[k]))
    return out


def _p_yes(token: dict[str, Any]) -> float | None:
    options = {str(o.get("token", "")): o.get("logprob") for o in token.get("top_logprobs") or []}
    options.setdefault(str(token.get("token", "")), token.get("logprob"))
    mass: dict[str, float] = {}
    for text, logprob in options.items():
        word = re.sub(r"[^a-z]", "", text.lower())
        side = "yes" if word and "yes".startswith(word) else "no" if word in ("n", "no") else None
        if side and isinstance(logprob, int | float):
            mass[side] = mass.get(side, 0.0) + math.exp(logprob)
    if "yes" in mass and "no" in mass:
        return mass["yes"] / (mass["yes"] + mass["no"])
    if "yes" in mass:
        return min(mass["yes"], 1.0)  # only "yes" among the alternatives: its own probability (VQAScore)
    return max(1.0 - mass["no"], 0.0) if "no" in mass else None


# -- helpers ---------------------------------------------------------------------------------------------------------
@cache
def bundled_prompts() -> dict[str, str]:
    """The templates shipped in prompts/critic_vlm*.md, read as the package's data files (the tools layer does
    not import `ideaforge.prompts`; the agent may pass its own through `prompts=`)."""
    from importlib import resources

    root = resources.files("ideaforge").joinpath("prompts")
    return {k: root.joinpath(name).read_text(encoding="utf-8").strip() for k, name in PROMPT_FILES.items()}


def _question(check: CheckLike, absent: str) -> str:
    if check.kind == "absent" and check.subject.strip():
        return _fill(absent, subject=check.subject.strip())
    if check.question.strip():
        return " ".join(check.question.split())
    return " ".join(p for p in (f"Does the image show {check.subject}", check.value, check.object) if p) + "?"


def _fill(template: str, **values: str) -> str:
    """`{name}` slots filled in one pass (a value that itself holds `{name}` is left alone; JSON braces too)."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), template)


def _retryable(exc: BaseException) -> bool:
    """A timeout, a refused connection, a 5xx or 429: worth another try. Not a reply too large or a spent budget."""
    import openai

    current: BaseException | None = exc
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        if isinstance(current, _llm.ReplyTooLarge | _llm.DeadlineExceeded):
            return False
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code >= 500 or exc.status_code in (408, 429)
    return isinstance(exc, openai.APIConnectionError)


def _one_line(text: str, limit: int = 240) -> str:
    text = safe(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
