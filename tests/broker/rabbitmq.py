"""The tests' RabbitMQ: a virtual host of the run's own (TEST_BROKER_KIND=amqp, config/settings/test.py), created
when first needed, so that two runs' queues of the same names never meet. Nothing else on the server is
changed: no other virtual host is touched, none is deleted."""

import shutil
import subprocess
import time
from urllib.parse import unquote, urlsplit

from kombu import Connection


def vhost_of(url: str) -> str:
    path = urlsplit(url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def reachable(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


def ensure_vhost(url: str, *, wait: float = 60.0) -> None:
    """Create the URL's virtual host and give its user every right on it, if it cannot be reached yet;
    waits up to `wait` seconds for a RabbitMQ that is (re)starting."""
    if shutil.which("rabbitmqctl") is None and not reachable(url):
        raise RuntimeError(f"{url}: cannot reach its virtual host, and rabbitmqctl is not here to create it")
    vhost, user = vhost_of(url), urlsplit(url).username or "guest"
    deadline = time.monotonic() + wait
    while not reachable(url):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}: the virtual host cannot be reached, even after creating it")
        created = subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], capture_output=True, check=False)
        if created.returncode == 0 or b"already exists" in created.stderr:
            subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"], check=False)
        time.sleep(1)


def set_policy(url: str, name: str, definition: str, *, pattern: str = ".*") -> None:
    """A policy on the URL's virtual host's queues (e.g. to make the broker refuse every publish)."""
    command = ["rabbitmqctl", "-q", "set_policy", "-p", vhost_of(url), "--apply-to", "queues", name, pattern]
    subprocess.run([*command, definition], check=True, capture_output=True)


def clear_policy(url: str, name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "clear_policy", "-p", vhost_of(url), name], check=True, capture_output=True)
