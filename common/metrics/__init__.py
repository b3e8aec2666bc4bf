"""Prometheus metrics for the whole fleet, served by the API at `GET /metrics` (docs/api.md, "Operations").

Two kinds of figures, gathered two ways:

- What happens in a process (a request served, a task run, an order's saga ending) is counted where it
  happens, with prometheus-client counters and histograms: `common.metrics.http` (the middleware),
  `common.metrics.tasks` (Celery's task signals), `apps.orders.metrics` (the outcomes). The fleet is many
  processes (gunicorn workers, prefork pool processes, a threads worker), and a scrape reaches one API
  process: with PROMETHEUS_MULTIPROC_DIR set, every process writes its figures to its own files in that
  directory and the answering process sums them all (`common.metrics.processes`), dead processes' counts
  included, so a counter never goes back while the fleet runs. The directory must be emptied before the
  fleet starts (`make run`, the chaos run and the benchmark each have their own). Without it (one process,
  `manage.py runserver`) each process answers with its own figures only.
- What the state is (orders in flight, the outbox's backlog) is read from PostgreSQL when /metrics is
  scraped, by the installed apps' `metrics.py` hooks (`common.metrics.scrape`, which documents how an app
  adds its own): the same answer whichever API process serves it, and nothing to keep in step.

Names follow Prometheus' conventions: snake_case, a unit suffix, `_total` on counters, labels with few
values, never an order or user id.
"""
