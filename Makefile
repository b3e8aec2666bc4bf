PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install services test run lint format bench migrate

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

test: install services
	$(BIN)/pytest $(PYTEST_ARGS)

run: migrate
	scripts/run.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .
