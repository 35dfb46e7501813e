"""Running a distilabel pipeline for a curate stage: cache (resume), Ray, progress, rows out.

- Resume: distilabel caches every batch under `<run.runs_dir>/distilabel-cache/<pipeline name>`;
  `generate.resume` (default on) is `use_cache`, so an interrupted run continues where it stopped and a
  finished one is returned from the cache. The pipeline name carries a hash of the models used,
  because distilabel's cache signature leaves out a llama.cpp model's path.
- Ray: `generate.ray` runs the same DAG with distilabel's `RayPipeline`; `ray.init()` joins the
  cluster named by RAY_ADDRESS (or starts a local one).
- Progress: a rich bar per LLM step, advanced by the "sending batch" log records distilabel's step
  processes forward to the main process.
- Log lines: inside `curate.console.log_to_file`, distilabel's log lines go to that log file and not
  to the console (distilabel adds a console handler of its own to its log listener; it is left out).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.managers import SyncManager
from pathlib import Path
from typing import Any

import distilabel.distiset as distiset_module
import distilabel.pipeline.base as distilabel_base
import distilabel.pipeline.local as distilabel_local
import distilabel.utils.logging as distilabel_logging
from distilabel.pipeline import Pipeline
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from curate.config import Config, LLMConfig
from curate.console import log_file, log_handlers, log_to_file
from curate.models import llm_name
from curate.rows import stable_id

_SENT = re.compile(r"Step '(.+?)' sending batch (\d+) to output queue")


def _no_bibtex(ref: str) -> str:
    raise ValueError("curate runs offline")  # distilabel skips a citation on ValueError, silently


# distilabel fetches BibTeX from arxiv.org for the papers its tasks cite whenever it builds a Distiset;
# generation must not touch the network (and without bs4 it prints "Untracked error" on every run).
distiset_module.get_bibtex = _no_bibtex

_setup_distilabel_logging = distilabel_logging.setup_logging
_made_by_distilabel: list[logging.Handler] = []  # its listener's own handlers, closed after each run


def _setup_logging(
    log_queue: Any = None, filename: str | None = None, logging_handlers: list[logging.Handler] | None = None
) -> None:
    """distilabel's setup_logging (its pipelines' run calls it), then: inside `log_to_file`, without the
    console handler it adds to its log listener, so its log lines reach curate's log file only."""
    given = list(logging_handlers or [])
    _setup_distilabel_logging(log_queue, filename, logging_handlers)
    listener = distilabel_logging.queue_listener
    if listener is None:  # not the process that runs the pipeline: no listener
        return
    _made_by_distilabel.extend(h for h in listener.handlers if h not in given)
    if log_file() is not None:
        listener.handlers = tuple(
            h for h in listener.handlers if h in given or not isinstance(h, RichHandler)
        )


distilabel_base.setup_logging = _setup_logging  # what BasePipeline.run calls (Pipeline and RayPipeline)


def cache_dir(cfg: Config) -> Path:
    return Path(cfg.run.runs_dir) / "distilabel-cache"


def pipeline_name(kind: str, llms: list[LLMConfig]) -> str:
    """`curate-<kind>-<hash of the models>`: a different model never reuses another's cache."""
    identity = [(c.provider, c.model, c.base_url, llm_name(c), c.n_ctx) for c in llms]
    return f"curate-{kind}-{stable_id(identity)[:8]}"


def make_pipeline(cfg: Config, kind: str, llms: list[LLMConfig]) -> Pipeline:
    return Pipeline(
        name=pipeline_name(kind, llms),
        description=f"curate {kind}",
        cache_dir=cache_dir(cfg),
        enable_metadata=True,  # raw outputs and token statistics (the judge's raw text, the benchmark)
    )


def batches(rows: int, batch_size: int) -> int:
    return max(1, math.ceil(rows / max(1, batch_size)))


class _ProgressHandler(logging.Handler):
    """Advances one progress bar per tracked step when distilabel logs that it sent a batch."""

    def __init__(self, progress: Progress, totals: dict[str, int]):
        super().__init__(level=logging.INFO)
        self.progress = progress
        self.tasks = {name: progress.add_task(name, total=total) for name, total in totals.items()}

    def emit(self, record: logging.LogRecord) -> None:
        match = _SENT.search(record.getMessage())
        if match and match.group(1) in self.tasks:
            self.progress.advance(self.tasks[match.group(1)])


# Exit code of a pipeline process whose step process died (see _Workers).
EXIT_STEP_DIED = 70
# Exit code of a pipeline, step or queue-manager process whose parent is gone (see _exit_with_parent).
EXIT_PARENT_GONE = 71


