"""The `ideaforge` command: one Typer app, built once, with every subcommand registered here.

Importing the command modules is cheap: torch, diffusers, Streamlit, Ray and the MCP SDK load only inside the
command that needs them, so `ideaforge --help` stays instant.
"""

from __future__ import annotations

import typer

from ideaforge.app.cli.batch import batch
from ideaforge.app.cli.eval import eval_command
from ideaforge.app.cli.generate import generate, info, prompt, styles
from ideaforge.app.cli.mcp import mcp
from ideaforge.app.cli.serve import serve
from ideaforge.app.cli.ui import ui

app = typer.Typer(
    name="ideaforge",
    help="Turn a loose idea into a good Stable Diffusion image.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (prompt, generate, info, styles):
    app.command()(command)
app.command("ui")(ui)
app.command("mcp")(mcp)
app.command("batch")(batch)
app.command("eval")(eval_command)
app.command("serve")(serve)


def main() -> None:
    """The console script's entry point."""
    app()
