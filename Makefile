# The course's commands. `make test` and `make demo` do all their own set-up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned so pip takes the CPU build on disk instead of downloading a multi-GB CUDA build.
TORCH := torch==2.13.0
NBDEV_WORKERS ?= 2
# Notebooks and tests never touch the real home: they use .test_home, where the shared archives are linked.
SHARED ?= $(abspath ../shared)
TEST_HOME := $(CURDIR)/.test_home
export ULMFIT_LIT_SHARED := $(SHARED)
# One thread per process: nbdev_test runs notebooks side by side, and PyTorch's small CPU ops slow down many times
# over when processes x threads exceed the cores (measured: an LSTM step 0.03 s alone, 2.1 s oversubscribed).
export OMP_NUM_THREADS ?= 1
DEMO_THREADS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: test test-home demo docs lab install export clean-nbs check-drift pytest nbtest bench pretrain

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python settings.ini setup.py
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# Every notebook (cells flagged slow/gpu/fullimdb are skipped), then the pytest suite.
test: nbtest pytest

test-home:
	@mkdir -p $(TEST_HOME)/archive
	@if [ -f $(SHARED)/data/imdb.tgz ]; then ln -sf $(SHARED)/data/imdb.tgz $(TEST_HOME)/archive/imdb.tgz; \
	else echo "note: $(SHARED)/data/imdb.tgz not found; cells and tests that need the full IMDb will be skipped"; fi

nbtest: install test-home
	ULMFIT_LIT_HOME=$(TEST_HOME) $(BIN)/nbdev_test --n_workers $(NBDEV_WORKERS) --do_print --timing

pytest: install
	$(BIN)/python -m pytest tests/ -q

# The ULMFiT pipeline on the IMDb sample shipped inside the package, on CPU, with 800 and 100 labels. One process, so
# it gets both cores' threads.
demo: install
	OMP_NUM_THREADS=$(DEMO_THREADS) $(BIN)/ulmfit-lit demo

# Reproduce the shipped language model: pretrain on IMDb's unsup reviews in two cycles (about 2 hours of a 2-core
# CPU in all; run it again after a stop to resume), then copy the archive into the package. The first cycle uses the
# defaults (1.5 epochs); the second goes on from it with a new one-cycle schedule. The settings are the model card's.
PRETRAIN_OUT ?= pretrain_out
pretrain: install
	$(BIN)/ulmfit-lit pretrain --out $(PRETRAIN_OUT) $(PRETRAIN_ARGS)
	$(BIN)/ulmfit-lit pretrain --out $(PRETRAIN_OUT)_cycle2 --init $(PRETRAIN_OUT) --epochs 0.8 --lr 3e-3 $(PRETRAIN_ARGS)
	cp $(PRETRAIN_OUT)_cycle2/imdb_lm.tgz ulmfit_lit/pretrained/imdb_lm.tgz
	$(BIN)/python tools/pretrained_checks.py

# The site, offline: nbdev processes the notebooks, smalldocs renders them with the same _quarto.yml.
docs: install
	$(BIN)/python tools/build_docs.py
	$(BIN)/python tools/check_links.py _docs

lab: install
	$(BIN)/jupyter lab nbs

# Notebooks -> package, and cleaned notebooks; `check-drift` fails if either changes the tree.
export: install
	$(BIN)/nbdev_export
	$(BIN)/nbdev_clean
	$(BIN)/python tools/make_readme.py

check-drift: export
	git diff --exit-code -- ulmfit_lit nbs README.md

# Benchmarks print figures and write their medians to measurements.json (ours, and fastai's when FASTAI_PYTHON names
# a Python that imports fastai 2.8.12, e.g. `make bench FASTAI_PYTHON=/path/to/venv/bin/python`); they assert nothing.
bench: install test-home
	ULMFIT_LIT_HOME=$(TEST_HOME) $(BIN)/python bench/tokenization.py
	ULMFIT_LIT_HOME=$(TEST_HOME) $(BIN)/python bench/dataload.py
	$(BIN)/python bench/model.py
	$(BIN)/python bench/learner.py
	$(BIN)/python bench/generate.py