class _Workers(list):
    """The pool's worker list. The stdlib's worker handler deletes each exited worker from it before
    starting a replacement: a worker killed by a signal (other than the SIGTERM of the pool's own
    teardown) or failing is a crashed step, so say so and end the process."""

    def __delitem__(self, i):
        worker = self[i]
        if worker.exitcode not in (None, 0, -signal.SIGTERM):
            print(
                f"error: a distilabel step process died (pid {worker.pid}, exit code {worker.exitcode}); "
                "the pipeline would wait for it forever, so generation stops here. Batches done so far "
                "are cached: fix the cause (see the log above) and re-run to resume.",
                file=sys.stderr,
                flush=True,
            )
            _exit_with_children(EXIT_STEP_DIED)
        super().__delitem__(i)


def _exit_with_children(code: int) -> None:
    """End this process now, and the processes it started first: the other step processes and
    distilabel's queue manager, which os._exit alone would leave running (orphans holding memory)."""
    for child in mp.active_children():
        child.kill()
    os._exit(code)


class _WatchedPool(distilabel_local._NoDaemonPool):
    """distilabel's step pool, ending the process when a step process dies (a crash in the LLM library,
    the OOM killer) instead of hanging: the pool replaces the dead worker, but the step's batches never
    come back and distilabel waits for them forever (seen here: llama.cpp faulting in a step left
    `curate run` idle for good). Batches done so far stay in distilabel's cache for the next run."""

    def __init__(self, processes=None, initializer=None, initargs=(), maxtasksperchild=None):
        # Every step process also ends when the process that started it is gone (see _exit_with_parent).
        super().__init__(
            processes, _init_watched, (os.getpid(), initializer, tuple(initargs)), maxtasksperchild
        )

    def _repopulate_pool(self):
        # Pool.__init__ fills self._pool here, then hands that list to its worker-handler thread.
        if not isinstance(self._pool, _Workers):
            self._pool = _Workers(self._pool)
        return super()._repopulate_pool()


def _init_watched(parent: int, initializer: Callable[..., object] | None, initargs: tuple) -> None:
    _watch_parent(parent)
    if initializer is not None:
        initializer(*initargs)


class _WatchedMultiprocessing:
    """The `multiprocessing` that distilabel's local pipeline sees: the same, except that the queue
    manager process of `Manager()` also ends when the process that started it is gone."""

    def __getattr__(self, name: str) -> Any:
        return getattr(mp, name)

    @staticmethod
    def Manager() -> SyncManager:
        manager = SyncManager(ctx=mp.get_context())
        manager.start(_watch_parent, (os.getpid(),))
        return manager


distilabel_local._NoDaemonPool = _WatchedPool  # what Pipeline.run instantiates
distilabel_local.mp = _WatchedMultiprocessing()  # whose Manager() Pipeline.run starts


class PipelineInterrupted(KeyboardInterrupt):
    """The run was stopped (Ctrl+C) after caching what it had: re-run with --resume to continue."""


def _llama_used_here() -> bool:
    """Whether this process has loaded an OpenMP runtime: llama.cpp's, or torch's (sentence-transformers
    loads it). libgomp is not fork-safe: a step process forked from such a parent hangs on its first
    llama.cpp generation, so the pipeline must then run in a spawned process."""
    if "llama_cpp" in sys.modules or "torch" in sys.modules:
        return True
    try:
        return "libgomp" in Path("/proc/self/maps").read_text()
    except OSError:  # not Linux: no /proc
        return False


def _exit_with_parent(parent: int, poll: float = 1.0) -> None:
    """Watch thread of a process curate starts for a pipeline (the spawned pipeline process, a step
    process, distilabel's queue manager): once its parent is gone (`curate` killed with SIGKILL has no
    chance to stop them), end this process and what it started, instead of generating on for nobody
    and holding the model's memory. Polling the parent pid works on Linux and macOS alike, where
    PR_SET_PDEATHSIG is Linux only and is cleared in forked children."""
    while os.getppid() == parent:
        time.sleep(poll)
    _exit_with_children(EXIT_PARENT_GONE)


