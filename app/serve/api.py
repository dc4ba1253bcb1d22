"""The HTTP app: OpenAI's images API, the jobs API with its event stream, the image files, health.

- `POST /v1/images/generations`: OpenAI's request (`prompt` is the idea, `n`, `size`, `response_format`,
  `model`) with ideaforge's own fields as extras (`seed`, `style`, `negative`, `steps`, `critique`, ...), all
  validated by `GenerateRequest`; OpenAI's reply, with `revised_prompt` the optimized positive prompt. A client
  that disconnects cancels its run.
- `POST /v1/runs` stores a job (SQLite, before answering) and answers `{"id", "status": "queued"}`; `GET
  /v1/runs/{id}`, `GET /v1/runs/{id}/events` (server-sent events), `DELETE /v1/runs/{id}` (cancel).
- `GET /v1/images/files/{file}` serves a PNG below the output folder, nothing else; `GET /v1/models`; `GET /health`.

Errors come back in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Example:
    >>> app = create_app(ServeConfig(), {"model": "path/to/sd"})  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import Request  # at module level: FastAPI resolves the routes' annotations from these globals

from ideaforge.agent.request import GenerateRequest
from ideaforge.app.serve.config import ServeConfig
from ideaforge.app.serve.store import FINISHED, JobStore
from ideaforge.errors import InputError

DB_NAME = "ideaforge-serve.sqlite3"
MAX_SLOTS = 64
_OPENAI_ONLY = ("user", "quality", "output_format", "output_compression", "background", "moderation")
_OPENAI_STYLES = ("vivid", "natural")  # OpenAI's `style`; any other value is an ideaforge style preset


class ApiError(Exception):
    """An error reply in OpenAI's shape."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.headers = status, message, kind, code, headers or {}


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    from ideaforge.tools.sanitize import safe

    return {"error": {"message": " ".join(safe(message).split()), "type": kind, "param": None, "code": code}}


# --- the guard: key and body size, as plain ASGI (streaming and disconnects pass through untouched) ------------


class Guard:
    """Bearer auth on every path but `/health` when a key is set, and a limit on request bodies."""

    def __init__(self, app: Any, key: str | None, max_body: int) -> None:
        self.app, self.key, self.max_body = app, key, max_body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.key and scope.get("path") != "/health" and scope.get("method") != "OPTIONS":
            given = headers.get("authorization", "")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode(), self.key.encode()):
                await _reply(send, 401, error_body("missing or wrong API key: send `Authorization: Bearer <key>`",
                                                   "invalid_request_error", "invalid_api_key"),
                             {"www-authenticate": "Bearer"})
                return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _reply(send, 413, error_body(f"the request body is over {self.max_body} bytes",
                                               "invalid_request_error", "body_too_large"), {})
            return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise ApiError(413, f"the request body is over {self.max_body} bytes", code="body_too_large")
            return message

        await self.app(scope, counted, send)


