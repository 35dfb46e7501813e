"""Publishing an export to the Hugging Face Hub: checked before any work, uploaded after the local write."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from curate.stages.review import client as rc

UPLOADED = ["README.md", "summary.json", "parquet/*.parquet"]


class ExportError(rc.ReviewError):
    """The export cannot be written or published; the message says why and what to do."""


def check_hub(repo_id: str, overwrite: bool) -> Any:
    """An HfApi that can write `repo_id`; fails first when offline, without a token, or the repo exists."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        raise ExportError(
            "--to-hub: HF_HUB_OFFLINE is set, so the Hub cannot be reached; unset it to push "
            "(the local export is unaffected)"
        )
    from huggingface_hub import HfApi, get_token

    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN") or get_token()
    if not token:
        raise ExportError("--to-hub: no Hugging Face token; set HF_TOKEN to a token with write access")
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(token=token)
    try:
        exists = api.repo_exists(repo_id, repo_type="dataset")
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403):
            raise ExportError(
                f"--to-hub: the Hub rejected the token (HTTP {status}); check that HF_TOKEN is "
                "valid and has write access"
            ) from exc
        raise ExportError(f"--to-hub: the Hub answered with an error ({exc})") from exc
    except Exception as exc:
        raise ExportError(
            f"--to-hub: cannot reach the Hugging Face Hub ({type(exc).__name__}: {exc})"
        ) from exc
    if exists and not overwrite:
        raise ExportError(
            f"--to-hub: dataset repo '{repo_id}' already exists; pass --overwrite to replace it"
        )
    return api


def push_to_hub(api: Any, repo_id: str, folder: Path, private: bool) -> str:
    """Upload the card, the summary and the parquet files of `folder`; returns the dataset's URL."""
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(folder),
            allow_patterns=UPLOADED,
            delete_patterns=["parquet/*.parquet"],
            commit_message="curate export",
        )
    except Exception as exc:
        raise ExportError(
            f"--to-hub: upload to '{repo_id}' failed ({type(exc).__name__}: {exc}); "
            f"the local export in {folder} is complete"
        ) from exc
    return f"https://huggingface.co/datasets/{repo_id}"
