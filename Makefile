# modelsign: `make demo` and `make test` work on a fresh machine with Python 3.10+ and pip.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test lint docs format venv clean bench

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10) and "modelsign needs Python 3.10 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	bash scripts/demo.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# API reference from the docstrings (pdoc), into build/docs; a docstring
# reference to a name that does not exist fails it.
docs: $(STAMP)
	$(PY) -m pdoc --docformat restructuredtext -o build/docs $$($(PY) scripts/check_docrefs.py --modules)
	$(PY) scripts/check_docrefs.py

test: lint docs
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) benchmarks/sign_verify.py

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache .hypothesis
