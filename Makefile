# wsjax: the README's two commands. `make demo` and `make test` each create .venv,
# install what they need (Python packages with pip; the offline Fashion-MNIST Debian
# package with apt-get when run as root) and then run.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
FMNIST := /usr/share/datasets/fashion-mnist
DEMO ?= experiments/demo.py

.PHONY: demo test bench data device-data clean

demo: $(VENV)/.installed data
	$(PY) $(DEMO)

test: $(VENV)/.installed-test data
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

bench: $(VENV)/.installed-bench data
	for b in benchmarks/[a-z]*.py; do m=$$(basename $$b .py); echo "== $$m"; $(PY) -m benchmarks.$$m || exit 1; done

# The data benchmarks/device.sh reads on a GPU machine (carry .data there; git ignores it).
device-data: data
	mkdir -p .data/fashion_mnist && cp $(FMNIST)/*-ubyte* .data/fashion_mnist/

# Fashion-MNIST from Debian's dataset-fashion-mnist (offline mirror of the IDX files).
data:
	@if [ -d $(FMNIST) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing dataset-fashion-mnist with apt-get"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) \
	    || echo "warning: apt-get could not install dataset-fashion-mnist; wsjax.data will say where else it looked"; \
	else \
	  echo "note: $(FMNIST) is missing; run 'sudo apt-get install dataset-fashion-mnist' or set WSJAX_DATA_DIR"; \
	fi

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[test]'
	touch $@

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[test,bench]'
	touch $@

clean:
	rm -rf $(VENV) runs .pytest_cache
