"""Process control for the dashboard: start, resume and stop ``star run`` processes, and the policy that
decides whether this dashboard may do so at all. No Streamlit here (``star_dashboard.ui`` draws the buttons).

The policy (:func:`policy`), safe by default:

* ``STAR_DASHBOARD_LAUNCH=0`` turns every process control off (the Launch form, Resume and Stop).
* ``STAR_DASHBOARD_TOKEN`` set (16 characters or more): process control needs that token, given once per
  browser session (``?token=...`` in the URL, or the box on the Launch page), wherever the dashboard listens.
* Every session: the page is served only at a loopback name or an address the operator named
  (:func:`request_refusal`, against DNS rebinding), and process control needs a same-origin WebSocket.
* No token: process control only while the dashboard listens on loopback only (``server.address`` is
  ``127.0.0.1``, ``::1`` or ``localhost``) and the browser connects from loopback. Anything else
  (Streamlit's default of every interface included) turns it off.
* At most ``STAR_DASHBOARD_MAX_RUNS`` launched runs alive at once (default: one per NVIDIA GPU, 1 on a CPU
  machine); a start or resume beyond it is refused.
* Stop signals only a process this dashboard started for that run, as its own record in memory says (pid,
  process start time, run folder); a file in a run folder never names a process to signal. A run started
  from a shell, or by an earlier dashboard process, is left alone. The limit counts the runs this dashboard
  started, under every runs root.
"""

from __future__ import annotations

import errno
import hmac
import ipaddress
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from . import queries

LOG_NAME = "launch.log"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # launch.log is opened without following a link out of the run folder
LAUNCH_INFO = "launch.json"  # written by dashboards before issue 20; never read (it named the pid to signal)
CLI_ENV = "STAR_CLI"  # override of the command that runs the engine (tests use a fake one)
LAUNCH_ENV = "STAR_DASHBOARD_LAUNCH"  # "0": no process control at all
TOKEN_ENV = "STAR_DASHBOARD_TOKEN"  # the secret that enables process control
MAX_RUNS_ENV = "STAR_DASHBOARD_MAX_RUNS"  # launched runs alive at once
TOKEN_PARAM = "token"  # ?token=... in the dashboard's URL
MIN_TOKEN_LEN = 16
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

#: The dashboard's own record of the processes it started, by resolved run folder (sessions are threads of one
#: process, so they share it). It is the only thing Stop and the launch limit trust.
_LAUNCHED: dict[Path, Launched] = {}
_START_LOCK = threading.Lock()  # Streamlit sessions are threads of one process: one start at a time


# --------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    allowed: bool  # may this session start, resume and stop runs?
    reason: str  # why not (empty when allowed), in words, with how to turn it on
    token_required: bool  # a token is configured and this session has not given it
    max_runs: int


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a bind address or a client address) is loopback only. Empty means every interface."""
    h = (host or "").strip().strip("[]")
    if not h:
        return False
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def host_name(host_header: str | None) -> str | None:
    """The name in a ``Host`` header (``localhost:8501`` -> ``localhost``, ``[::1]:8501`` -> ``::1``), lower
    case; None when the header is not a plain host[:port]."""
    try:
        u = urlsplit(f"//{(host_header or '').strip()}")
        _ = u.port  # a bad port raises ValueError
    except ValueError:
        return None
    if not u.hostname or u.username is not None or u.password is not None or u.path or u.query or u.fragment:
        return None
    return u.hostname.lower().rstrip(".")


def name_served(name: str, extra: Sequence[str] = ()) -> bool:
    """Whether ``name`` (from :func:`host_name`) is an address this dashboard serves: a loopback name or IP,
    or one the operator named (``server.address``, ``browser.serverAddress``, ``server.allowedHosts``; an
    entry ``*.example.org`` covers its subdomains; ``*`` names nothing)."""
    if is_loopback(name):
        return True
    for e in extra:
        pat = str(e).strip().strip("[]").lower().rstrip(".")
        if pat and pat != "*" and (name == pat or (pat.startswith("*.") and name.endswith(pat[1:]))):
            return True
    return False


def same_origin(host_header: str | None, origin: str | None) -> bool:
    """Whether a WebSocket's ``Origin`` is the page it serves: http(s), and the same host and port as ``Host``."""
    try:
        u = urlsplit((origin or "").strip())
    except ValueError:
        return False
    return u.scheme in ("http", "https") and bool(u.netloc) and u.netloc.lower() == (host_header or "").strip().lower()


