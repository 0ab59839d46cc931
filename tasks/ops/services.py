"""Local Prefect services for one machine: a server (SQLite, 127.0.0.1) and a process worker, started on demand.

State lives in one folder (``$HUMAN3R_HOME``, default ``.human3r`` in the current directory): the Prefect home
(database, profiles, results), logs and pid files. `env()` gives the variables every Prefect command needs so
that it talks to this server and not to a temporary one; `human3r services env` prints them for a shell.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tasks.errors import ServiceError

WORK_POOL = "local-process"
DEFAULT_PORT = 4200


def repo_root() -> Path:
    """The folder holding prefect.yaml (the project checkout): tasks/ops/services.py -> the checkout."""
    return Path(__file__).resolve().parents[2]


# The services this process started, by pid. A service outlives the call that starts it (and usually this process),
# so its Popen is kept here rather than dropped while the child runs: `stop` reaps it, and no exited child lingers as
# a zombie while this process lives (`_alive` polls it).
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclasses.dataclass(frozen=True)
class Services:
    home: Path  # state folder
    port: int = DEFAULT_PORT
    host: str = "127.0.0.1"

    @classmethod
    def from_env(cls, home: str | os.PathLike | None = None, port: int | None = None) -> Services:
        home = Path(home or os.environ.get("HUMAN3R_HOME") or ".human3r").resolve()
        port = port or int(os.environ.get("HUMAN3R_PREFECT_PORT", DEFAULT_PORT))
        return cls(home, port)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    def env(self) -> dict[str, str]:
        return {
            "PREFECT_HOME": str(self.home / "prefect"),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_API_HOST": self.host,
            "PREFECT_UI_API_URL": self.api_url,
        }

    def full_env(self) -> dict[str, str]:
        env = dict(os.environ)  # the user's other PREFECT_* settings pass through; these five are ours
        env.update(self.env())
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        return env

    # ------------------------------------------------------------------------------------------------ helpers
    def _pidfile(self, name: str) -> Path:
        return self.home / f"{name}.pid"

    def _alive(self, name: str) -> int | None:
        try:
            pid = int(self._pidfile(name).read_text())
            if pid in _CHILDREN and _CHILDREN[pid].poll() is not None:  # ours, and exited: reaped now
                del _CHILDREN[pid]
                return None
            os.kill(pid, 0)
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None
        try:  # a zombie (exited, not yet reaped by its parent) is not alive
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return None
        except (FileNotFoundError, IndexError):
            pass
        return pid

    def _prefect(self, *args: str, check: bool = True, timeout: float = 300, cwd: Path | None = None):
        exe = shutil.which("prefect", path=self.full_env()["PATH"]) or "prefect"
        proc = subprocess.run([exe, *args], env=self.full_env(), capture_output=True, text=True, timeout=timeout,
                              cwd=cwd)
        if check and proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-5:]
            raise ServiceError(f"`prefect {' '.join(args)}` failed: {' | '.join(tail)}")
        return proc

    def _spawn(self, name: str, args: list[str]) -> int:
        """Start `prefect ARGS` in its own session, output appended to NAME.log; records and returns its pid."""
        self.home.mkdir(parents=True, exist_ok=True)
        exe = shutil.which("prefect", path=self.full_env()["PATH"]) or "prefect"
        with open(self.home / f"{name}.log", "ab") as log:  # the child holds its own copy of the descriptor
            proc = subprocess.Popen([exe, *args], env=self.full_env(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, cwd=repo_root())
        _CHILDREN[proc.pid] = proc
        self._pidfile(name).write_text(str(proc.pid))
        return proc.pid

    # ------------------------------------------------------------------------------------------------ server
    def server_healthy(self) -> bool:
        import httpx

        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_server(self, timeout_s: float = 120) -> bool:
        """Start the server unless one answers on the port. Returns True if it was started here."""
        if self.server_healthy():
            return False
        pid = self._spawn("server", ["server", "start", "--host", self.host, "--port", str(self.port)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.server_healthy():
                return True
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.5)
        log_tail = (self.home / "server.log").read_text(errors="replace").strip().splitlines()[-5:]
        raise ServiceError(f"the Prefect server did not come up on {self.api_url}: "
                           f"{' | '.join(log_tail)} (log: {self.home / 'server.log'})")

    # ------------------------------------------------------------------------------------------------ worker
    def start_worker(self) -> bool:
        """Create the process work pool if needed and start a worker for it. Returns True if started here."""
        if self._alive("worker"):
            return False
        proc = self._prefect("work-pool", "create", WORK_POOL, "--type", "process", check=False)
        if proc.returncode != 0 and "already exists" not in (proc.stdout + proc.stderr):
            raise ServiceError(f"could not create work pool {WORK_POOL}: {proc.stderr.strip()[-300:]}")
        self._spawn("worker", ["worker", "start", "--pool", WORK_POOL, "--type", "process"])
        return True

    def deploy(self) -> None:
        """Register every deployment of prefect.yaml (working directory: the checkout)."""
        self._prefect("--no-prompt", "deploy", "--all", cwd=repo_root())

    def run_deployment(self, name: str, params: dict | None = None, timeout_s: float = 3600) -> int:
        """`prefect deployment run NAME --watch`, streaming its output; returns its exit code."""
        exe = shutil.which("prefect", path=self.full_env()["PATH"]) or "prefect"
        cmd = [exe, "deployment", "run", name, "--watch", "--watch-timeout", str(int(timeout_s))]
        if params:
            cmd += ["--params", json.dumps(params)]
        return subprocess.run(cmd, env=self.full_env(), cwd=repo_root()).returncode

    # ------------------------------------------------------------------------------------------------ lifecycle
    def status(self) -> dict:
        return {"server": self.api_url if self.server_healthy() else None, "server_pid": self._alive("server"),
                "worker_pid": self._alive("worker"), "home": str(self.home)}

    def stop(self) -> list[str]:
        """Stop the worker (SIGINT: it ignores SIGTERM) and the server this folder started."""
        stopped = []
        for name, sig in (("worker", signal.SIGINT), ("server", signal.SIGTERM)):
            pid = self._alive(name)
            if pid is None:
                continue
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
            for _ in range(40):
                if self._alive(name) is None:
                    break
                time.sleep(0.25)
            else:
                os.killpg(pid, signal.SIGKILL)
            if pid in _CHILDREN:
                _CHILDREN.pop(pid).wait(timeout=10)
            self._pidfile(name).unlink(missing_ok=True)
            stopped.append(name)
        return stopped
