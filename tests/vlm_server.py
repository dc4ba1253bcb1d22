"""A loopback OpenAI-compatible vision server for tests: it looks at the image it gets and answers the checks.

`/v1/chat/completions` decodes the base64 PNG of the request's `image_url` part, runs `shapes_world.detect` on
it, reads the numbered questions ("3. Is there a red circle?") from the text beside the image and answers each
with `shapes_world.answer`, in the form the request asked for: a tool call when it offers tools, else JSON
content (json_schema, json_object or neither). With `logprobs` it sends a plausible `logprobs.content`: the answer
values are their own tokens, with "yes" and "no" among the top alternatives (P(answer) = `confidence`).

    with VisionServer() as server:            # server.url is http://127.0.0.1:PORT/v1
        server.push(Fault.error(500))          # the next request gets a 500, the one after is answered
        ... VLMCritic(server.url, "fake-vlm").review(images, checks, idea) ...
        server.requests[0].images              # [(128, 128)]: the decoded sizes, per request

Faults (queued, one request each): `error(status)`, `slow(seconds)`, `garbage(text)`, `unknown_ids()`,
`missing(*ids)`, `huge(megabytes)`, `refuse("json_schema" | "logprobs" | "tools")` (a 400 when the request uses
that, else the request is answered and the fault stays queued). `refuse=` on the constructor refuses for good.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from llm_server import FakeOpenAI
from PIL import Image
from shapes_world import answer, detect

_LINE = re.compile(r"^\s*(\d+)[.)]\s+(.+?)\s*$", re.MULTILINE)


@dataclass
class Fault:
    """One misbehaviour for one request."""

    kind: str
    status: int = 200
    seconds: float = 0.0
    text: str = ""
    ids: tuple[int, ...] = ()
    what: str = ""

    @classmethod
    def error(cls, status: int = 500) -> Fault:
        return cls("error", status=status)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Answer after `seconds` (longer than the client's timeout: it gives up first)."""
        return cls("slow", seconds=seconds)

    @classmethod
    def garbage(cls, text: str = "Sure! The image looks great, I would say mostly yes.") -> Fault:
        return cls("garbage", text=text)

    @classmethod
    def unknown_ids(cls) -> Fault:
        """The right answers, plus answers for ids 98 and 99 that were never asked."""
        return cls("unknown")

    @classmethod
    def missing(cls, *ids: int) -> Fault:
        """The answers without those ids."""
        return cls("missing", ids=ids)

    @classmethod
    def huge(cls, megabytes: float = 1.5) -> Fault:
        return cls("huge", seconds=megabytes)

    @classmethod
    def refuse(cls, what: str) -> Fault:
        """A 400 for a request that uses `what` (json_schema, logprobs or tools)."""
        return cls("refuse", what=what)


@dataclass
class Request:
    """What the server received: the body (images replaced by their sizes), the decoded images, when."""

    body: dict[str, Any]
    images: list[tuple[int, int]]
    checks: dict[int, str]
    form: str  # json_schema | json_object | tools | text
    logprobs: bool
    headers: dict[str, str]  # lower-case names
    started: float
    ended: float = 0.0
    status: int = 200


