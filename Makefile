# Two commands: `make run` serves the site with the sample corpus; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

install: $(STAMP)

run: install
	$(BIN)/dailypapers init
	$(BIN)/dailypapers ingest sample
	$(BIN)/dailypapers serve --host 127.0.0.1 --port 8000

test: install
	$(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/ingest.py --papers 100000

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
