"""`curate run`: the whole loop as resumable stages under one run directory.

Each stage writes `runs/<name>/NN-stage/` and records itself in `runs/<name>/manifest.json` (config,
versions, model hashes, rows in/out, seconds). A stage is skipped when its key (its own config section
plus its input's output id) matches a finished entry, so re-runs are cheap and an interrupted run
resumes at the first unfinished stage. Redoing a stage gives it a new output id, which invalidates
everything downstream.
"""

from __future__ import annotations

import contextlib
import platform
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from curate.config import Config, dump_config
from curate.io import InputError, read_rows, write_json, write_stage
from curate.rows import stable_id
from curate.schemas import RunManifest, StageEntry, read_json
from curate.stages import StageFn, dedup, generate, score, select
from curate.stages.review import push

MANIFEST = "manifest.json"
TRACKED_PACKAGES = (
    "curate",
    "distilabel",
    "argilla",
    "argilla-server",
    "datasets",
    "sentence-transformers",
    "llama_cpp_python",
    "torch",
    "transformers",
    "faiss-cpu",
)


class EmptyStageError(InputError):
    """A stage kept no rows, so nothing can flow on: say which filters took them, never mark it done."""

    def __init__(self, stage: Stage, stats: dict[str, Any], out: Path):
        drops = {k: v for k, v in stats.items() if k.startswith("dropped_") and v}
        why = ", ".join(f"{k.removeprefix('dropped_').replace('_', ' ')}: {v}" for k, v in drops.items())
        hint = ""
        if stage is STAGES[0]:
            hint = (
                "; a small LLM rarely writes instructions these filters accept: try "
                "generate.instructions.method: magpie, or a stronger `llm`"
            )
        super().__init__(
            out, f"stage {stage.name} kept no rows" + (f" (dropped {why})" if why else "") + hint
        )


@dataclass(frozen=True)
class Stage:
    """One row of the stage table: where the stage writes, what invalidates it, and its function."""

    name: str  # directory name under the run, e.g. "03-dedup"
    sections: tuple[str, ...]  # config sections whose change invalidates this stage
    run: StageFn

    @property
    def short(self) -> str:
        """The stage's short name, as `--force` and `--until` take it (e.g. `dedup`)."""
        return self.name.split("-", 1)[1]


# The stage table: the only place that names the stage directories. Order is flow order: everything
# that can drop an instruction (dedup, complexity, the instruction budget) runs before responses are
# generated, the costly step, so no dropped row pays for its responses.
STAGES: tuple[Stage, ...] = (
    Stage("01-instructions", ("llm", "generate.instructions", "run.input"), generate.start),
    Stage("02-dedup", ("dedup", "embeddings"), dedup.run),
    Stage("03-complexity", ("score", "llm"), score.complexity),
    Stage(
        "04-select-instructions",
        ("select.instruction_budget", "select.diversity_threshold", "embeddings"),
        select.instructions,
    ),
    Stage("05-preferences", ("llm", "generate"), generate.preferences),
    Stage("06-quality", ("score", "llm"), score.quality),
    Stage("07-select", ("select", "embeddings"), select.run),
    Stage("08-push", ("argilla", "review", "server"), push.run),
)
EXPORT_DIR = "09-export"  # where `curate export` writes by default, after review
STAGE_NAMES = tuple(s.short for s in STAGES)


def stage_named(name: str) -> Stage:
    """Find a stage by its short name (`dedup`) or directory name (`03-dedup`)."""
    for stage in STAGES:
        if name in (stage.name, stage.short):
            return stage
    raise ValueError(f"unknown stage '{name}' (one of: {', '.join(STAGE_NAMES)})")


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for pkg in TRACKED_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            found[pkg] = version(pkg)
    return found


def model_files(cfg: Config) -> dict[str, Any]:
    """The local model files this run uses, with hashes (hosted models are recorded by name)."""
    from curate.models import embedded_encoder_path, file_sha256, llm_model_path, llm_name
    from curate.scoring.prior import resolve_scorer

    hashed: dict[Path, dict[str, str]] = {}  # each file is hashed once, whatever roles it plays

    def llm_file(llm) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": llm_name(llm)}
        if llm.provider == "llamacpp":
            path = llm_model_path(llm)
            if path not in hashed:
                hashed[path] = {"path": str(path), "sha256": file_sha256(path)}
            entry |= hashed[path]
        return entry

    files: dict[str, Any] = {"llm": llm_file(cfg.llm)}
    if cfg.embeddings.model is None:
        weights = sorted(embedded_encoder_path().glob("*.safetensors"))
        files["encoder"] = {"name": "all-MiniLM-L6-v2 (embedded)", "path": str(embedded_encoder_path())}
        if weights:
            files["encoder"]["sha256"] = file_sha256(weights[0])
    else:
        files["encoder"] = {"name": cfg.embeddings.model}
    sc, c_llm, q_llm = resolve_scorer(cfg)
    files["scorer"] = llm_file(c_llm)
    if sc.quality_scorer == "head":
        from curate.scoring.head import HEAD_FILE, head_id

        files["quality_head"] = {"name": head_id(), "path": str(HEAD_FILE), "sha256": file_sha256(HEAD_FILE)}
    elif q_llm != c_llm:
        files["quality_scorer"] = llm_file(q_llm)
    return files


def load_manifest(run_dir: Path) -> RunManifest:
    """The run's manifest, checked against `RunManifest` (an error names the file and field); empty if none."""
    path = run_dir / MANIFEST
    return read_json(path, RunManifest) if path.exists() else {"stages": {}}


def save_manifest(run_dir: Path, manifest: RunManifest) -> None:
    """Write the manifest atomically (rename), so an interruption never leaves it truncated."""
    write_json(run_dir / MANIFEST, manifest)


