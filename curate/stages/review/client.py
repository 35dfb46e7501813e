"""An `rg.Argilla` client for the configured server (remote, or the embedded one started on demand)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import argilla as rg

from curate.config import Config


class ReviewError(RuntimeError):
    """A review step cannot go on (server refused, settings clash, dataset missing); the message says why."""


def connect(cfg: Config, timeout: int = 300) -> rg.Argilla:
    """The Argilla client: `ARGILLA_API_URL` / `argilla.api_url` when set, else the embedded server."""
    from curate.server import ensure_server

    api_url, api_key = ensure_server(cfg)
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


def dataset_metadata(client: rg.Argilla, dataset: rg.Dataset) -> dict[str, Any]:
    """The dataset-level `metadata` dict of argilla-server (the SDK does not expose it)."""
    response = _http(client).get(f"/api/v1/datasets/{dataset.id}")
    response.raise_for_status()
    return response.json().get("metadata") or {}


def set_dataset_metadata(client: rg.Argilla, dataset: rg.Dataset, metadata: dict[str, Any]) -> None:
    response = _http(client).patch(f"/api/v1/datasets/{dataset.id}", json={"metadata": metadata})
    response.raise_for_status()


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
        response = _http(client).get(
            f"/api/v1/datasets/{dataset.id}/records", params={**params, "offset": offset}
        )
        response.raise_for_status()
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
