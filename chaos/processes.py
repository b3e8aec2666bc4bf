"""The run's processes: the API on gunicorn, the Procfile's Celery workers and beat.

Each child starts in its own session, so its process group holds it and everything it forks (the
gunicorn and prefork pool processes): a crash kills the whole group, and `stop_all` leaves nothing behind.
"""

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import requests

from chaos.environment import (
    API_APP_NAME,
    API_HOST,
    BIN,
    ROOT,
    WORKER_APP_NAME,
    RunEnvironment,
)
from common.procfile import ProcfileWorker, procfile_workers

WORKER_OPTIONS = ["--without-gossip", "--without-mingle", "-l", "info"]


@dataclass(frozen=True)
class Role:
    name: str
    command: list[str]
    application_name: str
    ready_line: str | None = None  # a line the process logs when it is ready
    pool_processes: bool = False  # a prefork worker: its tasks run in child processes


def worker_role(worker: ProcfileWorker) -> Role:
    """A worker of the Procfile, on its queue groups and pool; a prefork one pinned to two processes, so
    that the run's load is the same on any machine."""
    concurrency = 2 if worker.has_pool_processes else worker.concurrency
    command = [str(BIN / "celery"), "-A", "config", "worker", "--queue-groups", ",".join(worker.queue_groups)]
    command += ["-P", worker.pool, *(["-c", str(concurrency)] if concurrency else [])]
    return Role(
        name=worker.name,
        command=[*command, "-n", f"{worker.name}@%h", *WORKER_OPTIONS],
        application_name=WORKER_APP_NAME,
        ready_line=" ready.",
        pool_processes=worker.has_pool_processes,
    )


def roles(schedule_dir: Path, api_port: int) -> list[Role]:
    celery = [str(BIN / "celery"), "-A", "config"]
    return [
        Role(
            name="api",
            # The API's own gunicorn config (gthread, JSON refusals, the connection check); 2 × 4 pinned here.
            command=[
                str(BIN / "gunicorn"),
                "config.wsgi",
                "-c",
                str(ROOT / "config" / "gunicorn.conf.py"),
                "-b",
                f"{API_HOST}:{api_port}",
                "-w",
                "2",
                "--threads",
                "4",
            ],
            application_name=API_APP_NAME,
        ),
        *(worker_role(worker) for worker in procfile_workers()),
        Role(
            name="beat",
            command=[*celery, "beat", "-s", str(schedule_dir / "celerybeat-schedule"), "-l", "info"],
            application_name="chaos-beat",
        ),
    ]


def children_of(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes of a process group."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        state, _ppid, group = text[text.rindex(")") + 2 :].split()[:3]
        if int(group) == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


def group_alive(pgid: int) -> bool:
    return bool(group_members(pgid))


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2) -> None:
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise TimeoutError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Child:
    role: Role
    process: subprocess.Popen
    log: Path
    log_offset: int  # where this incarnation's lines start in the log

    @property
    def pid(self) -> int:
        return self.process.pid

    def logged_since_start(self) -> str:
        with self.log.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")


@dataclass
class Fleet:
    environment: RunEnvironment
    children: dict[str, Child] = field(default_factory=dict)
    retired: list[Child] = field(default_factory=list)  # incarnations crashed on purpose

    def __post_init__(self) -> None:
        self._schedule_dir = Path(tempfile.mkdtemp(prefix="chaos-beat-"))
        # Where the fleet's processes write what they count, summed by the API's /metrics (common.metrics): the
        # fleet's own, empty at its start; a restarted worker writes beside the counts of the one it replaces.
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="chaos-metrics-"))
        self.roles = {role.name: role for role in roles(self._schedule_dir, self.environment.api_port)}
        self.environment.log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> Child:
        role = self.roles[name]
        log = self.environment.log_dir / f"{name}.log"
        offset = log.stat().st_size if log.exists() else 0
        with log.open("ab") as sink:
            process = subprocess.Popen(
                role.command,
                cwd=ROOT,
                env={
                    **self.environment.for_process(role.application_name),
                    "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
                },
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(role=role, process=process, log=log, log_offset=offset)
        self.children[name] = child
        return child

    def process_groups(self) -> dict[int, str]:
        """The process group of each running child (its own pid: it leads a session), by role name."""
        return {child.pid: name for name, child in self.children.items()}

    def start_all(self) -> None:
        for name in self.roles:
            (self.environment.log_dir / f"{name}.log").unlink(missing_ok=True)
            self.start(name)

    def wait_ready(self, name: str, *, timeout: float = 60) -> None:
        child = self.children[name]

        def ready() -> bool:
            if child.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {child.process.returncode}; see {child.log}")
            if name == "api":
                return _api_answers(self.environment.api_url)
            if child.role.ready_line:
                logged = child.role.ready_line in child.logged_since_start()
                return logged and (not child.role.pool_processes or bool(children_of(child.pid)))
            return True

        wait_until(ready, timeout=timeout, what=f"{name} to be ready")

    def wait_all_ready(self) -> None:
        for name in self.children:
            self.wait_ready(name)

    def workers(self) -> list[str]:
        return [name for name, child in self.children.items() if child.role.application_name == WORKER_APP_NAME]

    def prefork_workers(self) -> list[str]:
        """The workers whose tasks run in pool processes, which can die apart from the worker."""
        return [name for name in self.workers() if self.children[name].role.pool_processes]

    def kill_pool_process(self, name: str) -> int:
        """SIGKILL one prefork pool process of a worker (its main process forks a new one)."""
        child = self.children[name]
        wait_until(lambda: bool(children_of(child.pid)), timeout=30, what=f"a pool process of {name}")
        victim = children_of(child.pid)[0]
        os.kill(victim, signal.SIGKILL)
        return victim

    def crash_and_restart(self, name: str) -> tuple[int, int]:
        """SIGKILL a worker's whole process group (main process and pool: a crash of its machine), then
        start it again as a supervisor would. Returns the old and the new main process id."""
        child = self.children[name]
        os.killpg(child.pid, signal.SIGKILL)
        child.process.wait()
        self.retired.append(child)
        wait_until(lambda: not group_alive(child.pid), timeout=10, what=f"{name}'s old processes to go")
        return child.pid, self.start(name).pid

    def unexpected_exits(self) -> list[str]:
        return [
            f"{name} (pid {child.pid}) exited with {child.process.returncode}"
            for name, child in self.children.items()
            if child.process.poll() is not None
        ]

    def stop_all(self, *, grace: float = 20) -> None:
        """SIGTERM every process group, then SIGKILL what is left after the grace. Never raises."""
        everyone = [*self.children.values(), *self.retired]
        for child in everyone:
            _signal_group(child.pid, signal.SIGTERM)
        give_up = time.monotonic() + grace
        for child in everyone:
            while group_alive(child.pid) and time.monotonic() < give_up:
                child.process.poll()
                time.sleep(0.1)
        for child in everyone:
            _signal_group(child.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)
        for directory in (self._schedule_dir, self.metrics_dir):
            for path in directory.glob("*"):
                path.unlink(missing_ok=True)
            directory.rmdir()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _api_answers(api_url: str) -> bool:
    try:
        return requests.get(f"{api_url}/api/v1/products", timeout=2).status_code in (200, 401)
    except requests.RequestException:
        return False
