"""What new rows are compared against besides each other: references (earlier rounds) and benchmarks.

A reference is rows that already exist: an earlier curate run or stage directory, an export, a jsonl /
json / parquet / csv file, a saved dataset, or an Argilla dataset (`argilla:NAME` or
`argilla:WORKSPACE/NAME`). A new row that duplicates a reference row is removed (`dedup_kind:
reference`); the reference itself is never changed. A benchmark is evaluation prompts given as a file:
a new row that contains one of them (exact after normalisation, a shared word n-gram, datatrove's and
NeMo Curator's decontamination rule, or an embedding at the dedup threshold) is removed with
`dedup_kind: contamination`. References and benchmarks are matched on the prompt text (the same recipe
as the new rows', `rows.prompt_text`). Their embeddings are cached by (encoder, text recipe, content),
so a later round does not embed an earlier one again. An Argilla dataset's stored prompt vectors are
used as they are where the push recorded the same encoder and text recipe as the current config's
(per round, `PushProvenance.vectors`); the other records are embedded, and the stats say which.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset

from curate.config import Config, DedupConfig, EmbeddingConfig
from curate.embeddings import embed
from curate.io import InputError, read_rows
from curate.rows import PROMPT_COLUMNS, prompt_text, row_ids

ARGILLA_PREFIX = "argilla:"
TEXT_RECIPE = "prompt_text@1"  # names the text recipe in the cache key; bump it when rows.prompt_text changes
_WORDS = re.compile(r"\w+", re.UNICODE)
# What benchmark files call their prompt, looked up case-insensitively when no curate prompt column exists.
BENCHMARK_PROMPT_COLUMNS = ("question", "problem", "query", "text", "input")


@dataclass(frozen=True)
class Reference:
    """Rows to compare against: a label (file, directory or argilla:NAME), ids, texts and their vectors."""

    label: str
    kind: str  # "reference" or "contamination"
    ids: Sequence[str]
    texts: list[str]
    vectors: np.ndarray
    cached: bool  # the vectors came from the cache (or all from the Argilla dataset's stored vectors)
    stored: int = 0  # rows whose vectors are the Argilla dataset's own (reused, not embedded)
    note: str | None = None  # why stored vectors were not used, where some were not

    def describe(self) -> dict[str, Any]:
        """The reference's entry in the dedup stats: label, kind, rows and where its vectors came from."""
        embedded = len(self.ids) - self.stored
        how = "cached" if self.cached else "computed"
        out: dict[str, Any] = {
            "reference": self.label,
            "kind": self.kind,
            "rows": len(self.ids),
            "embeddings": "stored" if not embedded and self.stored else how,
        }
        if self.label.startswith(ARGILLA_PREFIX):
            out.update(stored_vectors=self.stored, embedded=embedded if how == "computed" else 0)
            out.update(cached=embedded if how == "cached" else 0)
            if self.stored and embedded:
                out["embeddings"] = f"stored {self.stored}, {how} {embedded}"
        if self.note:
            out["note"] = self.note
        return out


class RowIds(Sequence[str]):
    """`rows.row_ids` of a reference's rows `keep`, each computed when first looked up: only the rows that
    new rows match need an id, so a large reference is not walked row by row again every round."""

    def __init__(self, ds: Dataset, keep: list[int]) -> None:
        self._ds, self._keep, self._known = ds, keep, {}

    def __len__(self) -> int:
        return len(self._keep)

    def __getitem__(self, i):  # an int (numpy ints too); a reference's ids are never sliced
        i = int(i)
        if i not in self._known:
            self._known[i] = row_ids(self._ds.select([self._keep[i]]))[0]
        return self._known[i]


def cache_dir() -> Path:
    """Where reference embeddings are cached (CURATE_CACHE_DIR, else the user cache dir)."""
    base = os.environ.get("CURATE_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "curate"
    )
    return Path(base) / "embeddings"


