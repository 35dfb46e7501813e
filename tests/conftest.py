"""Shared fixtures. Tests run the real models and the real argilla-server; nothing is mocked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CURATE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data sets beside the repo (../shared/data); CI has them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA} (set CURATE_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture
def tiny_config(tmp_path: Path):
    """The embedded defaults with short generations, so tests stay small."""
    from curate.config import load_config

    return load_config(
        overrides={
            "llm": {"max_new_tokens": 48, "n_ctx": 1024},
            "server": {"data_dir": str(tmp_path / "argilla")},
            "run": {"runs_dir": str(tmp_path / "runs")},
        },
        environ={},
    )


@pytest.fixture(scope="session")
def argilla_server(tmp_path_factory: pytest.TempPathFactory):
    """One embedded Argilla (argilla-server + Redis + worker + our search engine) for the session."""
    from curate.server.launcher import start, stop

    data_dir = tmp_path_factory.mktemp("argilla-data")
    info = start(data_dir=data_dir)
    try:
        yield info
    finally:
        stop(data_dir=data_dir)


@pytest.fixture(scope="session")
def pandalm_export(shared_data: Path, argilla_server, tmp_path_factory: pytest.TempPathFactory):
    """PandaLM's real human votes replayed in the embedded Argilla and exported, once for the session
    (the export and report tests read it; see tests/review_helpers.py)."""
    from review_helpers import replay_pandalm

    return replay_pandalm(shared_data, argilla_server, tmp_path_factory.mktemp("pandalm"))


@pytest.fixture
def local_ray(monkeypatch: pytest.MonkeyPatch):
    """A one-node Ray head on this machine, started for the test and shut down after it (RayPipeline
    joins an initialised Ray, or RAY_ADDRESS). Ray resolves 127.0.0.1 to the machine's own address."""
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
    )
    try:
        assert len(ray.nodes()) == 1
        yield ray
    finally:
        ray.shutdown()
