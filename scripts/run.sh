#!/usr/bin/env bash
# `make run` (after migrations): the connection budget check, a demo data set, then the API on gunicorn at
# http://127.0.0.1:8000, the Celery worker fleet and beat, all under honcho (see Procfile). Ctrl-C stops all
# of it. Runtime files go to .run/.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.venv/bin
API=http://127.0.0.1:8000
export PYTHONUNBUFFERED=1 # log lines reach honcho as they are written

mkdir -p .run
# The whole fleet's PostgreSQL connections (Procfile, WEB_CONCURRENCY, GUNICORN_THREADS) must fit the server.
"$BIN/python" manage.py connection_budget --procfile Procfile
echo "Creating demo data..."
"$BIN/python" manage.py seed_demo >.run/demo.json

# Once the API answers, print a demo user's token and curl lines. It gives up if honcho, which takes over
# this process id below, stops first; started from a subshell so that it is not left to honcho to reap.
("$BIN/python" scripts/print_demo.py .run/demo.json --api "$API" --while-alive $$ &)

# Every process of the fleet writes what it counts to its own files in one directory, which the API sums for
# GET /metrics (common/metrics): emptied here, so that the counters start again with the fleet.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/.run/metrics}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
rm -f "$PROMETHEUS_MULTIPROC_DIR"/*.db

exec "$BIN/honcho" start -f Procfile