def cached_embed(texts: list[str], emb: EmbeddingConfig, label: str) -> tuple[np.ndarray, bool]:
    """Embeddings of `texts`, from the cache when the same encoder embedded the same texts before."""
    from curate.models import encoder_name

    h = hashlib.sha256(f"{encoder_name(emb)}\x1f{TEXT_RECIPE}".encode())
    for text in texts:
        h.update(text.encode("utf-8"))
        h.update(b"\x1e")
    path = cache_dir() / f"{h.hexdigest()[:32]}.npy"
    if path.is_file():
        vectors = np.load(path)
        if vectors.shape[0] == len(texts):
            return vectors, True
    vectors = embed(texts, emb, f"embedding {len(texts)} rows of {label}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npy")
    np.save(tmp, vectors)
    tmp.replace(path)
    return vectors, False


def reference_rows(spec: str, cfg: Config) -> Dataset:
    """The rows a reference names (see the module docstring); errors name the reference."""
    if spec.startswith(ARGILLA_PREFIX):
        return _argilla_rows(spec[len(ARGILLA_PREFIX) :], cfg)
    path = Path(spec)
    if path.is_dir() and (path / "manifest.json").is_file():
        from curate.run import STAGES

        for stage in reversed(STAGES):  # a run: the last stage that wrote rows
            if (path / stage.name / "dataset_dict.json").is_file():
                return read_rows(path / stage.name)
        raise InputError(path, "a curate run directory with no stage output yet")
    return read_rows(path)


def _argilla_rows(name: str, cfg: Config) -> Dataset:
    records, _ = _argilla_records(name, cfg)
    return Dataset.from_list([{"id": r["id"], "messages": r["messages"]} for r in records])


def _argilla_records(name: str, cfg: Config) -> tuple[list[dict[str, Any]], str | None]:
    """Each record of `argilla:NAME` as {id, messages (as pushed, unescaped), vector or None (the stored
    prompt vector, where this config's encoder and text recipe made it)}, and why some are None."""
    from curate.models import encoder_name
    from curate.stages.review import client as rc
    from curate.stages.review.pull import record_fields
    from curate.stages.review.push import PROVENANCE_KEY
    from curate.stages.review.settings import PROMPT, ROUND, VECTOR

    workspace, _, dataset = name.rpartition("/")
    client = rc.connect(cfg)
    rg_dataset = rc.require_dataset(client, dataset, workspace or cfg.argilla.workspace)
    wanted = {"encoder": encoder_name(cfg.embeddings), "text": TEXT_RECIPE}
    made: dict[int, set[tuple]] = {}  # round -> the (encoder, text) of its pushes' vectors
    for push in (rc.dataset_metadata(client, rg_dataset).get(PROVENANCE_KEY) or {}).get("pushes", []):
        vec = push.get("vectors") or {}
        made.setdefault(push.get("round", 1), set()).add((vec.get("encoder"), vec.get("text")))
    usable = {r for r, m in made.items() if m == {(wanted["encoder"], wanted["text"])}}
    has_vectors = any(v.name == VECTOR for v in rg_dataset.settings.vectors)
    include = (f"vectors:{VECTOR}",) if usable and has_vectors else ()
    rows = []
    for record in rc.iter_raw_records(client, rg_dataset, include=include):
        prompt = record_fields(record).get(PROMPT)
        if isinstance(prompt, list):
            prompt = [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in prompt]
        round_ = (record.get("metadata") or {}).get(ROUND)
        vector = (record.get("vectors") or {}).get(VECTOR)
        if (round_ if isinstance(round_, int) else 1) not in usable:
            vector = None
        rows.append({"id": record.get("external_id") or record["id"], "messages": prompt, "vector": vector})
    if not rows:
        raise InputError(f"{ARGILLA_PREFIX}{name}", "the Argilla dataset has no records")
    note = None
    if any(r["vector"] is None for r in rows):
        note = (
            "stored vectors not used for some records: their push recorded no encoder (pushed before curate "
            f"recorded it), another encoder or text, or no vectors; this config's: {wanted['encoder']}, "
            f"{wanted['text']}"
        )
    return rows, note


