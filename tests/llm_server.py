"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

It answers like an OpenAI endpoint: the reply is a tool call when the request offers tools (function calling),
else message content (json_schema / json_mode). `GOOD` is a reply with a checklist, `OLDER` one in the older shape
(`elements`, no `checks`). Tests queue replies (good, malformed, schema-violating, HTTP
errors, slow) and read back every request the real `langchain-openai` client sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted reply. `payload` is a dict (sent as JSON) or a raw string (sent as-is, e.g. malformed)."""

    payload: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: str | None = None  # raw HTTP body for error replies
    trickle: float = 0.0  # > 0: send the headers, then the body one byte every `trickle` seconds

    @classmethod
    def spec(cls, **fields: Any) -> Reply:
        return cls(payload=fields)

    @classmethod
    def text(cls, raw: str) -> Reply:
        return cls(payload=raw)

    @classmethod
    def error(cls, status: int, message: str = "server error", headers: dict[str, str] | None = None) -> Reply:
        body = json.dumps({"error": {"message": message, "type": "server_error", "code": status}})
        return cls(status=status, body=body, headers=headers or {})

    @classmethod
    def trickling(cls, every: float) -> Reply:
        """A good reply whose headers come at once and whose body comes one byte every `every` seconds."""
        return cls(payload=dict(GOOD), trickle=every)

    @classmethod
    def huge(cls, megabytes: float) -> Reply:
        """A reply of about `megabytes` MB: a valid completion whose content is mostly one long string."""
        return cls(payload="x" * int(megabytes * 1_000_000))

    @classmethod
    def slow(cls, seconds: float, then: Reply | None = None) -> Reply:
        r = then or cls.spec(idea_en="x", positive="x", negative="", elements=["x"], language="en")
        return cls(payload=r.payload, status=r.status, headers=r.headers, delay=seconds, body=r.body)


GOOD = dict(
    idea_en="a red kitten sitting in a basket",
    positive="a small red kitten sitting in a wicker basket, soft natural light, pet photography, highly detailed",
    negative="lowres, blurry, watermark, bad anatomy, extra legs",
    checks=[
        {"kind": "entity", "subject": "kitten"},
        {"kind": "entity", "subject": "wicker basket"},
        {"kind": "attribute", "subject": "kitten", "value": "red"},
        {"kind": "relation", "subject": "kitten", "value": "sitting in", "object": "wicker basket"},
    ],
    language="zh",
)
# The reply of a model that follows the older schema: `elements`, no `checks`.
OLDER = {**{k: v for k, v in GOOD.items() if k != "checks"}, "elements": ["red kitten", "wicker basket"]}


class FakeOpenAI:
    """Context manager: `with FakeOpenAI() as server: ... server.url ... server.requests`.

    `llama_cpp=True` behaves like llama.cpp's `llama-server`: it ignores an object `tool_choice` and answers a
    function-calling request with the JSON in `message.content`, serves `/props` with its context size `n_ctx`,
    answers a prompt longer than `n_ctx` (counted as characters / 4) with its context-size 400, and a reply longer
    than the request's `max_tokens` (characters / 4) is cut there with `finish_reason: length`.
    """

    def __init__(
        self,
        default: Callable[[dict[str, Any]], Reply] | None = None,
        *,
        llama_cpp: bool = False,
        n_ctx: int = 4096,
        report_n_ctx: bool = True,
    ) -> None:
        self.llama_cpp = llama_cpp
        self.n_ctx = n_ctx
        self.report_n_ctx = report_n_ctx  # False: /props says nothing about the context (older servers, proxies)
        self.queue: deque[Reply] = deque()
        self.requests: list[dict[str, Any]] = []
        self.default = default or (lambda req: Reply.spec(**GOOD))
        self._server: ThreadingHTTPServer | None = None
        self.closing = threading.Event()  # set on exit: slow replies stop at once

    def push(self, *replies: Reply) -> FakeOpenAI:
        self.queue.extend(replies)
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if outer.llama_cpp and outer.report_n_ctx and self.path.rstrip("/") == "/props":
                    self._send(200, {"default_generation_settings": {"n_ctx": outer.n_ctx}, "total_slots": 1})
                    return
                if not self.path.rstrip("/").endswith("/models"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._send(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})

            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(request)
                if outer.llama_cpp:
                    prompt_tokens = len(json.dumps(request.get("messages", []), ensure_ascii=False)) // 4
                    if prompt_tokens > outer.n_ctx:
                        message = (f"the request exceeds the available context size ({prompt_tokens} tokens > "
                                   f"n_ctx {outer.n_ctx}), try increasing it")
                        body = json.dumps({"error": {"code": 400, "message": message,
                                                     "type": "exceed_context_size_error"}})
                        self._send(400, body)
                        return
                reply = outer.queue.popleft() if outer.queue else outer.default(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.trickle:
                    self._trickle(outer._completion(request, reply.payload), reply.trickle)
                    return
                if reply.status != 200:
                    self._send(reply.status, reply.body or "{}", reply.headers)
                    return
                self._send(200, outer._completion(request, reply.payload, llama_cpp=outer.llama_cpp), reply.headers)

            def _trickle(self, body: Any, every: float) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    for i in range(len(data)):
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        if outer.closing.wait(every):
                            return
                except (BrokenPipeError, ConnectionResetError):  # the client gave up, as it should
                    pass

            def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                data = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
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

    @staticmethod
    def _completion(request: dict[str, Any], payload: Any, *, llama_cpp: bool = False) -> dict[str, Any]:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        message: dict[str, Any] = {"role": "assistant", "content": text, "refusal": None}
        finish = "stop"
        tools = request.get("tools") or []
        limit = request.get("max_completion_tokens") or request.get("max_tokens")
        if llama_cpp and limit and len(text) // 4 > limit:
            message["content"] = text[: limit * 4]
            return FakeOpenAI._wrap(request, message, "length")
        if tools and llama_cpp and not isinstance(request.get("tool_choice"), str):
            tools = []  # llama.cpp ignores an object tool_choice and answers in content
        if tools:
            name = tools[0]["function"]["name"]
            message = {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": name, "arguments": text}}
                ],
            }
            finish = "tool_calls"
        return FakeOpenAI._wrap(request, message, finish)

    @staticmethod
    def _wrap(request: dict[str, Any], message: dict[str, Any], finish: str) -> dict[str, Any]:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.get("model", "fake-model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
