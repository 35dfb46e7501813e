"""Push review pairs to Argilla: settings from the data, judge suggestions, recorded A/B order.

Safe to re-run: record ids are content hashes, records already in the dataset are skipped (so a
re-push never touches their suggestions or human responses, and an interrupted push resumes), the
rest go in batched upserts keyed by that id (so even a race cannot duplicate). Rows that cannot be
reviewed (pairs.to_pairs) and rows the server rejects are quarantined with their row number, field
and reason, and the others still land; a push in which nothing lands is an error and creates no
dataset. The server and the API key are checked before any embedding.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import argilla as rg
import httpx
import numpy as np
from argilla._exceptions import ArgillaAPIError
from datasets import Dataset
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from curate.config import Config
from curate.io import InputError, load_stats
from curate.rows import messages_text, stable_id
from curate.schemas import PushProvenance, PushStats, StageProvenance, VectorProvenance
from curate.stages import StageResult
from curate.stages.review import client as rc
from curate.stages.review import pairs as pr
from curate.stages.review import settings as st
from curate.stages.review.calibration import apply_plan

MAX_BATCH = 500  # argilla-server's limit per bulk upsert
PROVENANCE_KEY = "curate"


def quarantine_path(cfg: Config, dataset: str) -> Path:
    return Path(cfg.run.runs_dir) / cfg.run.name / f"push-{dataset}-quarantine.jsonl"


def _attach_embeddings(pairs: list[dict], cfg: Config) -> tuple[int | None, VectorProvenance | None]:
    """Reuse the `embedding` column (from dedup); encode prompts only where it is missing. Returns the
    dimensions and what made the vectors (encoder and text recipe; unknown for a column that the
    configured encoder does not reproduce from the prompt)."""
    from curate.embeddings import embed, embedding_dim
    from curate.models import encoder_name
    from curate.stages.references import TEXT_RECIPE

    dims = {len(p["embedding"]) for p in pairs if p["embedding"] is not None}
    missing = [p for p in pairs if p["embedding"] is None]
    if not pairs:
        return None, None
    reused = [p for p in pairs if p["embedding"] is not None]
    if len(dims) > 1 or missing:
        todo = pairs if len(dims) > 1 else missing
        vectors = embed([messages_text(p["messages"]) for p in todo], cfg.embeddings, "embedding prompts")
        if dims and vectors.shape[1] not in dims:
            # The stored embeddings come from another model: one dataset needs one vector space.
            todo = pairs
            vectors = embed(
                [messages_text(p["messages"]) for p in pairs], cfg.embeddings, "embedding prompts"
            )
        reused = [p for p in pairs if not any(p is t for t in todo)]
        for pair, vec in zip(todo, vectors):
            pair["embedding"] = [float(v) for v in vec]
    dim = len(pairs[0]["embedding"])
    made: VectorProvenance = {"encoder": encoder_name(cfg.embeddings), "text": TEXT_RECIPE, "dimensions": dim}
    if reused and dim != embedding_dim(cfg.embeddings):
        made = {"encoder": None, "text": None, "dimensions": dim}
    elif reused:  # a column from elsewhere: the configured encoder must give the same vectors for a sample
        sample = reused[:2]
        check = embed([messages_text(p["messages"]) for p in sample], cfg.embeddings, "checking embeddings")
        stored = np.asarray([p["embedding"] for p in sample], dtype=np.float32)
        stored /= np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
        if check.shape != stored.shape or float((check * stored).sum(axis=1).min()) < 0.999:
            made = {"encoder": None, "text": None, "dimensions": dim}
    return dim, made


_NOT_IN_AGENT = re.compile(r"[^a-zA-Z0-9\-_:./\s]+")


def suggestion_agent(model: str | None) -> str:
    """Argilla accepts only letters, digits and - _ : . / and spaces in a suggestion's agent; model names
    such as "SmolLM2-135M-Instruct (GGUF, embedded)" are not, and the server refuses the whole record."""
    agent = " ".join(_NOT_IN_AGENT.sub(" ", model or "").split())
    return agent if re.search(r"[a-zA-Z0-9]", agent) else "judge"


def to_record(
    pair: dict[str, Any], dataset: rg.Dataset, metadata: set[str], has_vector: bool, round_: int = 1
) -> rg.Record:
    a, b = pr.shown(pair)
    agent = suggestion_agent(pair["judge_model"])
    suggestions = []
    label = pr.judge_label(pair)
    if label is not None:
        suggestions.append(
            rg.Suggestion(st.PREFERENCE, label, score=pr.judge_score(pair), agent=agent, type="model")
        )
    for question, pos in ((st.RATING_A, a), (st.RATING_B, b)):
        if pair["ratings"][pos] is not None:
            suggestions.append(rg.Suggestion(question, pair["ratings"][pos], agent=agent, type="model"))
    record = rg.Record(
        id=pair["id"],
        fields={  # escaped, so that the UI shows each text exactly as it is exported (settings.shown_text)
            st.PROMPT: [{**m, "content": st.shown_text(m["content"])} for m in pair["messages"]],
            st.RESPONSE_A: st.shown_text(pair["responses"][a]),
            st.RESPONSE_B: st.shown_text(pair["responses"][b]),
        },
        metadata={k: v for k, v in {**pr.record_metadata(pair), st.ROUND: round_}.items() if k in metadata},
        suggestions=suggestions,
        vectors={st.VECTOR: pair["embedding"]} if has_vector and pair["embedding"] else None,
    )
    record.dataset = dataset
    return record


_POSITION = re.compile(r"Record at position (\d+) is not valid because (.*?)(?:\"\}|$)", re.DOTALL)
_ITEM_LOC = re.compile(r"\"items\",\s*(\d+)(?:,\s*\"(\w+)\")?(?:,\s*\"(\w+)\")?")


_FIELD_NAMED = re.compile(r"field '(\w+)'")
_MSG = re.compile(r"'msg': '([^']*)'|\"msg\":\"((?:[^\"\\]|\\.)*)\"")


def _validation_error(text: str, match: re.Match) -> tuple[str, str | None]:
    """(reason, field) of a record the server's request validation refused: its message (the innermost
    one, without the echoed input) and where in the record (`fields.prompt`), when the text says."""
    rest = text[match.end() :]
    section, name = match.group(2), match.group(3)
    if section == "fields" and not name and (named := _FIELD_NAMED.search(rest)):
        name = named.group(1)
    messages = [a or b for a, b in _MSG.findall(rest[:5000])]
    field = f"{section}.{name}" if section and name else section
    return (messages[-1] if messages else text), field


def _server_rejected(pair: dict, reason: str, field: str | None = None) -> dict:
    entry = {"row": pair["row"], "id": pair["id"], "field": field, "reason": f"server rejected: {reason}"}
    entry["reason"] = rc.cut(entry["reason"])  # a refused 2 MB text is echoed back in the reason
    return {**{k: v for k, v in entry.items() if v is not None}, "stage": "server"}


def _send(
    client: rg.Argilla, dataset: rg.Dataset, batch: list[tuple[dict, rg.Record]], quarantined: list[dict]
) -> int:
    """Upsert a batch; a rejected record is quarantined with the server's reason and the rest retried."""
    pending = list(batch)
    sent = 0
    while pending:
        try:
            client.api.records.bulk_upsert(dataset_id=dataset.id, records=[r.api_model() for _, r in pending])
            return sent + len(pending)
        except ArgillaAPIError as exc:
            text = str(exc)
            match = _POSITION.search(text) or _ITEM_LOC.search(text)
            if exc.status_code == 422 and match and int(match.group(1)) < len(pending):
                idx = int(match.group(1))
                if match.re is _POSITION:
                    reason, field = match.group(2), None
                else:
                    reason, field = _validation_error(text, match)
                pair, _ = pending.pop(idx)
                quarantined.append(_server_rejected(pair, reason, field))
                continue
            if exc.status_code not in (400, 422):
                raise
            if len(pending) == 1:
                pair, _ = pending.pop()
                quarantined.append(_server_rejected(pair, text))
                return sent
            half = len(pending) // 2  # the server did not say which record: bisect
            sent += _send(client, dataset, pending[:half], quarantined)
            pending = pending[half:]
    return sent


