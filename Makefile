# Two commands do all set-up: `make demo` and `make test`. Each creates .venv and installs the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LS_VENV := .ls-venv
LS_STAMP := $(LS_VENV)/.installed

.PHONY: demo dev test lint format bench label-studio label-studio-venv clean

# constraints.txt pins every dependency to a set that passed CI, so a fresh clone installs what was tested
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Label Studio in its own virtualenv (its Django pins clash with ours), every package pinned by its lock file
$(LS_STAMP): labeling/label-studio.lock.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet -r labeling/label-studio.lock.txt
	touch $(LS_STAMP)

label-studio-venv: $(LS_STAMP)

label-studio: $(STAMP) $(LS_STAMP)
	$(BIN)/python -m labeling.server

demo: $(STAMP)
	$(BIN)/python -m manga_assets.demo

# the Dagster UI + daemon on the project's instance (dagster.yaml: registry-moving runs one at a time)
dev: $(STAMP)
	DAGSTER_HOME=$$($(BIN)/python -m manga_assets.instance) $(BIN)/dagster dev -w workspace.yaml

# house rules: ruff lint + format check (configured in pyproject.toml); `make format` applies the formatter
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint $(LS_STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/train_throughput.py

clean:
	rm -rf $(VENV) $(LS_VENV) .manga_home
