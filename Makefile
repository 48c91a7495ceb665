# The two commands a newcomer runs: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

.PHONY: install demo test test-slow lint format clean docs peers

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make demo: the main job on built-in data, in about a minute; prints where results went
demo: $(STAMP)
	$(BIN)/bbpes run evidence --quick

## make test: lint, then the default test suite, one worker per core (long checks: make test-slow)
test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/pytest -q -n auto

## make test-slow: the long checks, in a second venv that also has Brian2 (numpy < 2.4) and
## NEURON (the NEURON black-box fits, tests/blackbox; NEURON 9 runs with numpy 2.3 too)
BRIAN2_VENV  := .venv-brian2
BRIAN2_STAMP := $(BRIAN2_VENV)/.installed

$(BRIAN2_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BRIAN2_VENV)
	$(BRIAN2_VENV)/bin/pip install --quiet --upgrade pip
	$(BRIAN2_VENV)/bin/pip install --quiet -e '.[dev,brian2,neuron]'
	touch $(BRIAN2_STAMP)

test-slow: $(BRIAN2_STAMP)
	$(BRIAN2_VENV)/bin/pytest -q -m slow

## make peers: NEURON, BluePyOpt, eFEL and Jaxley (with bbpes) in .venv-peers, for the reference
## traces (benchmarks/peers/neuron_reference.py) and the live NEURON test (pytest -m slow)
PEERS_VENV  := .venv-peers
PEERS_STAMP := $(PEERS_VENV)/.installed

$(PEERS_STAMP): benchmarks/peers/requirements.txt pyproject.toml
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet --upgrade pip
	$(PEERS_VENV)/bin/pip install --quiet -r benchmarks/peers/requirements.txt
	touch $(PEERS_STAMP)

peers: $(PEERS_STAMP)

## make docs: the documentation site with the API reference, into build/site (strict: broken references fail)
DOCS_STAMP := $(VENV)/.installed-docs

$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/mkdocs build --strict --quiet

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) $(BRIAN2_VENV) $(PEERS_VENV) build src/*.egg-info .pytest_cache .ruff_cache