def ensure_dataset(
    client: rg.Argilla, name: str, workspace: str, spec: dict[str, Any], update_settings: bool
) -> tuple[rg.Dataset, list[str]]:
    """The dataset with the wanted settings: created, checked, or (when asked) updated. Returns changes made."""
    ws = rc.get_workspace(client, workspace, create=True)
    dataset = rc.get_dataset(client, name, workspace)
    if dataset is not None and dataset._model.status == "draft":
        dataset.delete()  # a creation interrupted before publishing: it cannot hold records
        dataset = None
    if dataset is None:
        dataset = rg.Dataset(name=name, workspace=ws, settings=st.to_rg_settings(spec, client), client=client)
        dataset.create()
        return dataset, ["created"]
    if st.ROUND in spec["metadata"] and dataset.settings.metadata[st.ROUND] is None:
        # a dataset pushed before rounds were recorded: the property is added (argilla-server creates
        # metadata properties on a dataset with records), its records keep no value and count as round 1
        m = spec["metadata"][st.ROUND]
        prop = rg.IntegerMetadataProperty(
            st.ROUND, title=m["title"], visible_for_annotators=m["visible"], client=client
        )
        prop.dataset = dataset
        prop.create()
        dataset = rc.require_dataset(client, name, workspace)
    diffs, fixable = st.diff_specs(st.spec_of(dataset.settings), spec)
    if not diffs:
        return dataset, []
    unfixable = [d for d in diffs if d not in fixable]
    if not update_settings or unfixable:
        hint = (
            "these cannot be changed once a dataset has records: push to a new --dataset name"
            if unfixable and update_settings
            else "re-run with --update-settings to apply them"
            if not unfixable
            else "push to a new --dataset name (fields and questions cannot change once records exist)"
        )
        raise rc.ReviewError(
            f"dataset '{name}' in workspace '{workspace}' exists with different settings:\n  - "
            + "\n  - ".join(unfixable or diffs)
            + f"\n{hint}"
        )
    wanted = st.to_rg_settings(spec, client)
    for prop in wanted.metadata:
        if dataset.settings.metadata[prop.name] is None:
            dataset.settings.metadata.add(prop)
    for vec in wanted.vectors:
        if dataset.settings.vectors[vec.name] is None:
            dataset.settings.vectors.add(vec)
    dataset.settings.guidelines = spec["guidelines"]
    dataset.settings.distribution = rg.TaskDistribution(min_submitted=spec["distribution"]["min_submitted"])
    dataset.update()
    return rc.require_dataset(client, name, workspace), diffs


