# Two commands on a fresh machine with Python 3.11+:  make demo  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.installed-runtime
DEV := $(VENV)/.installed-dev

.PHONY: demo sandbox test serve migrate bench clean

# The bot's own requirements (what Deploying installs): enough for demo, serve and migrate.
$(RUNTIME): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(RUNTIME)

# Tests and tools on top: only test and bench need them.
$(DEV): $(RUNTIME) requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(DEV)

demo: $(RUNTIME)
	$(BIN)/python app.py demo

# The Polaris sandbox and the Slack stand-in on 127.0.0.1, and the environment to point `serve` at them.
sandbox: $(RUNTIME)
	$(BIN)/python app.py sandbox

test: $(DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

serve: $(RUNTIME)
	$(BIN)/python app.py serve

migrate: $(RUNTIME)
	$(BIN)/python app.py migrate

bench: $(DEV)
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
