"""The console curate talks to (stderr, rich), the progress bar every long step shows, and the log file
that takes every library's log lines and warnings off the console (`log_to_file`)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)

# `curate run` logs to runs/<name>/curate.log; a stage command to `<output>.log` (see log_path_for).
LOG_FILE = "curate.log"
# Warnings raised from these directories are curate's own and stay on the console.
_OWN_CODE = tuple(
    f"{Path(__file__).resolve().parent.parent / pkg}{os.sep}" for pkg in ("curate", "pipelines")
)

_active: list[tuple[Path, list[logging.Handler]]] = []  # the log files in force, innermost last


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


def log_path_for(output: Path | str) -> Path:
    """Where a stage command that writes `output` logs: `<output>.log`, beside it (the output itself is
    replaced whole when the stage finishes, so the log cannot live inside it)."""
    output = Path(output)
    return output.with_name(output.name + ".log")


def log_file() -> Path | None:
    """The log file in force in this process (inside `log_to_file`), or None."""
    return _active[-1][0] if _active else None


def log_handlers() -> list[logging.Handler]:
    """The handlers `log_to_file` put on the root logger (file, and errors to the console); [] outside it.
    A library that replaces the root logger's handlers for a while (distilabel) can hand them on."""
    return list(_active[-1][1]) if _active else []


def _is_own(filename: str) -> bool:
    return str(Path(filename).resolve()).startswith(_OWN_CODE)


class _LogFile(logging.FileHandler):
    """The log file, made (with its folder) at its first record, so that a command refused before
    anything was logged leaves none; each process's part starts with a line naming the command. A file
    that cannot be written is said once on the console, and its records are dropped."""

    def __init__(self, path: Path):
        super().__init__(path, encoding="utf-8", delay=True)
        self.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)-7s %(processName)s[%(process)d] %(name)s: %(message)s",
                datefmt="%Y-%m-%d %H:%M:%S",
            )
        )
        self.failed = False

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        stream = super()._open()
        stream.write(f"--- curate {' '.join(sys.argv[1:])} (pid {os.getpid()})\n")
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        if self.failed:
            return
        try:
            if self.stream is None:
                self.stream = self._open()
        except OSError as exc:
            self.failed = True
            console.print(f"[yellow]warning:[/] no log file ({exc}): log lines are dropped", highlight=False)
            return
        super().emit(record)

    @property
    def opened(self) -> bool:
        return self.stream is not None


@contextlib.contextmanager
def log_to_file(path: Path | str) -> Iterator[Path]:
    """Send every log record (INFO and up, any library) and other packages' warnings to `path`
    (appended), instead of the console. The console keeps curate's own output and warnings, and log
    records at ERROR and up also reach it. An exception leaving the block after something was logged
    is logged there too, with its traceback. Processes forked inside the block inherit it; a spawned
    one must enter it again (with `log_file()`)."""
    path = Path(path)
    to_file = _LogFile(path)
    errors = RichHandler(console=console, level=logging.ERROR, show_time=False, show_path=False)
    root = logging.getLogger()
    saved = list(root.handlers), root.level, warnings.showwarning
    show = saved[2]

    def route_warning(message, category, filename, lineno, file=None, line=None) -> None:
        if file is not None or _is_own(filename):
            show(message, category, filename, lineno, file, line)
        else:
            text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
            logging.getLogger("py.warnings").warning(text)

    root.handlers[:] = [to_file, errors]
    root.setLevel(logging.INFO)
    warnings.showwarning = route_warning
    _active.append((path, [to_file, errors]))
    try:
        yield path
    except BaseException as exc:
        clean_exit = getattr(exc, "exit_code", getattr(exc, "code", 1)) in (0, None)
        if to_file.opened and not clean_exit:
            record = logging.LogRecord(
                "curate",
                logging.ERROR,
                __file__,
                0,
                "stopped by %r",
                (exc,),
                (type(exc), exc, exc.__traceback__),
            )
            to_file.handle(record)  # the file only: the console shows the error its own way
        raise
    finally:
        _active.pop()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        warnings.showwarning = saved[2]
        to_file.close()
