# Petra Billing — `make run` for the demo, `make test` for the whole suite.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FLASK := $(BIN)/flask --app wsgi
FLASK_DEMO := $(BIN)/flask --app dev.demo.app
HOST ?= 127.0.0.1
PORT ?= 5000
STRIPE_PORT ?= 8420
MAIL_PORT ?= 8025
DEMO_FILE := dev/demo/northwind.json

.PHONY: run test lint format serve clean chromium print-tools

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.dev: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	touch $@

$(VENV)/.test: $(VENV)/.dev
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	touch $@

## run: migrate, import the demo data, start the local Stripe server (with demo invoices), the
## local mail server (messages kept in instance/mail/), the worker and the app
run: $(VENV)/.dev
	$(FLASK) db upgrade
	$(FLASK) usage import $(DEMO_FILE)
	@set -e; \
	export STRIPE_API_BASE="$${STRIPE_API_BASE:-http://127.0.0.1:$(STRIPE_PORT)}"; \
	export STRIPE_PORTAL_LOGIN_URL="$${STRIPE_PORTAL_LOGIN_URL:-http://127.0.0.1:$(STRIPE_PORT)/p/login/test_local}"; \
	export STRIPE_WEBHOOK_SECRET="$${STRIPE_WEBHOOK_SECRET:-whsec_local_development}"; \
	export SMTP_URL="$${SMTP_URL:-smtp://127.0.0.1:$(MAIL_PORT)}"; \
	export PUBLIC_URL="$${PUBLIC_URL:-http://$(HOST):$(PORT)}"; \
	$(BIN)/python -m dev.stripe_local --host 127.0.0.1 --port $(STRIPE_PORT) & \
	STRIPE_PID=$$!; \
	$(BIN)/python -m dev.mail_local --port $(MAIL_PORT) --folder instance/mail & \
	MAIL_PID=$$!; \
	$(FLASK) worker & \
	WORKER_PID=$$!; \
	trap 'kill $$STRIPE_PID $$MAIL_PID $$WORKER_PID 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python -m dev.stripe_local --wait http://127.0.0.1:$(STRIPE_PORT) \
	  --webhook http://$(HOST):$(PORT)/webhooks/stripe --webhook-event customer.updated \
	  --webhook-event invoice.finalized; \
	$(FLASK) billing link-stripe northwind-msp; \
	$(FLASK_DEMO) demo invoices northwind-msp; \
	$(FLASK_DEMO) demo sign-ins $(DEMO_FILE); \
	$(FLASK) run --host $(HOST) --port $(PORT)

## serve: the app under gunicorn, configured by the environment (see README, Running in production)
serve: $(VENV)/.serve
	$(BIN)/gunicorn -c python:billing_app.gunicorn_conf wsgi:app

$(VENV)/.serve: $(BIN)/python pyproject.toml requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e .
	touch $@

## test: the whole suite (SQLite; PostgreSQL too when TEST_DATABASE_URL is set), in
## TEST_WORKERS processes side by side (most tests wait on servers, browsers and Stripe)
TEST_WORKERS ?= 4
test: $(VENV)/.test chromium print-tools
	$(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing Debian's chromium for the browser tests"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# LibreOffice Calc and poppler-utils: the print test converts a report to PDF and reads it.
print-tools:
	@{ command -v soffice && command -v pdftotext && command -v pdfinfo; } >/dev/null 2>&1 || { \
	  echo "Installing Debian's LibreOffice Calc and poppler-utils for the print test"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    libreoffice-calc-nogui poppler-utils >/dev/null; }

lint: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
