"""Progress on stderr for the CLI: the prompt, a denoising bar per attempt, and per-round scores."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress


class Progress:
    def __init__(self, enabled: bool = True) -> None:
        self.console = Console(file=sys.stderr, soft_wrap=True)
        self.enabled = enabled
        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=True, disable=not enabled,
        )
        self._task: Any = None
        self._label = ""
        self.saved: list[str] = []  # complete PNGs written so far (what an interruption keeps)
        self.checks: dict[int, Any] = {}  # the checklist, by id, for the per-round verdict tables

    def __enter__(self) -> Progress:
        self._bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._bar.__exit__(*exc)

    def spec(self, spec: Any) -> None:
        self.console.print(f"[bold]prompt[/] ({spec.engine}): {spec.positive}")
        self.console.print(f"[bold]negative[/]: {spec.negative}")
        for w in spec.warnings:
            self.console.print(f"[yellow]warning[/]: {w}")
        self.checks = {c.id: c for c in getattr(spec, "checks", [])}

    def on_event(self, ev: Any) -> None:
        if ev.stage == "generate" and ev.total:
            label = f"round {ev.round}" + (f" candidate {ev.candidate}" if ev.candidate > 1 else "")
            if self._task is None or self._label != label:
                if self._task is not None:
                    self._bar.remove_task(self._task)
                self._task, self._label = self._bar.add_task(label, total=ev.total), label
            self._bar.update(self._task, completed=ev.step)
        elif ev.stage == "saved":
            self.saved.append(ev.data["path"])
        elif ev.stage == "revise":
            self.console.print(f"[cyan]revising[/]: {ev.message}")
        elif ev.stage == "critic" and "review" in ev.data:
            self.console.print(verdict_table(ev.round, ev.candidate, ev.data["review"], self.checks))
        elif ev.stage == "critic" and ev.message and ev.message != "checking":
            self.console.print(f"[yellow]critic[/]: {ev.message}")

    def summary(self, result: Any) -> None:
        for a in result.attempts:
            score = "n/a" if a.score is None else f"{a.score:.2f}"
            weak = f"  failed: {', '.join(a.weak)}" if a.failed else (f"  weak: {', '.join(a.weak)}" if a.weak else "")
            if a.action and a.action != "first":
                weak += f"  ({a.action})"
            flagged = sum(i.flagged for i in a.images)
            note = f"  ({flagged} flagged)" if flagged else ""
            self.console.print(f"round {a.round}.{a.candidate}  seed {a.seed}  score {score}{weak}{note}")
        if result.best is not None:
            self.console.print(
                f"[bold green]best[/]: round {result.best.round}, score "
                f"{'n/a' if result.best.score is None else f'{result.best.score:.2f}'} -> {result.best_image_path}"
                + (f"  [{result.stopped}]" if result.stopped else "")
            )


def verdict_table(round_no: int, candidate: int, review: dict[str, Any], checks: dict[int, Any]) -> Any:
    """One round's verdicts: a row per check with ✓ (passed), ✗ (failed) or ? (not judged) and the reason."""
    from rich.table import Table
    from rich.text import Text

    from ideaforge.tools.sanitize import safe

    title = f"round {round_no}" + (f" candidate {candidate}" if candidate > 1 else "")
    title += f": {review.get('passed', 0)}/{review.get('judged', 0)} checks passed ({review.get('critic', '')})"
    if review.get("quality") is not None:
        title += f", quality {review['quality']:.2f}"
    table = Table(title=title, title_justify="left", show_edge=False)
    for col in ("", "#", "check", "p(yes)", "why"):
        table.add_column(col)
    marks = {True: Text("✓", style="green"), False: Text("✗", style="red"), None: Text("?", style="yellow")}
    for v in review.get("verdicts", []):
        check = checks.get(v["check"])
        question = check.question if check is not None else ""
        prob = "" if v.get("probability") is None else f"{v['probability']:.2f}"
        table.add_row(marks[v["passed"]], str(v["check"]), Text(safe(question)), prob, Text(safe(v.get("reason", ""))))
    return table
