"""A data platform on this machine, as slow as a real one over HTTP: the remote phases' DATA_PLATFORM_URL.

It takes what apps/dataplatform sends (a JSON object POSTed to /events with `Idempotency-Key` and
`Event-Type` headers), answers each POST after its delay (100 ms by default), many at once (a thread per
request), and counts what it received; `GET /received` returns the counts. Standard library only, so that
it starts in a blink: `python -m bench.dataplatform --delay-ms 100` prints its URL on its first line.

The benchmark runs it as a child process of its own (running_data_platform), so that the CPU it spends
is charged to a part of its own, not to the load generator.
"""

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EVENTS_PATH = "/events"
RECEIVED_PATH = "/received"
HOST = "127.0.0.1"
DEFAULT_DELAY_MS = 100
STARTUP_TIMEOUT = 10


@dataclass
class Received:
    """What the platform was sent, by POST: accepted (first time a key is seen), duplicates (a key seen
    before: a retry the platform deduplicates), refused (4xx: no key, no event type, no JSON object)."""

    posts: int = 0
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    by_event_type: Counter = field(default_factory=Counter)  # accepted ones
    in_flight: int = 0
    max_in_flight: int = 0

    def as_dict(self) -> dict:
        return {**asdict(self), "by_event_type": dict(self.by_event_type)}


class DataPlatformServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog (5) would refuse a burst of deliveries

    def __init__(self, address: tuple[str, int], *, delay_s: float) -> None:
        super().__init__(address, DataPlatformHandler)
        self.delay_s = delay_s
        self.received = Received()
        self.keys: set[str] = set()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}{EVENTS_PATH}"

    def take(self, key: str, event_type: str) -> bool:
        """Count an accepted POST; False if its key was seen before."""
        with self.lock:
            if key in self.keys:
                self.received.duplicates += 1
                return False
            self.keys.add(key)
            self.received.accepted += 1
            self.received.by_event_type[event_type] += 1
            return True

    @contextlib.contextmanager
    def in_flight(self) -> Iterator[None]:
        with self.lock:
            self.received.posts += 1
            self.received.in_flight += 1
            self.received.max_in_flight = max(self.received.max_in_flight, self.received.in_flight)
        try:
            yield
        finally:
            with self.lock:
                self.received.in_flight -= 1

    def snapshot(self) -> dict:
        with self.lock:
            return self.received.as_dict()


class DataPlatformHandler(BaseHTTPRequestHandler):
    server: DataPlatformServer

    def do_POST(self) -> None:
        with self.server.in_flight():
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(self.server.delay_s)
            if self.path != EVENTS_PATH:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
                return
            key, event_type = self.headers.get("Idempotency-Key"), self.headers.get("Event-Type")
            if not key or not event_type or not isinstance(_json_or_none(body), dict):
                with self.server.lock:
                    self.server.received.refused += 1
                self._answer(HTTPStatus.BAD_REQUEST, {"error": "an event needs a JSON object, a key and a type"})
                return
            first = self.server.take(key, event_type)
            self._answer(HTTPStatus.ACCEPTED if first else HTTPStatus.OK, {"accepted": True, "duplicate": not first})

    def do_GET(self) -> None:
        if self.path != RECEIVED_PATH:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path}"})
            return
        self._answer(HTTPStatus.OK, self.server.snapshot())

    def _answer(self, status: HTTPStatus, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # a line per request would only slow it down


def _json_or_none(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return None


@dataclass(frozen=True)
class RunningDataPlatform:
    """The platform running as a child process: its URL (DATA_PLATFORM_URL) and process (group) id."""

    url: str
    pid: int

    def received(self) -> dict:
        base = self.url.removesuffix(EVENTS_PATH)
        with urllib.request.urlopen(base + RECEIVED_PATH, timeout=5) as answer:
            return json.loads(answer.read())


@contextlib.contextmanager
def running_data_platform(*, delay_ms: int, log: Path) -> Iterator[RunningDataPlatform]:
    """Start the platform in a session of its own on any free port; stopped when the block ends."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.dataplatform", "--delay-ms", str(delay_ms)]
    with log.open("ab") as errors:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        url = _first_line(process).strip()
        if not url.startswith("http://"):
            raise RuntimeError(f"the data platform did not start (exit {process.poll()}); see {log}")
        yield RunningDataPlatform(url=url, pid=process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def _first_line(process: subprocess.Popen) -> str:
    """The child's first line of output, or "" if it prints none within STARTUP_TIMEOUT."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline().decode()), daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT)
    return line[0] if line else ""


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dataplatform", description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=int, default=DEFAULT_DELAY_MS, help="before each POST's answer")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    options = parser.parse_args(argv)
    server = DataPlatformServer((HOST, options.port), delay_s=options.delay_ms / 1000)
    print(server.url, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
