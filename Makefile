# The two commands (each sets up .venv/ on first use):
#   make app    run the Streamlit app on the bundled models
#   make test   run every test (slow ones included; GPU-only tests skip themselves without CUDA)
#   make lab         JupyterLab on working copies of the notebooks in build/lab/ (notebooks/ stays clean)
#   make notebooks   executed HTML copies of notebooks/*.ipynb in build/notebooks/ (FAST=1: their quick mode)
#   make docs        the documentation site in build/site/ (mkdocs build --strict)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: app test test-fast bench lab notebooks docs

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt 2>&1 | grep -v "is ignored: it is neither" || true
	$(BIN)/python -c "import igpt_lite.model, torch, streamlit, transformers"
	@# headless Chromium renders figures and app pages to PNG (docs, and the tests that look at them)
	command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "no chromium (needs root and Debian's apt): PNG tests will skip"
	touch $@

app: $(VENV)/.installed
	$(BIN)/streamlit run app/main.py

test: $(VENV)/.installed
	$(BIN)/pytest -m "slow or not slow" -p no:cacheprovider --durations=15

# The unit tier while working: every test not marked slow, in under a minute on 2 cores.
test-fast: $(VENV)/.installed
	$(BIN)/pytest -m "not slow" -p no:cacheprovider

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/sampling.py

# JupyterLab on working copies of the notebooks in build/lab/ (git-ignored): running and saving them
# never touches the tracked notebooks/. A copy already there is kept, with your changes; delete it
# (or build/lab/) for a fresh one.
lab: $(VENV)/.installed
	mkdir -p build/lab
	for nb in notebooks/*.ipynb; do test -e "build/lab/$$(basename $$nb)" || cp "$$nb" build/lab/; done
	$(BIN)/jupyter lab build/lab

# Executed copies of the teaching notebooks for reading (plotly.js inline: they open offline); the
# notebooks in notebooks/ stay output-free. Prints each notebook's time.
notebooks: $(VENV)/.installed
	mkdir -p build/notebooks
	for nb in notebooks/*.ipynb; do \
		start=$$(date +%s); \
		IGPT_FAST=$(FAST) PLOTLY_RENDERER=notebook $(BIN)/jupyter nbconvert --to html --execute \
			--ExecutePreprocessor.timeout=1800 --output-dir build/notebooks "$$nb" || exit 1; \
		echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	done

# The documentation site (docs/, mkdocs.yml: Material theme, API pages from the docstrings by
# mkdocstrings) in build/site/; strict: a broken link or anchor, or a page left out of the nav, fails.
docs: $(VENV)/.installed
	$(BIN)/mkdocs build --strict
