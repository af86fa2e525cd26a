# Two commands set everything up on a fresh machine:
#   make demo   - install, then run the whole chain on the embedded phantom (fetalplanes demo)
#   make test   - install, then run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.fetalplanes-installed
EXTRAS ?= opencv,train,dev
DEMO_OUT ?= demo_run

.PHONY: install demo test test-all bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/fetalplanes demo --out $(DEMO_OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# also the slow tests (GPU tests still need a GPU: they skip without one)
test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "not gpu"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
