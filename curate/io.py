"""Reading inputs with errors that name the file, line and field; writing stage outputs atomically.

A stage output is a directory holding a `datasets.DatasetDict` (`save_to_disk`), a parquet copy of
each split under `parquet/`, and an optional `stats.json`. It is written to a temporary sibling and
renamed into place, so a failed run never leaves a half-written directory and re-runs are safe.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import shutil
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from datasets import Dataset, DatasetDict, Features, Value, load_from_disk

from curate.rows import MessageError, conversation_row, conversation_rows

if TYPE_CHECKING:
    from curate.stages import StageResult

MAIN_SPLIT = "train"
OUTPUT_MARKER = ".curate-output.json"  # in every directory curate writes: only such directories are replaced
READABLE = (".jsonl", ".json", ".parquet", ".csv")


class InputError(ValueError):
    """Bad input: the message says which file, line and field, and what is wrong."""

    def __init__(self, path: Path | str, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = Path(path), line, field
        where = f"{path}" + (f":{line}" if line is not None else "")
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{message}")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    path, f"not valid UTF-8 (byte {exc.start}): re-encode the file as UTF-8", lineno
                ) from None
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InputError(path, f"malformed JSON at column {exc.colno}: {exc.msg}", lineno) from None
            if isinstance(row, str):  # a file of plain JSON strings, one prompt a line
                row = {"instruction": row}
            if not isinstance(row, dict):
                raise InputError(path, f"expected a JSON object, got {type(row).__name__}", lineno)
            rows.append(row)
    return rows


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError(path, f"not valid UTF-8 (byte {exc.start}): re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"malformed JSON at column {exc.colno}: {exc.msg}", exc.lineno) from None
    if isinstance(data, dict):
        data = next((v for v in data.values() if isinstance(v, list)), None) or [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise InputError(path, "expected a JSON list of objects")
    return data


def _read_csv(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise InputError(
            path, f"not valid UTF-8 (byte {exc.start}): re-encode the file as UTF-8", line
        ) from None
    # The csv module reads the raw text: quoted fields keep their newlines (and U+2028 and friends, which
    # str.splitlines would break on), and line_num counts the file's own lines.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = []
    for row in reader:
        if None in row:
            raise InputError(path, "more values than header columns", reader.line_num)
        rows.append(row)
    return rows


def read_rows(path: Path | str, split: str = MAIN_SPLIT, required: Sequence[str] = ()) -> Dataset:
    """Read a dataset from jsonl / json / parquet / csv, a saved Dataset or a curate stage output."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or directory")
    if path.is_dir():
        ds = _read_saved(path, split)
    elif path.suffix == ".jsonl":
        ds = _from_rows(path, _conversations(path, _read_jsonl(path)))
    elif path.suffix == ".json":
        ds = _from_rows(path, _conversations(path, _read_json(path)))
    elif path.suffix == ".csv":
        ds = _from_rows(path, _conversations(path, _read_csv(path)))
    elif path.suffix == ".parquet":
        try:
            ds = Dataset.from_parquet(str(path))
        except (pa.ArrowException, OSError, ValueError) as exc:  # what pyarrow raises for a corrupt file
            raise InputError(path, f"not a readable parquet file: {exc}") from None
    else:
        raise InputError(
            path, f"unsupported input type; use one of {', '.join(READABLE)} or a dataset directory"
        )
    if len(ds) == 0:
        raise InputError(path, "the input has no rows")
    if path.suffix == ".parquet" or path.is_dir():
        ds = _chat_dataset(path, ds)
    require_columns(ds, required, path)
    return ds


CHAT_COLUMNS = ("prompt", "messages", "chosen", "rejected", "history")


def _jsonl_lines(path: Path) -> list[int]:
    """The line number of each row of a jsonl file (blank lines hold none)."""
    with path.open("rb") as fh:
        return [n for n, raw in enumerate(fh, start=1) if raw.strip()]


