# Two entry points (see README): `make bench` runs the main job, `make test` the tests.
# Each makes its own virtual environment from the pinned constraints.txt.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: bench test demo

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m scipy_layers.demo

bench: demo

test: $(VENV)/.installed
	$(PY) -m pytest
