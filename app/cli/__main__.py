"""`python -m ideaforge.app.cli`: the `ideaforge` command."""

from ideaforge.app.cli.main import main

main()
