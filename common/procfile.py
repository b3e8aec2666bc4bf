"""Reading the Procfile, the one description of the fleet `make run` starts: the connection budget counts
its processes, and the chaos run and the benchmark start the same workers on the same queue groups."""

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_entries(text: str) -> list[tuple[str, str]]:
    """(name, command) of every process line, comments and blank lines left out."""
    entries = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        name, _, command = line.partition(":")
        entries.append((name.strip(), command.strip()))
    return entries


def option_value(words: Sequence[str], *names: str) -> str | None:
    """The value of the last of `names` given as `-x V`, `--name V`, `--name=V` or `-xV`."""
    value = None
    for index, word in enumerate(words):
        for name in names:
            if word == name and index + 1 < len(words):
                value = words[index + 1]
            elif name.startswith("--") and word.startswith(f"{name}="):
                value = word.partition("=")[2]
            elif not name.startswith("--") and word.startswith(name) and len(word) > len(name):
                value = word[len(name) :]  # -c2
    return value


@dataclass(frozen=True)
class ProcfileWorker:
    name: str
    queue_groups: tuple[str, ...]
    pool: str  # prefork, threads, ...
    concurrency: int | None  # None: Celery's default

    @property
    def has_pool_processes(self) -> bool:
        """Whether its tasks run in child processes (prefork), which can die apart from the worker."""
        return self.pool == "prefork"


def procfile_workers(text: str | None = None) -> list[ProcfileWorker]:
    """The Celery workers of the Procfile: name, queue groups (--queue-groups), pool and concurrency."""
    text = PROCFILE.read_text() if text is None else text
    workers = []
    for name, command in procfile_entries(text):
        words = shlex.split(command)
        if not (words and Path(words[0]).name == "celery" and "worker" in words):
            continue
        groups = option_value(words, "--queue-groups")
        if groups is None:
            raise ValueError(f"Procfile worker {name!r} names no --queue-groups")
        concurrency = option_value(words, "-c", "--concurrency")
        workers.append(
            ProcfileWorker(
                name=name,
                queue_groups=tuple(group.strip() for group in groups.split(",")),
                pool=option_value(words, "-P", "--pool") or "prefork",
                concurrency=int(concurrency) if concurrency is not None else None,
            )
        )
    return workers


def worker_queue_groups(text: str | None = None) -> dict[str, tuple[str, ...]]:
    """Each Celery worker of the Procfile by name, with the queue groups it consumes."""
    return {worker.name: worker.queue_groups for worker in procfile_workers(text)}