def request_refusal(host: str | None, origin: str | None, extra: Sequence[str] = ()) -> str | None:
    """Why a browser session whose WebSocket came with these ``Host`` and ``Origin`` headers is refused, or
    None. A page on another name that resolves to this machine (DNS rebinding) sends that name as ``Host``; a
    page of another origin sends its own ``Origin``. ``host`` None: no browser behind the session (a test)."""
    if host is None:
        return None
    name = host_name(host)
    if name is None or not name_served(name, extra):
        return (
            f"This dashboard does not serve the address {host[:80]!r}: open it at http://127.0.0.1 or "
            "http://localhost (with its port), or name this address with `--server.allowedHosts` when you "
            "start it (see the README's safety section)."
        )
    if origin is not None and not same_origin(host, origin):
        return f"This page comes from another origin ({origin[:80]!r}) than the dashboard ({host[:80]!r})."
    return None


def gpu_count() -> int:
    """NVIDIA GPUs the driver lists (without importing torch); 0 on a CPU machine."""
    try:
        return sum(1 for _ in Path("/proc/driver/nvidia/gpus").iterdir())
    except OSError:
        return 0


def max_runs() -> int:
    """``$STAR_DASHBOARD_MAX_RUNS`` (1-64), else one per GPU, else 1."""
    raw = os.environ.get(MAX_RUNS_ENV, "").strip()
    if raw.isdigit() and 1 <= int(raw) <= 64:
        return int(raw)
    return max(1, gpu_count())


def policy(
    bind_address: str | None,
    client_ip: str | None = None,
    token_given: str | None = None,
    same_origin_ws: bool = True,
) -> Policy:
    """May a dashboard listening on ``bind_address``, viewed from ``client_ip`` (None: loopback), by a
    session that gave ``token_given``, over a WebSocket whose Origin is the dashboard's own page
    (``same_origin_ws``), start, resume and stop runs?"""
    n = max_runs()
    if not same_origin_ws:
        return Policy(
            False,
            "This browser session's connection did not come from the dashboard's own page (its Origin header "
            "is missing or foreign), so starting, resuming and stopping runs is off for it. Open the dashboard "
            "at its own address.",
            False,
            n,
        )
    if os.environ.get(LAUNCH_ENV, "1").strip() == "0":
        return Policy(
            False,
            f"Process control is turned off for this dashboard ({LAUNCH_ENV}=0): it neither "
            "starts, resumes nor stops runs.",
            False,
            n,
        )
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token and len(token) < MIN_TOKEN_LEN:
        return Policy(
            False,
            f"{TOKEN_ENV} is shorter than {MIN_TOKEN_LEN} characters, so process control is "
            "off. Set a longer secret (for example `python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'`) and restart the dashboard.",
            False,
            n,
        )
    if token:
        if token_given and hmac.compare_digest(token_given.strip().encode(), token.encode()):
            return Policy(True, "", False, n)
        return Policy(
            False,
            f"Starting, resuming and stopping runs needs this dashboard's token ({TOKEN_ENV}): "
            f"open the dashboard with `?{TOKEN_PARAM}=...` appended to its URL, or enter it on the "
            "Launch page.",
            True,
            n,
        )
    where = []
    if not is_loopback(bind_address):
        where.append(f"it listens on {bind_address or 'every interface'}")
    if client_ip and not is_loopback(client_ip):
        where.append(f"this browser connects from {client_ip}")
    if where:
        return Policy(
            False,
            "This dashboard is reachable beyond loopback (" + " and ".join(where) + "), so "
            "starting, resuming and stopping runs is off. Listen on loopback only "
            "(`--server.address 127.0.0.1`, the default in .streamlit/config.toml), or set "
            f"{TOKEN_ENV} to a secret and open the dashboard with `?{TOKEN_PARAM}=<secret>`.",
            False,
            n,
        )
    return Policy(True, "", False, n)


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------
def cli_prefix() -> list[str]:
    """How to call the engine: $STAR_CLI, else the `star` script, else `python -m star_core.cli`."""
    env = os.environ.get(CLI_ENV, "").strip()
    if env:
        return shlex.split(env)
    exe = shutil.which("star") or (
        str(Path(sys.executable).parent / "star") if (Path(sys.executable).parent / "star").is_file() else None
    )
    return [exe] if exe else [sys.executable, "-m", "star_core.cli"]