def _watch_parent(parent: int) -> None:
    """Start the watch of _exit_with_parent in this process (`parent` is passed in, not read here, so a
    parent that dies before this runs is noticed too)."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _run_isolated(
    build: Callable[[], Pipeline],
    cfg: Config,
    progress_totals: dict[str, int],
    parent: int,
    log: Path | None = None,
) -> None:
    _watch_parent(parent)
    # A spawned child inherits "spawn" as its start method; distilabel's step pool must fork (its
    # queues are fork-context objects), which is safe here: this process has not loaded llama.cpp.
    mp.set_start_method("fork", force=True)
    # distilabel starts the listener of its log queue (the progress bars and log lines come through it)
    # only in a process named MainProcess; without it they were lost.
    mp.current_process().name = "MainProcess"
    try:
        with log_to_file(log) if log is not None else contextlib.nullcontext():
            _run(build(), cfg, progress_totals)
    except PipelineInterrupted:
        sys.exit(130)


def _see_log() -> str:
    return f"see {log_file()}" if log_file() is not None else "see the log above"


def run_pipeline(
    build: Callable[[], Pipeline], cfg: Config, progress_totals: dict[str, int], isolate: bool | None = None
) -> list[dict[str, Any]]:
    """Build and run (or resume) a pipeline; return its leaf step's rows.

    `build` must be picklable (a module-level function or a partial of one): when this process has
    already used llama.cpp (tests, notebooks, `curate run` after scoring), the run happens in a fresh
    spawned process and the rows are then read back from distilabel's cache here (`isolate` forces
    either way). A step process that dies ends the run with an error instead of a hang, and whatever
    runs the pipeline ends soon after this process if it is killed.
    """
    pipeline = build()  # in this process first: bad config or a missing model fails here, clearly
    if isolate is None:
        isolate = _llama_used_here()
    if cfg.generate.ray or not isolate:
        return _run(pipeline, cfg, progress_totals)
    child = mp.get_context("spawn").Process(
        target=_run_isolated, args=(build, cfg, progress_totals, os.getpid(), log_file())
    )
    child.start()
    try:
        child.join()
    except KeyboardInterrupt:
        child.join()  # distilabel in the child stops gracefully and caches what it has
        raise PipelineInterrupted(
            f"generation interrupted; re-run with --resume to continue ({cache_dir(cfg)})"
        ) from None
    if child.exitcode == 130:
        raise PipelineInterrupted(
            f"generation interrupted; re-run with --resume to continue ({cache_dir(cfg)})"
        )
    if child.exitcode == EXIT_STEP_DIED:
        raise RuntimeError(
            f"a generation step's process died (a crash in the LLM library or the OOM killer; {_see_log()}); "
            f"re-run to resume from the cache ({cache_dir(cfg)})"
        )
    if child.exitcode != 0:
        raise RuntimeError(f"the generation pipeline failed (exit code {child.exitcode}); {_see_log()}")
    # The child finished: this run is served from the cache without starting any step.
    resumed = cfg.model_copy(deep=True)
    resumed.generate.resume = True
    return _run(pipeline, resumed, {})


def _run(pipeline: Pipeline, cfg: Config, progress_totals: dict[str, int]) -> list[dict[str, Any]]:
    runner: Any = pipeline.ray() if cfg.generate.ray else pipeline
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("batches"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    handler = _ProgressHandler(progress, progress_totals)
    # Inside log_to_file, distilabel's listener hands its records on to the log file (and errors to the
    # console), since its own console handler is left out.
    handlers: list[logging.Handler] = [handler, *log_handlers()]
    # distilabel replaces the root logger's handlers with one that feeds its log queue, and leaves it
    # there after closing the queue: every later log record (sentence-transformers, argilla) would then
    # print "--- Logging error --- Queue is closed". Restore the root logger as it was.
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        with progress:
            distiset = runner.run(use_cache=cfg.generate.resume, logging_handlers=handlers)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        for made in _made_by_distilabel:  # distilabel never closes its pipeline.log handler
            made.close()
        _made_by_distilabel.clear()
    if getattr(runner, "_stop_called", False):
        # distilabel stops gracefully on Ctrl+C and returns what it has; a partial result must not
        # be written as if complete. The batches done so far are in the cache for --resume.
        raise PipelineInterrupted(
            f"generation interrupted; re-run with --resume to continue ({cache_dir(cfg)})"
        )
    if not distiset:
        return []
    subset = distiset["default"] if "default" in distiset else next(iter(distiset.values()))
    split = subset["train"] if "train" in subset else next(iter(subset.values()))
    return split.to_list()


def statistics_tokens(row: dict[str, Any], step: str) -> int:
    """Output tokens a task's LLM generated for a row (from distilabel's metadata)."""
    stats = (row.get("distilabel_metadata") or {}).get(f"statistics_{step}") or {}
    tokens = stats.get("output_tokens", 0)
    if isinstance(tokens, list):
        return int(sum(t or 0 for t in tokens))
    return int(tokens or 0)
