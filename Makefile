PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install services test run dev lint format bench migrate chaos

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

services:
	scripts/ensure_services.sh

migrate: install services
	$(BIN)/python manage.py migrate --noinput

# The whole suite on the Redis broker, then the whole-saga, fault and broker tests again on RabbitMQ (a virtual
# host of the run's own, named after its test database: README, "Brokers"). PYTEST_ARGS apply to the first run.
AMQP_TESTS ?= tests/saga tests/faults tests/broker
test: install services
	$(BIN)/pytest $(PYTEST_ARGS)
	TEST_BROKER_KIND=amqp $(BIN)/pytest $(AMQP_TESTS)

run: migrate
	scripts/run.sh

# The API alone on Django's development server, reloading on code changes: no workers, no budget check, one
# thread and database connection per request. Not for load; `make run` serves it with gunicorn.
dev: migrate
	$(BIN)/python manage.py runserver 127.0.0.1:8000

# The chaos run: its own database (shop_chaos, recreated), Redis db 4 and port 8765 unless CHAOS_ARGS names others; see chaos/.
# CHAOS_ARGS, e.g. "--quick" or "--orders 1000 --seed 7".
chaos: install services
	$(BIN)/python -m chaos $(CHAOS_ARGS)

# The benchmark: its own database (shop_bench, recreated), Redis db 3 and port 8766; see bench/.
# BENCH_QUICK=1 for the short form (under 3 minutes); BENCH_ARGS, e.g. "--clients 24".
$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(BIN)/pip install -q -r requirements-bench.txt
	touch $@

bench: install services $(VENV)/.bench-installed
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