async def _reply(send: Any, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


# --- the service: forge, store and engine, built at start-up ---------------------------------------------------


class Service:
    """What the app holds while it runs: the output folder, this process's slot, the store and the engine."""

    def __init__(self, config: ServeConfig, settings: dict[str, Any], loras: list[str]) -> None:
        from ideaforge.agent.forge import IdeaForge
        from ideaforge.app.serve.engine import Engine

        self.config = config
        self.forge = IdeaForge(loras=loras, **settings)
        self.root = Path(self.forge.settings.out).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._slot_file, owner = _take_slot(self.root)
        self.store = JobStore(self.root / DB_NAME, owner=owner)
        self.engine = Engine(self.forge, config, self.store, self.root)

    def close(self) -> None:
        self.engine.close()
        self.store.close()
        self._slot_file.close()


def _take_slot(root: Path) -> tuple[Any, int]:
    """The first free slot of this output folder, held (flock) while the process lives; its number owns the
    jobs this process accepts, so a restart on that slot resumes exactly them."""
    for k in range(MAX_SLOTS):
        f = open(root / f".serve-slot-{k}.lock", "a+")  # noqa: SIM115 - held open for the server's life
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return f, k
        except OSError:
            f.close()
    raise InputError(f"{MAX_SLOTS} servers already use the output folder {str(root)!r}; stop one or pass another --out")


# --- requests -------------------------------------------------------------------------------------------------


async def read_json(request: Any, limit: int) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is over {limit} bytes", code="body_too_large")
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "the request body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    return data


def parse_run(data: dict[str, Any], config: ServeConfig) -> GenerateRequest:
    """A run request through the one request model, plus this server's limit on `n`."""
    try:
        request = GenerateRequest.parse(**data)
    except InputError as exc:
        raise ApiError(400, str(exc)) from None
    if request.n is not None and request.n > config.max_n:
        raise ApiError(400, f"n = {request.n} is over this server's limit of {config.max_n} images per request")
    return request


def parse_images(data: dict[str, Any], config: ServeConfig) -> tuple[GenerateRequest, str]:
    """OpenAI's images request -> (`GenerateRequest`, response format). `prompt` is the idea."""
    data = dict(data)
    model = data.pop("model", None)
    if model is not None and model != config.model_name:
        raise ApiError(404, f"model {model!r} does not exist; use {config.model_name!r} (see GET /v1/models)",
                       code="model_not_found")
    fmt = data.pop("response_format", None) or "b64_json"
    if fmt not in ("b64_json", "url"):
        raise ApiError(400, f"response_format {fmt!r} is invalid; use 'b64_json' or 'url'")
    for key in _OPENAI_ONLY:
        data.pop(key, None)
    if data.get("style") in _OPENAI_STYLES:
        data.pop("style")
    if "prompt" not in data:
        raise ApiError(400, "prompt is missing: pass the idea as `prompt`")
    data["idea"] = data.pop("prompt")
    if "negative" in data:
        data["negative_prompt"] = data.pop("negative")
    if "positive" in data:
        data["prompt"] = data.pop("positive")
    return parse_run(data, config), fmt


def job_view(job: dict[str, Any], base: str) -> dict[str, Any]:
    result = job.get("result") or {}
    best = result.get("best")
    if best is not None:
        best = dict(best, url=base + "v1/images/files/" + best["file"] if best.get("file") else None)
    return {
        "id": job["id"], "object": "ideaforge.run", "status": job["status"], "created": job["created"],
        "started": job["started"], "finished": job["finished"], "tries": job["tries"], "request": job["request"],
        "attempts": result.get("attempts", []), "checks": result.get("checks", []), "best": best,
        "error": job["error"], "warnings": result.get("warnings", []),
    }


def sse(index: int, event: str, data: dict[str, Any]) -> str:
    return f"id: {index}\nevent: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


# --- the app --------------------------------------------------------------------------------------------------


def create_app(config: ServeConfig, settings: dict[str, Any], loras: list[str] | None = None) -> Any:
    """The ASGI app. The forge, the store and the engine are built when it starts (uvicorn's or Ray Serve's
    lifespan), the models are loaded in the background, and `/health` says when they are ready."""
    from fastapi import FastAPI
    from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        service = Service(config, settings, list(loras or []))
        service.engine.start()
        app.state.service = service
        try:
            yield
        finally:
            await asyncio.to_thread(service.close)

    app = FastAPI(title="ideaforge", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    if config.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Guard, key=config.key, max_body=config.max_body)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Any:
        return JSONResponse(error_body(exc.message, exc.kind, exc.code), status_code=exc.status, headers=exc.headers)

    def service_of(request: Request) -> Service:
        return request.app.state.service

    def ready(service: Service) -> None:
        if service.engine.error is not None:
            raise ApiError(503, f"the models failed to load: {service.engine.error}", kind="server_error")
        if not service.engine.ready.is_set():
            raise ApiError(503, "the models are still loading; retry shortly", kind="server_error",
                           headers={"Retry-After": "2"})

    def admit(service: Service) -> None:
        if service.engine.stopping.is_set():
            raise ApiError(503, "the server is shutting down", kind="server_error")
        if not service.engine.admit():
            wait = service.engine.retry_after()
            raise ApiError(429, f"the queue is full ({config.max_queue} runs); retry in {wait} s",
                           kind="rate_limit_error", code="queue_full", headers={"Retry-After": str(wait)})

    @app.get("/health")
    async def health(request: Request) -> Any:
        engine = service_of(request).engine
        status = "error" if engine.error else "ready" if engine.ready.is_set() else "loading"
        body = {"status": status, "model": config.model_name, "error": engine.error}
        return JSONResponse(body, status_code=200 if status == "ready" else 503)

    @app.get("/v1/models")
    async def models(request: Request) -> Any:
        return {"object": "list", "data": [_model(config)]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> Any:
        if model_id != config.model_name:
            raise ApiError(404, f"model {model_id!r} does not exist", code="model_not_found")
        return _model(config)

    @app.post("/v1/images/generations")
    async def generations(request: Request) -> Any:
        service = service_of(request)
        run, fmt = parse_images(await read_json(request, config.max_body), config)
        ready(service)
        admit(service)
        task = service.engine.submit_sync(uuid.uuid4().hex, run)
        assert task.future is not None
        waiting = asyncio.wrap_future(task.future)
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=0.25)
            if done:
                break
            if await request.is_disconnected():  # nobody will read the images: stop making them
                task.cancel.set()
                raise ApiError(499, "the client disconnected; the run was cancelled")
        status, result, error = waiting.result()
        if status != "succeeded":
            if task.input_error:
                raise ApiError(400, error or status)
            raise ApiError(500, error or status, kind="server_error")
        best = result["best"]
        data = []
        for name in best["files"]:
            item: dict[str, Any] = {"revised_prompt": best["positive"]}
            if fmt == "url":
                item["url"] = str(request.base_url) + "v1/images/files/" + name
            else:
                item["b64_json"] = base64.b64encode((service.root / name).read_bytes()).decode("ascii")
            data.append(item)
        return {"created": int(time.time()), "data": data,
                "ideaforge": {"seed": best["seed"], "score": best["score"], "negative": best["negative"],
                              "attempts": len(result["attempts"]), "stopped": result["stopped"],
                              "generate_seconds": sum(a["seconds"].get("generate", 0.0) for a in result["attempts"])}}

    @app.get("/v1/images/files/{name:path}")
    async def files(request: Request, name: str) -> Any:
        root = service_of(request).root
        missing = ApiError(404, f"no image {name!r}", code="not_found")
        if not name or "\\" in name or "\x00" in name or name.startswith("/") or ".." in name.split("/"):
            raise missing
        path = (root / name).resolve()
        if not path.is_relative_to(root) or path.suffix.lower() != ".png" or not path.is_file():
            raise missing
        return FileResponse(path, media_type="image/png")

    @app.post("/v1/runs", status_code=202)
    async def create_run(request: Request) -> Any:
        service = service_of(request)
        run = parse_run(await read_json(request, config.max_body), config)
        if service.engine.error is not None:
            ready(service)
        admit(service)
        try:
            job_id = await asyncio.to_thread(service.engine.submit_job, run)
        except BaseException:
            service.engine.release()
            raise
        return JSONResponse({"id": job_id, "object": "ideaforge.run", "status": "queued"}, status_code=202)

    @app.get("/v1/runs/{job_id}")
    async def get_run(request: Request, job_id: str) -> Any:
        job = service_of(request).store.get(job_id)
        if job is None:
            raise ApiError(404, f"no run {job_id!r}", code="not_found")
        return job_view(job, str(request.base_url))

    @app.delete("/v1/runs/{job_id}")
    async def cancel_run(request: Request, job_id: str) -> Any:
        service = service_of(request)
        job = service.store.get(job_id)
        if job is None:
            raise ApiError(404, f"no run {job_id!r}", code="not_found")
        if job["status"] in ("succeeded", "failed"):
            raise ApiError(409, f"run {job_id!r} has already {job['status']}", code="already_finished")
        service.store.cancel(job_id)
        service.engine.cancel(job_id)
        view = job_view(service.store.get(job_id) or job, str(request.base_url))
        return dict(view, cancel_requested=True)

    @app.get("/v1/runs/{job_id}/events")
    async def events(request: Request, job_id: str) -> Any:
        service = service_of(request)
        if service.store.get(job_id) is None:
            raise ApiError(404, f"no run {job_id!r}", code="not_found")
        return StreamingResponse(_stream(request, service, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


async def _stream(request: Any, service: Service, job_id: str) -> AsyncIterator[str]:
    """The job's events as they come (from the start, for a late reader), then `end` with the final status.

    A job this process is not running (finished, or another server's) is followed through the store instead."""
    task = service.engine.tasks.get(job_id)
    index, last_beat = 0, time.monotonic()
    if task is not None:
        while True:
            items, nxt = task.events.since(index)
            for offset, item in enumerate(items):
                yield sse(index + offset, item.get("stage", "message"), item)
            index = nxt
            if task.events.closed and not items:
                break
            if await request.is_disconnected():
                return
            if time.monotonic() - last_beat > 15:
                yield ": keep-alive\n\n"
                last_beat = time.monotonic()
            await asyncio.sleep(0.05)
    seen = None
    while True:
        job = service.store.get(job_id)
        status = job["status"] if job else "unknown"
        if status != seen:
            seen = status
            if status in FINISHED or status == "unknown":
                yield sse(index, "end", {"status": status, "error": job["error"] if job else None})
                return
            yield sse(index, "status", {"stage": "status", "message": status})
            index += 1
        if await request.is_disconnected():
            return
        await asyncio.sleep(0.5)


def _model(config: ServeConfig) -> dict[str, Any]:
    return {"id": config.model_name, "object": "model", "created": 0, "owned_by": "ideaforge"}
