"""How many PostgreSQL connections each process of the system may hold, and whether they fit the server.

Each figure is an upper bound by construction (README, "Connections to PostgreSQL"):
- the API on gunicorn (gthread): Django's connection belongs to a thread and a thread serves one request
  at a time, so workers × threads; the master holds none (the start-up check closes its own).
- a Celery worker: one per pool process (prefork) or pool thread; the main process holds none (measured:
  it runs no task, and Celery's Django fixup closes what start-up opened); the `solo` pool runs tasks in
  the main process: one.
- beat: none (measured: the file scheduler only sends messages).
- management commands (migrate, seed_demo, this check, a shell): DATABASE_COMMAND_CONNECTIONS.

The server offers max_connections − superuser_reserved_connections − reserved_connections (PostgreSQL 16+),
and DATABASE_RESERVED_CONNECTIONS of that is kept for everything else on the machine.

No Django import at module level: the gunicorn master imports this module before Django is set up.
"""

import logging
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.procfile import option_value, procfile_entries

logger = logging.getLogger(__name__)

# What config/gunicorn.conf.py runs when the environment does not say otherwise.
DEFAULT_WEB_CONCURRENCY = 2
DEFAULT_GUNICORN_THREADS = 4
# Measured (README): neither a worker's main process nor beat keeps a connection.
CELERY_MAIN_PROCESS_CONNECTIONS = 0
CELERY_BEAT_CONNECTIONS = 0


@dataclass(frozen=True)
class Claim:
    """The connections one process (with its children) may hold, and why."""

    name: str
    connections: int
    formula: str


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int
    superuser_reserved: int
    reserved: int = 0  # reserved_connections, PostgreSQL 16+

    @property
    def open_to_applications(self) -> int:
        return self.max_connections - self.superuser_reserved - self.reserved


@dataclass(frozen=True)
class Budget:
    claims: tuple[Claim, ...]
    limits: ServerLimits
    reserve: int  # DATABASE_RESERVED_CONNECTIONS: everything else on the machine

    @property
    def needed(self) -> int:
        return sum(claim.connections for claim in self.claims)

    @property
    def available(self) -> int:
        return self.limits.open_to_applications - self.reserve

    @property
    def fits(self) -> bool:
        return self.needed <= self.available

    def explain(self) -> str:
        width = max(len(claim.name) for claim in self.claims) if self.claims else 0
        lines = [f"  {claim.name:<{width}}  {claim.connections:>4}  {claim.formula}" for claim in self.claims]
        limits = self.limits
        available = f"max_connections {limits.max_connections}"
        available += f" − superuser_reserved_connections {limits.superuser_reserved}"
        if limits.reserved:
            available += f" − reserved_connections {limits.reserved}"
        available += f" − DATABASE_RESERVED_CONNECTIONS {self.reserve}"
        verdict = "fits" if self.fits else "DOES NOT FIT"
        comparison = "≤" if self.fits else ">"
        return "\n".join(
            [
                "PostgreSQL connections:",
                *lines,
                f"  needed {self.needed} = {' + '.join(str(claim.connections) for claim in self.claims) or '0'}",
                f"  available {self.available} = {available}",
                f"  {verdict}: {self.needed} {comparison} {self.available}",
            ]
        )


class ConnectionBudgetExceeded(RuntimeError):
    """A RuntimeError, so that gunicorn prints it as `Error: ...` and exits 1."""

    def __init__(self, budget: Budget, what: str) -> None:
        super().__init__(
            f"{what} would hold more PostgreSQL connections than the server allows: refusing to start.\n"
            f"{budget.explain()}\n"
            "Lower the workers, threads or concurrency, or raise max_connections (or lower "
            "DATABASE_RESERVED_CONNECTIONS if less runs beside this system)."
        )
        self.budget = budget


def api_claim(*, workers: int, threads: int, name: str = "web") -> Claim:
    return Claim(name, workers * threads, f"gunicorn: {workers} workers × {threads} threads")


def celery_worker_claim(*, name: str, concurrency: int, pool: str = "prefork") -> Claim:
    if pool == "solo":
        return Claim(name, 1, "celery worker, solo pool: tasks run in the main process")
    main = CELERY_MAIN_PROCESS_CONNECTIONS
    formula = f"celery worker: concurrency {concurrency} ({pool})"
    if main:
        formula += f" + {main} main process"
    return Claim(name, concurrency + main, formula)


def beat_claim(*, name: str = "beat") -> Claim:
    return Claim(name, CELERY_BEAT_CONNECTIONS, "celery beat: sends messages only")


def commands_claim(count: int) -> Claim:
    return Claim("commands", count, "management commands (DATABASE_COMMAND_CONNECTIONS)")


