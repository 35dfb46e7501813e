"""An `rg.Argilla` client for the configured server (remote, or the embedded one started on demand)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import argilla as rg
import httpx

from curate.config import Config

CHECK_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
WRITER_ROLES = ("owner", "admin")


class ReviewError(RuntimeError):
    """A review step cannot go on (server refused, settings clash, dataset missing); the message says why."""


def cut(text: str, limit: int = 500) -> str:
    """A server's message shortened for an error or a quarantine reason (it may echo a whole payload)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 60]} ... [{len(text) - limit + 60} characters cut]"


def check_server(api_url: str, api_key: str, remote: bool = True) -> dict[str, Any]:
    """The user that `api_key` belongs to on `api_url`, asked before any work is done; a `ReviewError`
    naming the URL and what to do when the server cannot be reached, is not Argilla or refuses the key."""
    fix = (
        "check ARGILLA_API_URL (or argilla.api_url), or unset it to use the embedded server"
        if remote
        else "see `curate server status`"
    )
    try:
        response = httpx.get(
            f"{api_url}/api/v1/me", headers={"X-Argilla-Api-Key": api_key}, timeout=CHECK_TIMEOUT
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise ReviewError(f"{api_url!r} is not a usable Argilla URL ({exc}): {fix}") from None
    except httpx.TimeoutException:
        raise ReviewError(f"no answer from Argilla at {api_url} (timed out): {fix}") from None
    except httpx.HTTPError as exc:
        raise ReviewError(f"cannot reach Argilla at {api_url} ({exc}): {fix}") from None
    if response.status_code in (401, 403):
        raise ReviewError(
            f"Argilla at {api_url} refused the API key (HTTP {response.status_code}): set ARGILLA_API_KEY "
            "(or argilla.api_key) to an API key of that server (its web UI shows yours under My settings)"
        )
    try:
        user = response.json() if response.status_code == 200 else None
    except ValueError:
        user = None
    if not isinstance(user, dict) or "username" not in user:
        raise ReviewError(
            f"{api_url} does not answer as an Argilla 2.x server (HTTP {response.status_code} from "
            f"/api/v1/me): {fix}"
        )
    return user


def connect(cfg: Config, timeout: int = 300, roles: tuple[str, ...] | None = None) -> rg.Argilla:
    """The Argilla client: `ARGILLA_API_URL` / `argilla.api_url` when set, else the embedded server.

    The server and the key are checked first (`check_server`); with `roles`, the key's user must have
    one of them (pushing creates datasets, which annotators cannot)."""
    from curate.server import ensure_server

    api_url, api_key = ensure_server(cfg)
    user = check_server(api_url, api_key, remote=cfg.argilla.api_url is not None)
    if roles and user.get("role") not in roles:
        raise ReviewError(
            f"the API key for {api_url} belongs to '{user['username']}', whose role is {user.get('role')}: "
            f"this needs the key of an {' or '.join(roles)} (set ARGILLA_API_KEY)"
        )
    return rg.Argilla(api_url=api_url, api_key=api_key, timeout=timeout)


def get_workspace(client: rg.Argilla, name: str, create: bool = False) -> rg.Workspace:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the SDK warns on 'not found', which is an answer here
        workspace = client.workspaces(name)
    if workspace is None:
        if not create:
            raise ReviewError(f"workspace '{name}' not found on {client.api_url}")
        workspace = rg.Workspace(name=name, client=client).create()
    return workspace


def get_dataset(client: rg.Argilla, name: str, workspace: str) -> rg.Dataset | None:
    """The dataset, or None; the SDK's 'not found' warning is noise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ws = client.workspaces(workspace)
        return None if ws is None else client.datasets(name=name, workspace=ws)


def require_dataset(client: rg.Argilla, name: str, workspace: str) -> rg.Dataset:
    dataset = get_dataset(client, name, workspace)
    if dataset is None:
        raise ReviewError(
            f"dataset '{name}' not found in workspace '{workspace}' on {client.api_url} "
            "(push it first with `curate push`)"
        )
    return dataset


def _http(client: rg.Argilla):
    return client.api.http_client


def _checked(response: httpx.Response, what: str) -> httpx.Response:
    if response.status_code >= 400:
        raise ReviewError(
            f"{what}: HTTP {response.status_code} from {response.request.url}: {cut(response.text)}"
        )
    return response


def dataset_metadata(client: rg.Argilla, dataset: rg.Dataset) -> dict[str, Any]:
    """The dataset-level `metadata` dict of argilla-server (the SDK does not expose it)."""
    response = _checked(_http(client).get(f"/api/v1/datasets/{dataset.id}"), "reading the dataset")
    return response.json().get("metadata") or {}


def set_dataset_metadata(client: rg.Argilla, dataset: rg.Dataset, metadata: dict[str, Any]) -> None:
    """Replace the dataset's metadata with `metadata`, and check that the server kept it.

    argilla-server merges a PATCHed metadata dict into the stored one in place, so SQLAlchemy sees no
    change and a dataset's metadata, once set, is never saved again. Setting it to null first makes the
    second PATCH store a new object."""
    url = f"/api/v1/datasets/{dataset.id}"
    _checked(_http(client).patch(url, json={"metadata": None}), "clearing the dataset's metadata")
    _checked(_http(client).patch(url, json={"metadata": metadata}), "writing the dataset's metadata")
    if dataset_metadata(client, dataset) != metadata:
        raise ReviewError(
            f"{client.api_url} did not keep the metadata written to dataset '{dataset.name}' "
            "(provenance for the card): is it an argilla-server 2.x?"
        )


PAGE = 1000  # argilla-server's maximum page size for listing records


def iter_raw_records(
    client: rg.Argilla, dataset: rg.Dataset, include: tuple[str, ...] = ("responses", "suggestions")
) -> Iterator[dict[str, Any]]:
    """Every record as the server's JSON, page by page, in insertion order.

    The plain list endpoint (not search) reads the database directly, so it is exact whatever search
    engine the server runs; raw JSON instead of SDK objects because exports read every record.
    """
    offset = 0
    params: dict[str, Any] = {"limit": PAGE}
    if include:
        params["include"] = list(include)
    while True:
        response = _checked(
            _http(client).get(f"/api/v1/datasets/{dataset.id}/records", params={**params, "offset": offset}),
            "listing the dataset's records",
        )
        items = response.json()["items"]
        yield from items
        if len(items) < PAGE:
            return
        offset += len(items)


def existing_external_ids(client: rg.Argilla, dataset: rg.Dataset) -> set[str]:
    """The record ids (`external_id`) already in the dataset: what a resumed push skips."""
    return {
        str(r["external_id"]) for r in iter_raw_records(client, dataset, include=()) if r.get("external_id")
    }


def usernames(client: rg.Argilla) -> dict[str, str]:
    """user id -> username (owners and admins can list users; others see ids)."""
    try:
        return {str(u.id): u.username for u in client.users.list()}
    except Exception:  # noqa: BLE001 - an annotator key cannot list users: fall back to ids
        return {}