def _conversations(path: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows.conversation_rows`: chat prompts checked, TRL pairs and Alpaca `history` read; a malformed
    conversation fails naming the file, the line (jsonl) or row, and the field (after the rows' types,
    when one table cannot hold them)."""
    try:
        return conversation_rows(rows)
    except MessageError as exc:
        _from_rows(path, rows)
        line = exc.row
        if line is not None and path.suffix == ".jsonl":
            line = _jsonl_lines(path)[line - 1]
        raise InputError(path, str(exc), line, exc.field) from None


def _chat_dataset(path: Path, ds: Dataset) -> Dataset:
    """`_conversations` for a parquet file or saved dataset that holds chat messages (others as they are)."""
    listed = [c for c in CHAT_COLUMNS if c in ds.column_names and not isinstance(ds.features[c], Value)]
    if not listed and not {"chosen", "rejected"} <= set(ds.column_names):
        return ds
    rows = _conversations(path, ds.to_list())
    return ds if rows == ds.to_list() else _from_rows(path, rows)


def read_records(path: Path | str, split: str = MAIN_SPLIT) -> list[dict[str, Any]] | Dataset:
    """The rows of a jsonl / json / csv file as dicts, each with the types its own line gave it (no one
    schema over all rows), for a stage that checks every row and sets the bad ones aside (push); other
    inputs as `read_rows`."""
    path = Path(path)
    readers = {".jsonl": _read_jsonl, ".json": _read_json, ".csv": _read_csv}
    if not path.is_file() or path.suffix not in readers:
        return read_rows(path, split)
    rows = readers[path.suffix](path)
    if not rows:
        raise InputError(path, "the input has no rows")
    return [_as_conversation(row) for row in rows]


def _as_conversation(row: dict[str, Any]) -> dict[str, Any]:
    """`rows.conversation_row` of a row (its prompt left to the stage that reads it, which sets a bad
    row aside with its field and reason), or the row as it is when its pair is malformed."""
    try:
        return conversation_row(row, check=False)
    except MessageError:
        return row


def _from_rows(path: Path, rows: list[dict[str, Any]]) -> Dataset:
    """One table over all rows: every key any row has is a column (None where a row lacks it)."""
    if not rows:
        raise InputError(path, "the input has no rows")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    try:
        return Dataset.from_dict({c: [row.get(c) for row in rows] for c in columns})
    except (pa.ArrowException, TypeError, ValueError) as exc:  # pyarrow type clashes between rows
        raise InputError(path, f"rows have inconsistent types: {exc}") from None


def _load_dir(path: Path) -> Dataset:
    """load_from_disk for one Dataset directory; an empty split (no data files) comes back empty
    with its features, where `datasets` itself fails on it."""
    state = json.loads((path / "state.json").read_text())
    if not state.get("_data_files"):
        info = json.loads((path / "dataset_info.json").read_text())
        features = Features.from_dict(info.get("features") or {})
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return load_from_disk(str(path))


def _read_saved(path: Path, split: str) -> Dataset:
    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        if split not in splits:
            raise InputError(path, f"no split '{split}' (has: {', '.join(splits)})")
        return _load_dir(path / split)
    if (path / "state.json").exists():
        return _load_dir(path)
    raise InputError(path, "not a dataset directory (no dataset_dict.json or state.json)")


def read_splits(path: Path | str) -> DatasetDict:
    """All splits of a stage output (e.g. `train` and `removed` after dedup)."""
    path = Path(path)
    if (path / "dataset_dict.json").exists():
        splits = json.loads((path / "dataset_dict.json").read_text())["splits"]
        return DatasetDict({name: _load_dir(path / name) for name in splits})
    return DatasetDict({MAIN_SPLIT: _read_saved(path, MAIN_SPLIT)})


def require_columns(ds: Dataset, columns: Sequence[str], path: Path | str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise InputError(
            path, f"missing column (has: {', '.join(ds.column_names) or 'none'})", field=missing[0]
        )


def check_text_column(ds: Dataset, column: str, path: Path | str) -> None:
    """Fail on rows whose text column is not a string or shows nothing (empty, blanks, or only invisible
    format characters such as zero-width spaces), naming the first such row (1-based)."""
    require_columns(ds, [column], path)
    for i, value in enumerate(ds[column]):
        if not is_visible_text(value):
            bad = sum(1 for v in ds[column] if not is_visible_text(v))
            raise InputError(
                path, f"empty or missing text in {bad} row(s), first at row {i + 1}", i + 1, column
            )


def load_stats(path: Path | str) -> dict[str, Any]:
    stats = Path(path) / "stats.json"
    return json.loads(stats.read_text()) if stats.exists() else {}


def is_visible_text(value: Any) -> bool:
    """Whether `value` is a string that shows something: not only blanks and invisible format characters."""
    return isinstance(value, str) and any(
        not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in value
    )


def is_curate_output(path: Path) -> bool:
    """Whether `path` is a directory curate wrote (its marker file, or the stage layout it wrote before)."""
    if not path.is_dir():
        return False
    if (path / OUTPUT_MARKER).is_file():
        return True
    return (path / "dataset_dict.json").is_file() and (path / "parquet").is_dir()


def check_output(out: Path | str) -> Path:
    """Fail before any work if `out` cannot be written: it holds something curate did not write, or its
    parent is not a writable directory. An absent path, an empty directory or curate's own output is fine."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(
            out, "exists and is not a directory: curate writes a directory here; choose another path"
        )
    if out.is_dir() and any(out.iterdir()) and not is_curate_output(out):
        raise InputError(
            out,
            "exists and holds files curate did not write: choose another output path (curate only "
            "replaces its own outputs)",
        )
    parent = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(parent, "is not a writable directory: cannot write the output here")
    return out


@contextlib.contextmanager
def atomic_dir(out: Path | str) -> Iterator[Path]:
    """Yield a temporary sibling directory that replaces `out` only if the block succeeds.

    `out` may be absent, empty or a curate output (see `check_output`); anything else is refused
    before the block runs, so no user file is ever replaced."""
    out = check_output(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(out.parent, f"cannot create the output directory: {exc.strerror}") from None
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        write_json(tmp / OUTPUT_MARKER, {"written_by": "curate", "version": _curate_version()})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def jsonable(value: Any) -> Any:
    """`value` with every non-finite float (NaN, inf) as None, so that it is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def write_json(path: Path | str, data: Any) -> Path:
    """Write strict JSON atomically (a temporary sibling renamed into place): never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(
        json.dumps(jsonable(data), indent=2, default=str, allow_nan=False) + "\n", encoding="utf-8"
    )
    tmp.replace(path)
    return path


def _write_empty_shard(split_dir: Path, ds: Dataset) -> None:
    """Give an empty split one empty arrow shard, where `datasets` wrote none (datasets 5.0.x does so,
    and then its own load_from_disk fails on the split): plain load_from_disk opens every split."""
    state_file = split_dir / "state.json"
    state = json.loads(state_file.read_text())
    if state.get("_data_files"):
        return
    name = "data-00000-of-00001.arrow"
    with pa.OSFile(str(split_dir / name), "wb") as sink, pa.ipc.new_stream(sink, ds.data.table.schema):
        pass
    state["_data_files"] = [{"filename": name}]
    state_file.write_text(json.dumps(state, indent=2, sort_keys=True))


def write_dataset(
    out: Path | str,
    data: Dataset | Mapping[str, Dataset],
    stats: Mapping[str, Any] | None = None,
) -> Path:
    """Write a stage output atomically: save_to_disk, a parquet copy per split, and stats.json."""
    splits = DatasetDict({MAIN_SPLIT: data} if isinstance(data, Dataset) else dict(data))
    with atomic_dir(out) as tmp:
        write_splits(tmp, splits)
        if stats is not None:
            write_json(tmp / "stats.json", stats)
    return Path(out)


def write_splits(folder: Path, splits: DatasetDict) -> None:
    """`splits` into `folder` (inside an `atomic_dir`): save_to_disk, with one shard for an empty split so
    that plain `datasets.load_from_disk` opens it, and a parquet copy of each split."""
    if not splits:
        return
    splits.save_to_disk(str(folder))
    (folder / "parquet").mkdir()
    for name, ds in splits.items():
        if len(ds) == 0:
            _write_empty_shard(folder / name, ds)
        ds.to_parquet(str(folder / "parquet" / f"{name}.parquet"))


def write_stage(out: Path | str, result: StageResult) -> Path:
    """Write a stage's result under `out` (its splits and stats.json), atomically."""
    return write_dataset(out, result.splits, result.stats)


def _curate_version() -> str:
    try:
        return version("curate")
    except PackageNotFoundError:
        return "unknown"