def present_rounds(client: rg.Argilla, dataset: rg.Dataset) -> dict[str, int]:
    """Record id (`external_id`) -> its round, for every record in the dataset (1 where none is recorded)."""
    out: dict[str, int] = {}
    for r in rc.iter_raw_records(client, dataset, include=()):
        if r.get("external_id"):
            value = (r.get("metadata") or {}).get(st.ROUND)
            out[str(r["external_id"])] = value if isinstance(value, int) else 1
    return out


def next_round(rounds: Mapping[str, int], pushes: Sequence[Mapping[str, Any]], digest: str) -> int:
    """The round of a push: 1 on an empty dataset, the last push's round when this is the same input again
    (a resumed push), else one more than the highest round on the dataset."""
    if not rounds:
        return 1
    highest = max(rounds.values())
    last = pushes[-1] if pushes else {}
    if last.get("input_digest") == digest and last.get("round") == highest:
        return highest
    return highest + 1


def stage_order() -> tuple[str, ...]:
    """Short names of the stages whose outputs a push can come from, in flow order: the stage table's,
    plus `generate` and `score`, the names standalone commands give their outputs."""
    from curate.run import STAGES  # the run imports this module: the table is read when needed

    return (*(s.short for s in STAGES if s.short != "push"), "generate", "score")


_LINK_KEYS = ("input", "source", "input_path", "source_path")
_PREFIX = re.compile(r"^\d+-")


def _stage_name(path: Path, stats: dict[str, Any]) -> str:
    """`stats['stage']`, else the directory name without a `NN-` run prefix (`03-dedup` -> dedup)."""
    return str(stats.get("stage") or _PREFIX.sub("", path.name))


