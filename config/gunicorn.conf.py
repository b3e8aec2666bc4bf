"""gunicorn for the API: `gunicorn config.wsgi -c config/gunicorn.conf.py` (Procfile, chaos/processes.py).

Values come from the environment; options given on the command line win over this file. Each gthread
thread holds at most one PostgreSQL connection, so the API holds at most workers × threads of them; the
master checks that against the server before it starts any worker (common/connection_budget.py).
"""

import os

from common.connection_budget import api_claim, api_pool_from_environment, check_at_start
from common.metrics.processes import mark_process_dead
from config import gunicorn_errors

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

_workers, _threads = api_pool_from_environment()

bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
worker_class = "gthread"
workers = _workers
threads = _threads
# Connections a worker keeps open at once (busy or kept alive); the waiting ones cost no thread.
worker_connections = int(os.environ.get("GUNICORN_WORKER_CONNECTIONS", "1000"))
# Connections the kernel queues before a worker accepts them: a burst of new clients waits, not refused.
backlog = int(os.environ.get("GUNICORN_BACKLOG", "2048"))
# Above a client's pause between requests, below a load balancer's idle timeout if one is in front.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# A worker whose main loop is silent this long is killed (a request itself is not bounded by it in gthread).
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# In-flight requests get this long after SIGTERM (honcho, under `make run`, kills after 5 s anyway).
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "10"))
# No max_requests: nothing leaks that a restart would contain, and each restart costs a boot and reconnects.
errorlog = "-"
# gunicorn's own lines in the fleet's shape, on stdout with the application's (config/gunicorn_logging.py).
logger_class = "config.gunicorn_logging.Logger"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None  # "-" for stdout; off by default (one line a request)
# The `gunicornc` control socket would be one path ($HOME/.gunicorn/gunicorn.ctl) shared by every gunicorn
# on the machine (tests, the chaos run, `make run`); nothing here uses it.
control_socket_disable = True

gunicorn_errors.install()


def on_starting(server) -> None:
    """Refuse to start when the API's connections would not fit the server (an `Error:` line, exit 1)."""
    claim = api_claim(workers=server.cfg.workers, threads=server.cfg.threads)
    check_at_start([claim], what="The API (gunicorn)", log=server.log)


def child_exit(server, worker) -> None:
    """A worker has exited (restarted, killed): its live gauges leave /metrics, its counts stay in the sum
    (common.metrics.processes)."""
    mark_process_dead(worker.pid)
