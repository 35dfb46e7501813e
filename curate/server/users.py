"""Create Argilla users (annotators, admins) and their workspaces through the server's REST API."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import httpx

from curate.server.launcher import ServerError

ROLES = ("annotator", "admin", "owner")


@dataclass
class NewUser:
    username: str
    role: str
    password: str
    api_key: str
    workspaces: list[str]


def _check(resp: httpx.Response, what: str) -> dict:
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = resp.text
        raise ServerError(f"{what}: HTTP {resp.status_code}: {detail}")
    return resp.json()


def ensure_workspace(client: httpx.Client, name: str) -> dict:
    """The workspace called `name`, created if missing (owners see every workspace in /me/workspaces)."""
    for ws in _check(client.get("/api/v1/me/workspaces"), "listing workspaces")["items"]:
        if ws["name"] == name:
            return ws
    return _check(client.post("/api/v1/workspaces", json={"name": name}), f"creating workspace {name!r}")


def add_user(
    url: str,
    api_key: str,
    username: str,
    role: str = "annotator",
    workspaces: Iterable[str] = (),
    password: str | None = None,
) -> NewUser:
    """Create a user with a random password (unless given) and add it to the workspaces (created if
    needed)."""
    if role not in ROLES:
        raise ServerError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    password = password or secrets.token_urlsafe(12)
    workspaces = list(workspaces)
    with httpx.Client(base_url=url, headers={"X-Argilla-Api-Key": api_key}, timeout=30) as client:
        user = _check(
            client.post(
                "/api/v1/users",
                json={"first_name": username, "username": username, "role": role, "password": password},
            ),
            f"creating user {username!r}",
        )
        for name in workspaces:
            ws = ensure_workspace(client, name)
            _check(
                client.post(f"/api/v1/workspaces/{ws['id']}/users", json={"user_id": user["id"]}),
                f"adding {username!r} to workspace {name!r}",
            )
    return NewUser(username, role, password, user["api_key"], workspaces)