def run_command(
    out: str | os.PathLike,
    task: str,
    model: str,
    iterations: int,
    rationalize: bool,
    n_train: int,
    n_eval: int,
    max_new_tokens: int,
    temperature: float = 0.0,
    samples_per_question: int = 1,
    seed: int = 0,
) -> list[str]:
    return cli_prefix() + [
        "run",
        "--out",
        str(out),
        "--task",
        task,
        "--model",
        model,
        "--iterations",
        str(int(iterations)),
        "--set",
        f"rationalize={'true' if rationalize else 'false'}",
        "--set",
        f"n_train={int(n_train)}",
        "--set",
        f"n_eval={int(n_eval)}",
        "--set",
        f"max_new_tokens={int(max_new_tokens)}",
        "--set",
        f"temperature={float(temperature)}",
        "--set",
        f"samples_per_question={int(samples_per_question)}",
        "--set",
        f"seed={int(seed)}",
        "--quiet",
    ]


def resume_command(run_dir: str | os.PathLike) -> list[str]:
    return cli_prefix() + ["run", "--resume", str(run_dir), "--quiet"]


# --------------------------------------------------------------------------
# processes
# --------------------------------------------------------------------------
class LaunchRefused(Exception):
    """A start or resume beyond the limit of launched runs alive at once."""


