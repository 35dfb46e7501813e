"""Sentence embeddings of row texts: the configured encoder, normalised vectors, and the stored column.

Every stage that compares rows (dedup, select, push's prompt vectors) embeds through here, so vectors
from one stage can be reused by the next (`embedding` column) when the encoder is the same.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
from datasets import Dataset

from curate.config import EmbeddingConfig
from curate.console import progress

EMBEDDING = "embedding"


def _declared_dim(emb: EmbeddingConfig) -> int | None:
    """The output size a local sentence-transformers folder declares (Transformer + Pooling [+ Normalize]),
    read without loading torch; None when it can't be told that way (then the model is loaded)."""
    from curate.models import embedded_encoder_path

    folder = embedded_encoder_path() if emb.model is None else Path(emb.model)
    try:
        modules = json.loads((folder / "modules.json").read_text())
        kinds = {m["type"].rsplit(".", 1)[-1] for m in modules}
        if not kinds <= {"Transformer", "Pooling", "Normalize"}:
            return None  # e.g. a Dense layer changes the size
        pooling = next(m for m in modules if m["type"].endswith("Pooling"))
        config = json.loads((folder / pooling["path"] / "config.json").read_text())
        return int(config["word_embedding_dimension"])
    except (OSError, ValueError, KeyError, StopIteration):
        return None


def embedding_dim(emb: EmbeddingConfig) -> int:
    """Size of the configured encoder's embeddings (to tell whether a stored `embedding` column fits)."""
    from curate.models import load_encoder

    if (declared := _declared_dim(emb)) is not None:
        return declared
    model = load_encoder(emb)
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def windows(texts: Sequence[str], emb: EmbeddingConfig) -> tuple[list[str], np.ndarray]:
    """Each text cut into pieces the encoder reads whole (its `max_seq_length` in tokens), in order, and
    for every piece the index of its text. A text within the window is its own single piece."""
    from curate.models import load_encoder

    model = load_encoder(emb)
    window = max(8, int(model.max_seq_length or 256) - 2)  # room for the [CLS] / [SEP] markers
    tokenizer = model.tokenizer
    pieces: list[str] = []
    owner: list[int] = []
    # A text with fewer characters than the window has fewer tokens too: only longer ones are tokenised.
    long = [i for i, t in enumerate(texts) if len(t) > window]
    ids = (
        dict(zip(long, tokenizer([texts[i] for i in long], add_special_tokens=False)["input_ids"]))
        if long
        else {}
    )
    for i, text in enumerate(texts):
        tokens = ids.get(i)
        if tokens is None or len(tokens) <= window:
            pieces.append(text)
            owner.append(i)
            continue
        for start in range(0, len(tokens), window):
            pieces.append(tokenizer.decode(tokens[start : start + window]))
            owner.append(i)
    return pieces, np.asarray(owner, dtype=np.int64)


def embed(texts: Sequence[str], emb: EmbeddingConfig, description: str = "embedding") -> np.ndarray:
    """Normalised float32 embeddings of whole texts: a text longer than the encoder's window is the
    normalised mean of its windows' embeddings (the encoder alone would read only its first window, and
    two texts that share a long beginning would look identical).

    Pieces are embedded in chunks (for a progress bar) sorted by length: sorting globally keeps padding
    as low as one big `encode` call does (it sorts within its input only).
    """
    from curate.models import encode

    pieces, owner = windows(texts, emb)
    n = len(pieces)
    vectors: np.ndarray | None = None
    order = np.argsort([-len(t) for t in pieces], kind="stable")
    chunk = max(emb.batch_size * 16, 256)
    with progress() as bar:
        task = bar.add_task(description if n == len(texts) else f"{description} ({n} windows)", total=n)
        for start in range(0, n, chunk):
            idx = order[start : start + chunk]
            part = encode([pieces[i] for i in idx], emb)
            if vectors is None:
                vectors = np.empty((n, part.shape[1]), dtype=np.float32)
            vectors[idx] = part
            bar.advance(task, len(idx))
    if vectors is None:
        return np.empty((0, 0), dtype=np.float32)
    if n == len(texts):
        return vectors
    sums = np.zeros((len(texts), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, vectors)
    return (sums / np.linalg.norm(sums, axis=1, keepdims=True)).astype(np.float32)


def stored_embeddings(ds: Dataset, dim: int) -> np.ndarray | None:
    """The `embedding` column as an (n, dim) normalised matrix, or None if absent, incomplete or another size."""
    if EMBEDDING not in ds.column_names or len(ds) == 0:
        return None
    col = ds.with_format("arrow")[EMBEDDING]
    if col.null_count:
        return None
    arr = col.combine_chunks()
    if not (
        pa.types.is_list(arr.type)
        or pa.types.is_large_list(arr.type)
        or pa.types.is_fixed_size_list(arr.type)
    ):
        return None
    if pa.types.is_fixed_size_list(arr.type):
        if arr.type.list_size != dim:
            return None
    else:
        lengths = np.asarray(arr.value_lengths())
        if (lengths != dim).any():
            return None
    flat = arr.flatten()
    if flat.null_count:
        return None
    vectors = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(ds), dim)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    if not np.isfinite(vectors).all() or (norms == 0).any():
        return None
    return vectors / norms


def embedding_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """An arrow column for `vectors` (fixed-size float32 lists) without going through Python lists."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