def _rows(path: Path) -> dict[str, int]:
    """Rows per split of a stage output (memory-mapped, so cheap); a split that cannot be read is left out."""
    from datasets import load_from_disk

    try:
        splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
    except (OSError, ValueError):
        splits = None
    out: dict[str, int] = {}
    for split, where in [(s, path / s) for s in splits] if splits is not None else [("train", path)]:
        try:
            out[split] = load_from_disk(str(where)).num_rows
        except Exception:  # noqa: BLE001 - provenance is best effort; a missing count is shown as n/a
            continue
    return out


def _is_stage_dir(path: Path) -> bool:
    return (
        path.is_dir()
        and _PREFIX.sub("", path.name) in stage_order()
        and ((path / "stats.json").exists() or (path / "dataset_dict.json").exists())
    )


def run_source(cfg: Config, ds: Dataset) -> Path | None:
    """When push is called without a source (e.g. by `curate run`): the run's last stage output holding
    exactly these rows, so the card can still show the pipeline counts."""
    run_dir = Path(cfg.run.runs_dir) / cfg.run.name
    if not run_dir.is_dir():
        return None
    for path in sorted((d for d in run_dir.iterdir() if _is_stage_dir(d)), reverse=True):
        if _rows(path).get("train") == len(ds):
            return path
    return None


def collect_stages(source: Path | str | None) -> list[StageProvenance]:
    """The earlier stage outputs the pushed data came from, with their stats.json and row counts.

    Follows `input`/`source` paths recorded in each stats.json, and picks up sibling stage directories
    (`runs/<name>/NN-{instructions,preferences,dedup,score,select}` as `curate run` lays them out).
    """
    if source is None or not Path(source).is_dir():
        return []
    seen: dict[Path, StageProvenance] = {}
    queue = [Path(source).resolve()]
    queue += sorted(d.resolve() for d in queue[0].parent.iterdir() if _is_stage_dir(d))
    while queue:
        path = queue.pop(0)
        if path in seen or not path.is_dir() or len(seen) > 20:
            continue
        stats = load_stats(path)
        seen[path] = {
            "stage": _stage_name(path, stats),
            "path": str(path),
            "rows": _rows(path),
            "stats": stats,
        }
        for key in _LINK_KEYS:
            link = stats.get(key)
            if isinstance(link, str) and link:
                target = Path(link) if Path(link).is_absolute() else (path.parent / link)
                if target.is_dir():
                    queue.append(target.resolve())
    order = {name: i for i, name in enumerate(stage_order())}
    return sorted(seen.values(), key=lambda s: (order.get(s["stage"], len(order)), s["path"]))


