"""`ideaforge` on the command line: thin shells that parse options, call the forge and print the result.

`ideaforge.app.cli.main` builds the Typer app; `python -m ideaforge.app.cli` runs it.
"""

from ideaforge.app.cli.main import app, main

__all__ = ["app", "main"]
