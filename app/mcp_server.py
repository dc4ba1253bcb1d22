"""`ideaforge mcp`: the three LangChain tools as an MCP server over stdio, for desktop and IDE agents.

The server wraps `make_tools(forge)`: the same names, descriptions and argument schemas (the shared request models,
so ranges, enums and `additionalProperties: false` reach the client), one loaded model shared by every call.
Arguments are validated by those models before a tool runs: an unknown or misspelt argument, or a value out of
range, is a tool error of one line naming it. `generate_image` answers with the best image as MCP image content (PNG, base64), the short
summary the model reads, and the full run record as JSON text; the other tools with their summary and record.
ideaforge's errors (a bad size, an unknown style, a missing model) come back as tool errors (`isError`) with the
one-line message, never as a crash of the server. stdio only: the server opens no port.

Example client configuration (Claude Desktop, Cursor, ...):
    {"mcpServers": {"ideaforge": {"command": "ideaforge", "args": ["mcp"],
                                  "env": {"IDEAFORGE_MODEL": "stabilityai/sd-turbo"}}}}
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
from pathlib import Path
from typing import Any

INSTRUCTIONS = (
    "ideaforge turns a loose idea (any language) into a Stable Diffusion image. Call generate_image with the idea; "
    "it optimizes the prompt, generates, scores the image against the idea with CLIP and retries with a revised "
    "prompt when the score is low. optimize_prompt only writes the prompt; score_image scores an existing image."
)


def _signature(schema: type[Any], context: type[Any]) -> inspect.Signature:
    """A keyword per field of a tool's pydantic `args_schema` (plus the MCP context), so the SDK passes every
    argument through; `StrictServer` has already checked them against the schema itself."""
    params = [inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=context)]
    for name, field in schema.model_fields.items():
        default = inspect.Parameter.empty if field.is_required() else None
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Any, default=default))
    return inspect.Signature(params)


def _handler(tool: Any) -> Any:
    """An async MCP tool function that runs the LangChain `tool` in a worker thread and converts its reply."""
    import anyio
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ToolError

    async def call(ctx: Any, **arguments: Any) -> list[Any]:
        progress = _progress(ctx)
        given = {k: v for k, v in arguments.items() if v is not None}
        request = {"type": "tool_call", "id": "mcp", "name": tool.name, "args": given}
        message = await anyio.to_thread.run_sync(lambda: tool.invoke(request, config={"callbacks": [progress]}))
        if message.status == "error":
            raise ToolError(str(message.content))
        return _content(tool.name, str(message.content), message.artifact)

    call.__name__ = tool.name
    call.__signature__ = _signature(tool.args_schema, Context)  # type: ignore[attr-defined]
    call.__annotations__ = {"ctx": Context}  # how the SDK finds the context parameter
    return call


def _content(name: str, text: str, artifact: Any) -> list[Any]:
    from mcp_types import ImageContent, TextContent

    blocks: list[Any] = []
    best = artifact.get("best_image_path") if name == "generate_image" else None
    if best:
        data = base64.b64encode(Path(best).read_bytes()).decode("ascii")
        blocks.append(ImageContent(type="image", data=data, mime_type="image/png"))
    blocks.append(TextContent(type="text", text=text))
    blocks.append(TextContent(type="text", text=json.dumps(artifact, ensure_ascii=False)))
    return blocks


def _progress(ctx: Any) -> Any:
    """A LangChain callback handler that forwards ideaforge's progress (custom events) as MCP progress."""
    import anyio.from_thread
    from langchain_core.callbacks import BaseCallbackHandler

    class Progress(BaseCallbackHandler):
        count = 0  # MCP progress must grow; how many rounds a run takes is not known in advance

        def on_custom_event(self, name: str, data: Any, **kwargs: Any) -> None:
            if name != "ideaforge":
                return
            self.count += 1
            where = f"round {data['round']}: " if data.get("round") else ""
            step = f"step {data['step']}/{data['total']}" if data.get("total") else data.get("message", "")
            with contextlib.suppress(Exception):  # progress is best effort and must never fail the run
                anyio.from_thread.run(ctx.report_progress, self.count, None, f"{where}{data['stage']} {step}".strip())

    return Progress()


def _strict_server(schemas: dict[str, type[Any]], **kwargs: Any) -> Any:
    """An `MCPServer` whose tools list and check their arguments with ideaforge's own request models.

    The SDK derives a schema from each handler's signature and drops arguments it does not know; agents misspell
    arguments, so every call is validated against the tool's pydantic model first (extra fields forbidden), and
    the first problem comes back as one line.
    """
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import ValidationError

    from ideaforge.errors import explain

    class StrictServer(MCPServer):
        async def list_tools(self) -> Any:
            tools = await super().list_tools()
            for tool in tools:
                if tool.name in schemas:
                    tool.input_schema = schemas[tool.name].model_json_schema()
            return tools

        async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
            schema = schemas.get(name)
            if schema is not None:
                try:
                    schema.model_validate(arguments)
                except ValidationError as exc:
                    raise ToolError(f"invalid arguments for {name}: {explain(exc)}") from None
            return await super().call_tool(name, arguments, context)

    return StrictServer(**kwargs)


def build_server(forge: Any) -> Any:
    """An `MCPServer` exposing `make_tools(forge)`; run it with `.run("stdio")`."""
    from mcp_types import ToolAnnotations

    import ideaforge
    from ideaforge.app.integrations.langchain_tools import make_tools

    tools = make_tools(forge)
    server = _strict_server(
        {tool.name: tool.args_schema for tool in tools if isinstance(tool.args_schema, type)},
        name="ideaforge", instructions=INSTRUCTIONS, version=ideaforge.__version__,
    )
    writes = {"generate_image"}
    for tool in tools:
        hints = ToolAnnotations(
            read_only_hint=tool.name not in writes, destructive_hint=False, open_world_hint=False
        )
        server.add_tool(_handler(tool), name=tool.name, description=tool.description, annotations=hints)
    return server
