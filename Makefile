# Two commands on a fresh machine with Python 3.11+:  make demo  |  make test
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test serve migrate bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python app.py demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q

serve: $(STAMP)
	$(BIN)/python app.py serve

migrate: $(STAMP)
	$(BIN)/python app.py migrate

bench: $(STAMP)
	bash bench/run_all.sh

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