def stage_key(
    cfg: Config, stage: Stage, input_output_id: str | None, references: dict[str, Any] | None = None
) -> str:
    """What a finished stage must match to be skipped: its config sections (a dotted name is one field),
    its input's output id, for the user's input file its content, and for dedup what its references hold
    (`references.reference_state`)."""
    config = dump_config(cfg)
    parts: dict[str, Any] = {}
    for section in stage.sections:
        value: Any = config
        for key in section.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        parts[section] = value
    if "run.input" in stage.sections and cfg.run.input is not None:
        parts["input_content"] = content_id(cfg.run.input)
    if references:
        parts["references"] = references
    return stable_id(stage.name, parts, input_output_id)


def review_reference(cfg: Config) -> str | None:
    """`argilla:WORKSPACE/NAME` of the review dataset this run pushes to, when it exists and has records
    (a later round dedups against what people already review); None otherwise. The embedded server is
    only started when its data dir already holds a database."""
    from curate.server.launcher import resolve_data_dir
    from curate.stages.review import client as rc

    if cfg.argilla.api_url is None and not (resolve_data_dir(cfg.server.data_dir) / "argilla.db").exists():
        return None
    client = rc.connect(cfg)
    dataset = rc.get_dataset(client, cfg.argilla.dataset, cfg.argilla.workspace)
    if dataset is None or not next(rc.iter_raw_records(client, dataset, include=()), None):
        return None
    return f"argilla:{cfg.argilla.workspace}/{cfg.argilla.dataset}"


def dedup_config(cfg: Config, run_dir: Path) -> tuple[Config, dict[str, Any]]:
    """The config the dedup stage runs with (the review dataset added as a reference, see
    `review_reference`) and the state of its references for the stage key. The key leaves out the
    rounds this run pushed itself: they descend from this dedup, so a re-run of a finished run is skipped,
    while a round someone else pushed since (or a changed reference file) redoes the dedup."""
    from curate.stages.references import reference_state

    auto = review_reference(cfg)
    against = [str(a) for a in cfg.dedup.against]
    if auto is not None and not {auto, f"argilla:{cfg.argilla.dataset}"} & set(against):
        cfg = cfg.model_copy(update={"dedup": cfg.dedup.model_copy(update={"against": [*against, auto]})})
    state = reference_state(cfg, [str(a) for a in cfg.dedup.against], exclude_sources_under=run_dir)
    return cfg, {k: v for k, v in state.items() if v is not None}


def content_id(path: Path) -> str | None:
    """A cheap id of a file's or directory's content (names, sizes, modification times)."""
    path = Path(path)
    if not path.exists():
        return None
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
    return stable_id(
        [(str(p.relative_to(path.parent)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    )


def run_stages(
    cfg: Config,
    run_dir: Path,
    force: set[str] | frozenset[str] = frozenset(),
    until: str | None = None,
    on_event: Callable[[str, Stage, StageEntry], None] | None = None,
) -> RunManifest:
    """Run (or skip) each stage in order; returns the manifest. `on_event(kind, stage, entry)`:
    kind is 'skip', 'start' or 'done'."""
    run_dir.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(run_dir)
    manifest.update(
        {"run": run_dir.name, "config": dump_config(cfg), "versions": versions(), "models": model_files(cfg)}
    )
    manifest.setdefault("created", _now())
    force_names = {stage_named(f).name for f in force}
    push_at = next((i for i, s in enumerate(STAGES) if s.short == "push"), None)
    stops_before_push = (
        until is not None and push_at is not None and STAGES.index(stage_named(until)) < push_at
    )
    if cfg.argilla.api_url is not None and push_at is not None and not stops_before_push:
        # a remote Argilla that will refuse the push is found now, not after hours of generation
        from curate.stages.review.client import WRITER_ROLES, connect

        connect(cfg, timeout=30, roles=WRITER_ROLES)
    previous: Stage | None = None
    previous_id: str | None = None
    for stage in STAGES:
        out = run_dir / stage.name
        stage_cfg, references = cfg, None
        if stage.short == "dedup":
            stage_cfg, references = dedup_config(cfg, run_dir)
        key = stage_key(cfg, stage, previous_id, references)
        entry = manifest["stages"].get(stage.name, {})
        finished = entry.get("status") == "done" and entry.get("key") == key and out.exists()
        if finished and stage.name not in force_names:
            on_event and on_event("skip", stage, entry)
        else:
            data = read_rows(run_dir / previous.name) if previous else None
            entry = {"status": "running", "key": key, "started": _now(), "output": str(out)}
            manifest["stages"][stage.name] = entry
            save_manifest(run_dir, manifest)
            on_event and on_event("start", stage, entry)
            t0 = time.perf_counter()
            result = stage.run(stage_cfg, data, source=run_dir / previous.name if previous else None)
            write_stage(out, result)
            stats = {
                "rows_in": len(data) if data is not None else None,
                "rows_out": result.rows_out,
                **result.stats,
            }
            if result.rows_out == 0 and stage is not STAGES[-1]:
                entry.update(status="empty", finished=_now(), stats=stats)
                save_manifest(run_dir, manifest)
                raise EmptyStageError(stage, stats, out)
            entry.update(
                status="done",
                finished=_now(),
                seconds=round(time.perf_counter() - t0, 2),
                rows_in=stats.pop("rows_in", None),
                rows_out=stats.pop("rows_out", None),
                stats=stats,
                output_id=uuid.uuid4().hex[:12],
            )
            save_manifest(run_dir, manifest)
            on_event and on_event("done", stage, entry)
        previous, previous_id = stage, entry["output_id"]
        if until and stage.name == stage_named(until).name:
            break
    manifest["finished"] = _now()
    save_manifest(run_dir, manifest)
    return manifest


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
