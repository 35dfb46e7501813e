"""The console curate talks to (stderr, rich) and the progress bar every long step shows."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def progress(remaining: bool = False) -> Progress:
    """A transient bar on stderr: description, bar, done/total, and elapsed (or remaining) time."""
    clock = TimeRemainingColumn() if remaining else TimeElapsedColumn()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        clock,
        console=console,
        transient=True,
    )