def load_references(cfg: Config, new_texts: int = 0) -> list[Reference]:
    """Every reference (`dedup.against`) and benchmark (`dedup.decontaminate`) of the config, embedded."""
    out = []
    for kind, specs in (("reference", cfg.dedup.against), ("contamination", cfg.dedup.decontaminate)):
        for spec in specs:
            label = str(spec)
            if label.startswith(ARGILLA_PREFIX):
                out.append(argilla_reference(label, kind, cfg))
                continue
            ds = with_prompt_column(reference_rows(label, cfg), label)
            prompts = ds.select_columns([c for c in (*PROMPT_COLUMNS, "input") if c in ds.column_names])
            texts = [prompt_text(row) for row in prompts.to_list()]  # one conversion, not one per row
            keep = [i for i, t in enumerate(texts) if t.strip()]
            if not keep:
                raise InputError(label, "no prompt text in any row (needs instruction, prompt or messages)")
            texts, ids = [texts[i] for i in keep], RowIds(ds, keep)
            vectors, cached = cached_embed(texts, cfg.embeddings, label)
            out.append(Reference(_short(label), kind, ids, texts, vectors, cached))
    return out


def argilla_reference(label: str, kind: str, cfg: Config) -> Reference:
    """An Argilla dataset as a reference: its stored vectors where they are reusable, the rest embedded
    (through the cache)."""
    records, note = _argilla_records(label[len(ARGILLA_PREFIX) :], cfg)
    keep = [r for r in records if prompt_text(r).strip()]
    if not keep:
        raise InputError(label, "no prompt text in any record")
    texts = [prompt_text(r) for r in keep]
    todo = [i for i, r in enumerate(keep) if r["vector"] is None]
    vectors = np.zeros((len(keep), 0), dtype=np.float32)
    cached = True
    if todo:
        fresh, cached = cached_embed([texts[i] for i in todo], cfg.embeddings, label)
        vectors = np.zeros((len(keep), fresh.shape[1]), dtype=np.float32)
        vectors[todo] = fresh
    stored = [i for i, r in enumerate(keep) if r["vector"] is not None]
    if stored:
        given = np.asarray([keep[i]["vector"] for i in stored], dtype=np.float32)
        if vectors.shape[1] == 0:
            vectors = np.zeros((len(keep), given.shape[1]), dtype=np.float32)
        vectors[stored] = given / np.maximum(np.linalg.norm(given, axis=1, keepdims=True), 1e-12)
    ids = [str(r["id"]) for r in keep]
    return Reference(
        label, kind, ids, texts, vectors, cached, stored=len(stored), note=note if todo else None
    )


def reference_state(
    cfg: Config, specs: list[str], exclude_sources_under: Path | None = None
) -> dict[str, Any]:
    """A fingerprint of what each reference holds now, for a stage cache key: a file's or directory's
    content id, an Argilla dataset's record ids (without the rounds pushed from `exclude_sources_under`,
    the run's own pushes, which descend from the stage being keyed)."""
    from curate.run import content_id

    out: dict[str, Any] = {}
    for spec in specs:
        if spec.startswith(ARGILLA_PREFIX):
            out[spec] = argilla_state(spec, cfg, exclude_sources_under)
        else:
            out[spec] = content_id(Path(spec))
    return out


def argilla_state(spec: str, cfg: Config, exclude_sources_under: Path | None = None) -> str | None:
    """The record ids of `argilla:NAME` (hashed; None when the dataset does not exist or is empty),
    leaving out the rounds that pushes from under `exclude_sources_under` created."""
    from curate.rows import stable_id
    from curate.stages.review import client as rc
    from curate.stages.review.push import PROVENANCE_KEY
    from curate.stages.review.settings import ROUND

    workspace, _, name = spec[len(ARGILLA_PREFIX) :].rpartition("/")
    client = rc.connect(cfg)
    dataset = rc.get_dataset(client, name, workspace or cfg.argilla.workspace)
    if dataset is None:
        return None
    own: set[int] = set()
    if exclude_sources_under is not None:
        base = exclude_sources_under.resolve()
        for push in (rc.dataset_metadata(client, dataset).get(PROVENANCE_KEY) or {}).get("pushes", []):
            source = push.get("source")
            if source and "round" in push and Path(source).resolve().is_relative_to(base):
                own.add(push["round"])
    ids = []
    for record in rc.iter_raw_records(client, dataset, include=()):
        round_ = (record.get("metadata") or {}).get(ROUND)
        if (round_ if isinstance(round_, int) else 1) not in own:
            ids.append(str(record.get("external_id") or record["id"]))
    return stable_id(sorted(ids)) if ids else None


