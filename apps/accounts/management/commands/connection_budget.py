"""`manage.py connection_budget`: whether the whole fleet of a Procfile (the API, the Celery workers, beat)
plus room for management commands fits the PostgreSQL server's connections; exits 1 if it does not.
`make run` runs it before it starts anything. It lives here because `common` is not an app."""

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.connection_budget import (
    ServerLimits,
    budget_of,
    commands_claim,
    procfile_claims,
    read_server_limits,
)


class Command(BaseCommand):
    help = (
        "Print the PostgreSQL connections the processes of a Procfile may hold (gunicorn: workers × threads "
        "from WEB_CONCURRENCY and GUNICORN_THREADS; a Celery worker: its concurrency), plus room for "
        "management commands, against what the server allows; exit 1 if they do not fit."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--procfile", type=Path, default=settings.BASE_DIR / "Procfile", help="default: Procfile")
        parser.add_argument(
            "--max-connections", type=int, help="check against this max_connections instead of the server's"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        procfile: Path = options["procfile"]
        try:
            text = procfile.read_text()
        except OSError as error:
            raise CommandError(f"Cannot read {procfile}: {error}") from error
        default_concurrency = getattr(settings, "CELERY_WORKER_CONCURRENCY", None) or os.cpu_count() or 1
        try:
            claims, others = procfile_claims(text, default_concurrency=default_concurrency)
        except ValueError as error:
            raise CommandError(f"{procfile}: {error}") from error
        claims.append(commands_claim(settings.DATABASE_COMMAND_CONNECTIONS))

        limits = read_server_limits()
        if options["max_connections"] is not None:
            limits = ServerLimits(options["max_connections"], limits.superuser_reserved, limits.reserved)
        budget = budget_of(claims, limits=limits)

        self.stdout.write(f"{procfile.name}: {budget.explain()}")
        if others:
            self.stdout.write(f"  (not counted, no database client: {', '.join(others)})")
        if not budget.fits:
            raise CommandError(
                "The fleet would hold more PostgreSQL connections than the server allows. Lower "
                "WEB_CONCURRENCY, GUNICORN_THREADS or a worker's -c, or raise max_connections."
            )
