# Two commands do all set-up: `make demo` and `make test`. Each creates .venv and installs the project.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

LS_VENV := .ls-venv
LS_STAMP := $(LS_VENV)/.installed

.PHONY: demo test lint format bench label-studio label-studio-venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Label Studio in its own virtualenv: its Django pins clash with ours
$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet label-studio==1.23.2
	touch $(LS_STAMP)

label-studio-venv: $(LS_STAMP)

label-studio: $(STAMP) $(LS_STAMP)
	$(BIN)/python -m labeling.server

demo: $(STAMP)
	$(BIN)/python -m manga_assets.demo

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