def with_prompt_column(ds: Dataset, label: str) -> Dataset:
    """`ds` with a prompt column curate reads: a benchmark's own name for it (`Instruction`, `question`,
    `problem`, ...) becomes `prompt`."""
    if set(PROMPT_COLUMNS) & set(ds.column_names):
        return ds
    by_name = {c.lower(): c for c in ds.column_names}
    found = next((by_name[c] for c in (*PROMPT_COLUMNS, *BENCHMARK_PROMPT_COLUMNS) if c in by_name), None)
    if found is None:
        raise InputError(
            label,
            f"no prompt column (one of {', '.join(PROMPT_COLUMNS + BENCHMARK_PROMPT_COLUMNS)}; "
            f"has {', '.join(ds.column_names)})",
            field="prompt",
        )
    return ds.rename_column(found, "prompt")


def _short(label: str) -> str:
    return label if label.startswith(ARGILLA_PREFIX) else Path(label).name


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of a text, lower-cased (datatrove's and NeMo Curator's decontamination unit)."""
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Match:
    """The reference row a new row duplicates or is contaminated by."""

    row: int
    label: str
    kind: str
    ref_id: str
    similarity: float
    how: str  # exact | ngram | semantic


def nearest(
    vectors: np.ndarray, ref: np.ndarray, block_bytes: int = 256 << 20
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of `vectors`, its most similar row of `ref` and the cosine: blocked matrix products,
    so memory stays bounded whatever the sizes."""
    n = len(vectors)
    best = np.full(n, -1, dtype=np.int64)
    sim = np.full(n, -np.inf, dtype=np.float32)
    if not len(ref) or not n:
        return best, sim
    step = max(1, block_bytes // (4 * len(ref)))
    for start in range(0, n, step):
        s = vectors[start : start + step] @ ref.T
        best[start : start + step] = s.argmax(axis=1)
        sim[start : start + step] = s.max(axis=1)
    return best, sim


def find_matches(
    texts: list[str], vectors: np.ndarray, refs: list[Reference], cfg: DedupConfig, normalize
) -> dict[int, Match]:
    """For each new row that duplicates a reference row or contains a benchmark prompt, its match:
    exact (normalised text) first, then a shared word n-gram (benchmarks only), then cosine >= threshold."""
    found: dict[int, Match] = {}
    keys = [normalize(t) for t in texts]
    for ref in refs:
        exact = {normalize(t): i for i, t in enumerate(ref.texts)}
        grams: dict[tuple[str, ...], int] = {}
        if ref.kind == "contamination":
            for i, t in enumerate(ref.texts):
                for g in ngrams(t, cfg.ngram):
                    grams.setdefault(g, i)
        best, sim = nearest(vectors, ref.vectors)
        for row, key in enumerate(keys):
            if row in found:
                continue
            if key in exact:
                found[row] = Match(row, ref.label, ref.kind, ref.ids[exact[key]], 1.0, "exact")
            elif (
                grams
                and (hit := next((grams[g] for g in ngrams(texts[row], cfg.ngram) if g in grams), None))
                is not None
            ):
                similarity = float(vectors[row] @ ref.vectors[hit])
                found[row] = Match(row, ref.label, ref.kind, ref.ids[hit], similarity, "ngram")
            elif best[row] >= 0 and sim[row] >= cfg.threshold:
                found[row] = Match(row, ref.label, ref.kind, ref.ids[best[row]], float(sim[row]), "semantic")
    return found