@dataclass
class VisionServer:
    """Context manager; `latency` delays every reply (to see requests overlap), `confidence` is P(answer)."""

    refuse: set[str] = field(default_factory=set)
    latency: float = 0.0
    confidence: float = 0.9
    queue: deque[Fault] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    closing: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def push(self, *faults: Fault) -> VisionServer:
        self.queue.extend(faults)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> VisionServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                status, reply = outer._handle(body, {k.lower(): v for k, v in self.headers.items()})
                self._send(status, reply)

            def _send(self, status: int, body: Any) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._server is not None
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    # -- answering ---------------------------------------------------------------------------------------------------
    def _handle(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, Any]:
        images, text = _content(body.get("messages") or [])
        rf = body.get("response_format") or {}
        form = "tools" if body.get("tools") else rf.get("type", "text") if isinstance(rf, dict) else "text"
        record = Request(_shrunk(body), [im.size for im in images], {int(i): q for i, q in _LINE.findall(text)},
                         form, bool(body.get("logprobs")), headers, time.monotonic())
        uses = {form, *(["logprobs"] if record.logprobs else [])}
        with self._lock:
            self.requests.append(record)
            fault = self.queue[0] if self.queue else None
            if fault is not None and not (fault.kind == "refuse" and fault.what not in uses):
                self.queue.popleft()
            else:
                fault = None
        try:
            if self.latency:
                self.closing.wait(self.latency)
            refused = next((w for w in sorted(self.refuse) if w in uses), None)
            if fault is not None and fault.kind == "refuse":
                refused = fault.what
            if refused is not None:
                record.status = 400
                return 400, {"error": {"message": f"{refused} is not supported by this server", "code": 400,
                                       "type": "invalid_request_error", "param": refused}}
            if fault is not None and fault.kind == "error":
                record.status = fault.status
                return fault.status, {"error": {"message": "the server failed", "code": fault.status}}
            if fault is not None and fault.kind == "slow":
                self.closing.wait(fault.seconds)
            if not images:
                record.status = 400
                return 400, {"error": {"message": "no image in the request", "code": 400}}
            seen = detect(images[-1])
            answers = [{"id": i, "answer": a, "reason": why}
                       for i, q in record.checks.items() for a, why in [answer(q, seen)]]
            if fault is not None and fault.kind == "unknown":
                answers += [{"id": 98, "answer": "yes", "reason": "x"}, {"id": 99, "answer": "no", "reason": "y"}]
            if fault is not None and fault.kind == "missing":
                answers = [a for a in answers if a["id"] not in fault.ids]
            content = json.dumps({"answers": answers})
            if fault is not None and fault.kind == "garbage":
                content, form = fault.text, "text"
            if fault is not None and fault.kind == "huge":
                content = json.dumps({"answers": answers, "pad": "x" * int(fault.seconds * 1_000_000)})
            return 200, self._completion(body, content, form, record.logprobs and form != "tools")
        finally:
            record.ended = time.monotonic()

    def _completion(self, body: dict[str, Any], content: str, form: str, logprobs: bool) -> dict[str, Any]:
        if form == "tools":
            out = FakeOpenAI._completion(body, content)
        else:
            out = FakeOpenAI._wrap(body, {"role": "assistant", "content": content, "refusal": None}, "stop")
            if logprobs:
                out["choices"][0]["logprobs"] = {"content": self._logprobs(content), "refusal": None}
        return out

    def _logprobs(self, content: str) -> list[dict[str, Any]]:
        """Tokens of the reply; each answer value is a token with "yes" and "no" among its top alternatives."""
        p = self.confidence
        out = []
        for piece in re.findall(r"(?<=\")(?:yes|no)(?=\")|[A-Za-z]+|\s+|[^A-Za-z\s]", content):
            if piece in ("yes", "no"):
                other = "no" if piece == "yes" else "yes"
                top = [{"token": piece, "logprob": math.log(p), "bytes": list(piece.encode())},
                       {"token": other, "logprob": math.log(1 - p), "bytes": list(other.encode())},
                       {"token": "Yes" if piece == "yes" else "No", "logprob": -9.0, "bytes": None}]
                out.append({"token": piece, "logprob": math.log(p), "bytes": list(piece.encode()), "top_logprobs": top})
            else:
                out.append({"token": piece, "logprob": 0.0, "bytes": list(piece.encode()),
                            "top_logprobs": [{"token": piece, "logprob": 0.0, "bytes": list(piece.encode())}]})
        return out


def _content(messages: list[dict[str, Any]]) -> tuple[list[Image.Image], str]:
    """The images of the message that carries them (the first user message with an image), and its text."""
    for m in messages:
        parts = m.get("content")
        if not isinstance(parts, list):
            continue
        images = []
        for part in parts:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                images.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
        if images:
            return images, "\n".join(p.get("text", "") for p in parts if p.get("type") == "text")
    return [], ""


def _shrunk(body: dict[str, Any]) -> dict[str, Any]:
    """The body with each image's data URL cut to its first 40 characters (requests stay readable)."""
    def cut(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: (x[:40] + "…" if k == "url" and isinstance(x, str) else cut(x)) for k, x in v.items()}
        return [cut(x) for x in v] if isinstance(v, list) else v

    return cut(body)