def _write_quarantine(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            data = {k: v for k, v in (row.get("data") or {}).items() if k != "embedding"}
            fh.write(
                json.dumps(
                    {**{k: v for k, v in row.items() if k != "data"}, "data": data},
                    ensure_ascii=False,
                    default=str,
                )
                + "\n"
            )
    tmp.replace(path)


def _reasons(rejected: list[dict]) -> dict[str, int]:
    return dict(Counter(r["reason"].split(" (")[0].split(":")[0] for r in rejected))


def _record_provenance(
    client: rg.Argilla, dataset: rg.Dataset, entry: dict[str, Any], replace_last: bool = False
) -> None:
    """Append this push to the dataset's server-side metadata, where export reads it for the card."""
    meta = rc.dataset_metadata(client, dataset)
    block = dict(meta.get(PROVENANCE_KEY) or {})
    pushes = list(block.get("pushes", []))
    if replace_last and pushes and pushes[-1].get("at") == entry["at"]:
        pushes.pop()
    block["pushes"] = ([*pushes, entry])[-50:]
    rc.set_dataset_metadata(client, dataset, {**meta, PROVENANCE_KEY: block})


def _models(rows: Dataset | Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    columns = pr.columns_of(rows)
    for column, key in (
        ("generation_models", "generators"),
        ("generator_model", "instruction_generators"),
        ("judge_model", "judges"),
        ("scorer_model", "scorers"),
    ):
        if column not in columns:
            continue
        values: set[str] = set()
        for v in rows[column] if isinstance(rows, Dataset) else (r.get(column) for r in rows):
            values.update(str(x) for x in (v if isinstance(v, list) else [v]) if x)
        out[key] = values
    return {k: sorted(v) for k, v in out.items() if v}


def check_writable(path: Path) -> None:
    """Fail before any work when the quarantine file cannot be written."""
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("."))
    if path.is_dir() or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(path, "cannot write the quarantine file here: choose another --quarantine path")


def _all_quarantined(n_rows: int, rejected: list[dict], qpath: Path, where: str) -> rc.ReviewError:
    if not n_rows:
        return rc.ReviewError(f"nothing to push to {where}: the input has no rows")
    reasons = ", ".join(f"{k}: {v}" for k, v in _reasons(rejected).items())
    return rc.ReviewError(
        f"none of the {n_rows} input rows can be reviewed ({reasons}); each is in {qpath} with its row, "
        f"field and reason. Nothing was pushed to {where}: fix the rows and push again"
    )


def push(
    ds: Dataset | Sequence[Mapping[str, Any]],
    cfg: Config,
    dataset: str,
    workspace: str,
    source: Path | str | None = None,
    quarantine: Path | str | None = None,
    client: rg.Argilla | None = None,
    progress: bool = True,
) -> PushStats:
    """Push `ds` (a Dataset or row dicts) for review as dataset `workspace/dataset`; returns counts (see
    the module docstring). A push in which no row lands is an error, and leaves no new dataset."""
    started = time.perf_counter()
    qpath = Path(quarantine) if quarantine else quarantine_path(cfg, dataset)
    check_writable(qpath)
    pairs, rejected = pr.to_pairs(ds, cfg.review.seed, source)
    apply_plan(pairs, cfg.review.calibration_size, cfg.review.seed)  # review_priority, calibration_sample
    client = client or rc.connect(cfg, roles=rc.WRITER_ROLES)  # before the embedding: fail in seconds
    where = f"{workspace}/{dataset} at {client.api_url}"
    if not pairs:
        _write_quarantine(qpath, rejected)
        raise _all_quarantined(len(ds), rejected, qpath, where)
    provenance_source = source if source is not None else run_source(cfg, ds)
    dim, vectors = _attach_embeddings(pairs, cfg) if cfg.review.vectors else (None, None)
    spec = st.build_spec(pr.metadata_names(pairs), dim, cfg.review.min_submitted)
    try:
        stats, created_dataset, all_rejected = _push_pairs(
            client,
            ds,
            cfg,
            pairs,
            rejected,
            spec,
            dim,
            dataset,
            workspace,
            provenance_source,
            progress,
            vectors,
        )
    except (ArgillaAPIError, httpx.HTTPError) as exc:
        raise rc.ReviewError(
            f"the push to {where} failed: {rc.cut(str(exc))}. Re-run the same command: records already "
            "pushed are skipped"
        ) from None
    _write_quarantine(qpath, all_rejected)
    if not stats["pushed"]:
        if created_dataset is not None:
            created_dataset.delete()  # it was created by this push and holds nothing
        raise _all_quarantined(len(ds), all_rejected, qpath, where)
    stats["quarantine"] = str(qpath) if all_rejected else None
    stats["seconds"] = round(time.perf_counter() - started, 2)
    if stats["markup_rows"]:
        from curate.console import console

        console.print(
            f"note: {stats['markup_rows']} rows hold HTML markup or entities (rows "
            f"{', '.join(map(str, stats['markup_examples']))}{', ...' if stats['markup_rows'] > 10 else ''}): "
            "reviewers see it as literal text, exactly as it will be exported",
            markup=False,
            highlight=False,
        )
    return stats


def _push_pairs(
    client: rg.Argilla,
    ds: Dataset | Sequence[Mapping[str, Any]],
    cfg: Config,
    pairs: list[dict],
    rejected: list[dict],
    spec: dict[str, Any],
    dim: int | None,
    dataset: str,
    workspace: str,
    provenance_source: Path | str | None,
    progress: bool,
    vectors: VectorProvenance | None = None,
) -> tuple[PushStats, rg.Dataset | None, list[dict]]:
    """The server side of a push: (stats, the dataset if this push created it, every rejected row)."""
    rg_dataset, changes = ensure_dataset(client, dataset, workspace, spec, cfg.review.update_settings)
    has_vector = dim is not None and any(v.name == st.VECTOR for v in rg_dataset.settings.vectors)
    metadata = {m.name for m in rg_dataset.settings.metadata}

    rounds = present_rounds(client, rg_dataset) if "created" not in changes else {}
    present = set(rounds)
    todo = [p for p in pairs if p["id"] not in present]
    digest = stable_id(sorted(p["id"] for p in pairs))
    pushes = (rc.dataset_metadata(client, rg_dataset).get(PROVENANCE_KEY) or {}).get("pushes", [])
    round_ = cfg.review.round or next_round(rounds, pushes, digest)
    # Provenance is written before the records: every dataset PATCH makes argilla-server's worker
    # recompute the status of all the dataset's records, which is nothing on an empty dataset and a
    # full pass on a full one. It is rewritten afterwards only if the server refused rows.
    entry: PushProvenance = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(Path(provenance_source).resolve()) if provenance_source else None,
        "stages": collect_stages(provenance_source),
        "models": _models(ds),
        "round": round_,
        "input_digest": digest,
        "vectors": vectors if has_vector else None,
        "push": {
            "input_rows": len(ds),
            "pairs": len(pairs),
            "already_present": len(pairs) - len(todo),
            "created": len(todo),
            "rejected": len(rejected),
            "rejected_reasons": _reasons(rejected),
            "min_submitted": cfg.review.min_submitted,
            "seed": cfg.review.seed,
        },
    }
    if todo or "created" in changes:
        _record_provenance(client, rg_dataset, entry)
    quarantined: list[dict] = []
    created = 0
    batch_size = max(1, min(cfg.review.batch_size, MAX_BATCH))
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]

    def send(chunk: list[dict]) -> int:
        return _send(
            client,
            rg_dataset,
            [(p, to_record(p, rg_dataset, metadata, has_vector, round_)) for p in chunk],
            quarantined,
        )

    with (
        Progress(
            TextColumn("pushing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            disable=not progress or not todo,
            transient=True,
        ) as bar,
        ThreadPoolExecutor(max_workers=max(1, cfg.review.concurrency)) as pool,
    ):
        task = bar.add_task("push", total=len(todo))
        # A few batches in flight: the server parses and validates one while it commits another.
        for chunk, sent in zip(chunks, pool.map(send, chunks)):
            created += sent
            bar.advance(task, len(chunk))
    quarantined.sort(key=lambda q: q["row"])

    by_row = {r["row"]: r for r in rejected}
    rows = {p["row"]: p for p in pairs}
    for q in quarantined:
        by_row[q["row"]] = {**q, "data": dict(ds[q["row"] - 1])} if q["row"] in rows else q
    all_rejected = sorted(by_row.values(), key=lambda r: r["row"])
    markup = [p["row"] for p in pairs if pr.has_markup(p)]

    stats: PushStats = {
        "dataset": dataset,
        "workspace": workspace,
        "api_url": client.api_url,
        "url": client.api_url,
        "input_rows": len(ds),
        "pairs": len(pairs),
        "already_present": len(pairs) - len(todo),
        "created": created,
        "pushed": len(pairs) - len(todo) + created,
        "rejected": len(all_rejected),
        "rejected_reasons": _reasons(all_rejected),
        "markup_rows": len(markup),
        "markup_examples": markup[:10],
        "settings_changes": changes,
        "min_submitted": cfg.review.min_submitted,
        "seed": cfg.review.seed,
        "vectors": has_vector,
        "round": round_,
    }
    if quarantined:
        entry["push"].update({k: stats[k] for k in ("created", "rejected", "rejected_reasons")})
        _record_provenance(client, rg_dataset, entry, replace_last=True)
    return stats, rg_dataset if "created" in changes else None, all_rejected


def run(
    cfg: Config, ds: Dataset | Sequence[Mapping[str, Any]] | None, *, source: Path | str | None = None
) -> StageResult:
    """The push stage: the rows go to `argilla.dataset` for review; its stats count what landed."""
    if ds is None:
        raise ValueError("the push stage needs rows")
    stats = push(
        ds, cfg, cfg.argilla.dataset, cfg.argilla.workspace, source=source, quarantine=cfg.review.quarantine
    )
    return StageResult({}, {**stats, "rows_out": stats.get("pushed", len(ds))})
