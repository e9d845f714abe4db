# Two commands: `make run` serves the site with the sample corpus; `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: run test install bench screenshots clean

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

# The browser tests drive Debian's Chromium (Playwright's own browser download is not needed).
$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "install Chromium at $(CHROMIUM) for the browser tests"; exit 1; }
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

test: install $(CHROMIUM)
	$(BIN)/python -m pytest

screenshots: install $(CHROMIUM)
	DAILYPAPERS_SCREENSHOTS=1 $(BIN)/python -m pytest tests/test_browser.py

bench: install
	$(BIN)/python bench/ingest.py --papers 100000
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/quality.py
	$(BIN)/python bench/search.py
	$(BIN)/python bench/web.py

# The data (database, indexes, model cache) is not in the checkout: say where it stays.
clean:
	@dir=$$($(BIN)/python -c 'from dailypapers.config import get_settings; print(get_settings().data_dir)' 2>/dev/null); \
	rm -rf $(VENV) build src/*.egg-info .pytest_cache; \
	echo "Removed .venv and build files. The data (database, indexes, model cache) stays in"; \
	echo "  $${dir:-the data dir: DAILYPAPERS_DATA_DIR, else ~/.local/share/dailypapers}"; \
	echo "Delete that folder to start from nothing."