@dataclass(frozen=True)
class Launched:
    """A process this dashboard started: its pid, its start time (to tell it from a later process given the same
    pid), the run folder (resolved) and the handle that reaps it."""

    pid: int
    started: int | None  # clock ticks after boot (/proc/<pid>/stat, field 22); None without /proc
    run_dir: Path
    proc: subprocess.Popen


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (``/proc/<pid>/stat``); None when unknown."""
    try:
        line = Path(f"/proc/{pid}/stat").read_text()
        return int(line.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _key(run_dir: str | os.PathLike) -> Path:
    try:
        return Path(run_dir).resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(run_dir))


def reap() -> None:
    """Collect finished child processes (no zombies left behind) and forget them."""
    for key, rec in list(_LAUNCHED.items()):
        if rec.proc.poll() is not None:
            _LAUNCHED.pop(key, None)


def _alive(rec: Launched) -> bool:
    """Our child, not yet reaped (so its pid is not reused), and still the process we started."""
    return rec.proc.poll() is None and (rec.started is None or process_start_time(rec.pid) == rec.started)


def launched_alive(run_dir: str | os.PathLike) -> int | None:
    """The pid of the live process this dashboard started for ``run_dir``, from its own record only (a file
    in the run folder never names a process)."""
    reap()
    rec = _LAUNCHED.get(_key(run_dir))
    return rec.pid if rec is not None and _alive(rec) else None


def launched_runs() -> list[Path]:
    """The run folders, under any runs root, of the live processes this dashboard started."""
    reap()
    return [rec.run_dir for rec in list(_LAUNCHED.values()) if _alive(rec)]


def _open_log(run_dir: Path, flags: int):
    """RUN_DIR/launch.log, opened without following a link out of the folder and without blocking on a FIFO;
    OSError unless it is a regular file."""
    fd = os.open(run_dir / LOG_NAME, flags | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0), 0o644)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{LOG_NAME} is not a regular file")
    return os.fdopen(fd, "rb" if flags == os.O_RDONLY else "ab")


def spawn(cmd: list[str], run_dir: Path) -> int:
    """Start ``cmd`` detached (own session), output appended to RUN_DIR/launch.log, and record it; returns the
    pid."""
    reap()
    run_dir.mkdir(parents=True, exist_ok=True)
    log = _open_log(run_dir, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    log.write(f"\n$ {shlex.join(cmd)}\n".encode())
    log.flush()
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.pop(TOKEN_ENV, None)  # the run has no use for the dashboard's secret
    try:
        p = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=os.getcwd(),
            env=env,
        )
    finally:
        log.close()
    _LAUNCHED[_key(run_dir)] = Launched(p.pid, process_start_time(p.pid), _key(run_dir), p)
    return p.pid


def start(cmd: list[str], run_dir: Path, limit: int) -> int:
    """:func:`spawn`, unless ``limit`` runs this dashboard started (under any root) are alive (LaunchRefused)."""
    with _START_LOCK:
        alive = launched_runs()
        if len(alive) >= limit:
            raise LaunchRefused(
                f"{len(alive)} launched run{'s are' if len(alive) > 1 else ' is'} still going "
                f"({', '.join(p.name for p in alive)}); this dashboard runs at most {limit} at once "
                f"({MAX_RUNS_ENV}). Wait for it to finish, or stop it first."
            )
        return spawn(cmd, run_dir)


def start_run(cmd: list[str], run_dir: Path, pol: Policy) -> tuple[int | None, str]:
    """Start (or resume) a run when ``pol`` allows it, within its limit of launched runs alive at once (under
    any root): (pid, message), or (None, why not)."""
    if not pol.allowed:
        return None, pol.reason
    try:
        pid = start(cmd, run_dir, pol.max_runs)
    except LaunchRefused as e:
        return None, str(e)
    except OSError as e:  # launch.log a link (refused), a full disk, a missing program
        return None, f"Could not start it: {LOG_NAME} or the command failed ({e.strerror or e})."
    return pid, f"Started pid {pid}: {shlex.join(cmd)}"


def stop_run(run_dir: Path) -> str:
    """SIGTERM the process this dashboard started for ``run_dir`` (the engine then stores status
    'stopped'); never a process started elsewhere. Returns a message."""
    pid = launched_alive(run_dir)
    rec = _LAUNCHED.get(_key(run_dir))
    if pid is None or rec is None:
        return "No live process started by this dashboard for this run; nothing was stopped."
    try:
        rec.proc.send_signal(signal.SIGTERM)  # Popen: never a pid it has already reaped
    except OSError as e:
        return f"Could not signal pid {pid}: {e}."
    return f"Sent SIGTERM to pid {pid}; the run stops after the current batch."


def foreign_pid(run_dir: Path) -> int | None:
    """The pid of a running run's process that no dashboard started (a shell's ``star run``)."""
    try:
        info = queries.run_info(run_dir)
    except queries.RunUnavailable:
        return None
    pid = info.get("pid")
    if info["status"] != "running" or not pid or launched_alive(run_dir) == pid:
        return None
    return int(pid)


def log_tail(run_dir: Path, lines: int = 40, max_bytes: int = 64_000) -> str | None:
    try:
        with _open_log(run_dir, os.O_RDONLY) as f:  # a link or a FIFO: not shown
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    data = data.replace("\r", "\n")
    return "\n".join(data.splitlines()[-lines:])