def _positive_int(value: str, *, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{what} must be a whole number, not {value!r}") from None
    if number < 1:
        raise ValueError(f"{what} must be at least 1, not {number}")
    return number


def api_pool_from_environment(environ: Mapping[str, str] = os.environ) -> tuple[int, int]:
    """(workers, threads) as config/gunicorn.conf.py reads them: WEB_CONCURRENCY, GUNICORN_THREADS."""
    workers = environ.get("WEB_CONCURRENCY") or str(DEFAULT_WEB_CONCURRENCY)
    threads = environ.get("GUNICORN_THREADS") or str(DEFAULT_GUNICORN_THREADS)
    return _positive_int(workers, what="WEB_CONCURRENCY"), _positive_int(threads, what="GUNICORN_THREADS")


def claim_of_command(
    name: str, command: str, *, environ: Mapping[str, str] = os.environ, default_concurrency: int
) -> Claim | None:
    """The claim of one process started by `command`; None for a program that is not a database client."""
    words = shlex.split(command)
    if not words:
        return None
    program = Path(words[0]).name
    if program == "gunicorn":
        workers, threads = api_pool_from_environment(environ)
        if (value := option_value(words, "-w", "--workers")) is not None:
            workers = _positive_int(value, what=f"{name}: --workers")
        if (value := option_value(words, "--threads")) is not None:
            threads = _positive_int(value, what=f"{name}: --threads")
        return api_claim(workers=workers, threads=threads, name=name)
    if "runserver" in words:
        raise ValueError(f"{name}: Django's development server opens a connection per request thread, unbounded")
    if program == "celery" and "beat" in words:
        return beat_claim(name=name)
    if program == "celery" and "worker" in words:
        concurrency = default_concurrency
        if (value := option_value(words, "-c", "--concurrency")) is not None:
            concurrency = _positive_int(value, what=f"{name}: --concurrency")
        if (value := option_value(words, "--autoscale")) is not None:
            concurrency = _positive_int(value.partition(",")[0], what=f"{name}: --autoscale maximum")
        pool = option_value(words, "-P", "--pool") or "prefork"
        return celery_worker_claim(name=name, concurrency=concurrency, pool=pool)
    return None


def procfile_claims(
    text: str, *, environ: Mapping[str, str] = os.environ, default_concurrency: int
) -> tuple[list[Claim], list[str]]:
    """The claims of a Procfile's processes, and the names of those that are not database clients."""
    claims, others = [], []
    for name, command in procfile_entries(text):
        claim = claim_of_command(name, command, environ=environ, default_concurrency=default_concurrency)
        if claim is None:
            others.append(name)
        else:
            claims.append(claim)
    return claims, others


def read_server_limits() -> ServerLimits:
    """The server's limits, read over a connection of its own that is closed at once (never Django's
    per-thread connection, which a forking server would hand down to its children)."""
    from django.db import connections

    database = connections["default"]
    raw = database.get_new_connection(database.get_connection_params())
    try:
        with raw.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('max_connections')::int, "
                "current_setting('superuser_reserved_connections')::int, "
                "coalesce(current_setting('reserved_connections', true), '0')::int"
            )
            max_connections, superuser_reserved, reserved = cursor.fetchone()
    finally:
        raw.close()
    return ServerLimits(max_connections=max_connections, superuser_reserved=superuser_reserved, reserved=reserved)


def budget_of(claims: Iterable[Claim], *, limits: ServerLimits, reserve: int | None = None) -> Budget:
    if reserve is None:
        from django.conf import settings

        reserve = settings.DATABASE_RESERVED_CONNECTIONS
    return Budget(claims=tuple(claims), limits=limits, reserve=reserve)


def check_at_start(
    claims: Sequence[Claim], *, what: str, log: Any = logger, limits: ServerLimits | None = None
) -> Budget | None:
    """The budget of a process about to start, logged on `log` (a logger, or gunicorn's);
    ConnectionBudgetExceeded if it does not fit.

    A server that cannot be reached is no reason to refuse: the process would wait for it like for any
    other outage, so this logs a warning and returns None."""
    if limits is None:
        try:
            limits = read_server_limits()
        except Exception as error:  # the database driver's errors, whatever the backend
            log.warning("%s: could not read PostgreSQL's limits to check the connection budget: %s", what, error)
            return None
    budget = budget_of(claims, limits=limits)
    if not budget.fits:
        raise ConnectionBudgetExceeded(budget, what)
    log.info(
        "%s holds at most %d PostgreSQL connections; %d are available to this system (%s)",
        what,
        budget.needed,
        budget.available,
        "; ".join(claim.formula for claim in budget.claims),
    )
    return budget


def celery_worker_claim_at_init(worker) -> Claim:
    """The claim of a Celery worker (`worker_init`'s sender): its concurrency is known, its pool may still
    be a name, autoscale is still an option and "auto" not yet resolved."""
    concurrency = worker.concurrency
    if not isinstance(concurrency, int):
        concurrency = os.cpu_count() or 1  # "auto": at most the CPUs
    autoscale = (getattr(worker, "options", None) or {}).get("autoscale")
    if isinstance(autoscale, str) and autoscale:
        concurrency = int(autoscale.partition(",")[0])
    elif isinstance(autoscale, Sequence) and autoscale:
        concurrency = int(autoscale[0])
    pool = worker.pool_cls
    pool_name = pool if isinstance(pool, str) else pool.__module__.rpartition(".")[2]
    pool_name = {"processes": "prefork", "thread": "threads"}.get(pool_name, pool_name)  # as -P names them
    return celery_worker_claim(name=worker.hostname, concurrency=concurrency, pool=pool_name)
