#!/usr/bin/env bash
# Start PostgreSQL, Redis and RabbitMQ if they are not running (reuse them if they are), and make sure the
# project's database exists. Safe to run any number of times.
set -euo pipefail

PGHOST=127.0.0.1
PGPORT=5432

if ! pg_isready -q -h "$PGHOST" -p "$PGPORT"; then
  echo "Starting PostgreSQL..."
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  else
    echo "PostgreSQL is not running and pg_ctlcluster is not available; start it on $PGHOST:$PGPORT." >&2
    exit 1
  fi
  for _ in $(seq 1 30); do pg_isready -q -h "$PGHOST" -p "$PGPORT" && break; sleep 1; done
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "Starting Redis..."
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
fi

# RabbitMQ, the other broker `make test` runs the saga on (README, "Brokers"). Only started, never stopped or
# reset: the tests make a virtual host of their own on it.
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; then
  if command -v rabbitmq-server >/dev/null; then
    echo "Starting RabbitMQ..."
    rabbitmq-server -detached || true  # its node may be up with the application stopping or starting
    timeout 90 rabbitmqctl -q await_startup >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 1; done
  else
    # Only `make test` (its RabbitMQ half) and an amqp:// CELERY_BROKER_URL need it.
    echo "RabbitMQ is not running and rabbitmq-server is not available; start it on 127.0.0.1:5672." >&2
  fi
fi

DB_NAME="${PROJECT_DB:-shop}"
if ! psql -h "$PGHOST" -p "$PGPORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB_NAME'" | grep -q 1; then
  createdb -h "$PGHOST" -p "$PGPORT" -U postgres "$DB_NAME"
fi
