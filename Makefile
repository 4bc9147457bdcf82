# Two entry points for a new user: `make run` (demo data end to end) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

# Offline by design: no library may phone home or look up a hub at run time (see README).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DVC_NO_ANALYTICS := 1
export BENTOML_DO_NOT_TRACK := true
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 90
export DO_NOT_TRACK := 1
export GX_ANALYTICS_ENABLED := false

.PHONY: install lock run test lint format bench clean

# requirements.lock: the exact version and hashes of every package but torch, so that installs a
# month apart are the same. torch comes first, pinned: an unpinned one pulls a multi-GB CUDA build.
# Which build comes from where pip looks: TORCH_INDEX=https://download.pytorch.org/whl/cpu takes
# the CPU build on any machine (…/whl/cu128: CUDA 12.8); unset, pip's own index decides (the
# public one gives the CUDA build; a machine with local CPU wheels gives those).
TORCH_INDEX ?=
$(VENV)/.installed: pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

install: $(VENV)/.installed

# Re-resolve pyproject.toml's ranges to the newest releases and rewrite requirements.lock (then
# `make install` and `make test`, and commit the lock). PIP_FIND_LINKS: where a local torch lies.
lock: install
	uv pip compile pyproject.toml --extra dev --extra minilm --generate-hashes --upgrade \
		--no-emit-package torch --python-version 3.11 --no-header --no-annotate \
		$(if $(PIP_FIND_LINKS),--find-links $(PIP_FIND_LINKS)) -o requirements.lock

# A clone's committed dvc.lock can call `package` up to date while this machine's model store
# ($BENTOML_HOME) is empty: then `run` decides and packages again, so a champion is always served.
run: install
	dvc repro
	umcl models champion > /dev/null 2>&1 || (dvc repro --force --single-item gate && dvc repro --force --single-item package)

test: install lint
	pytest

lint: install
	ruff check .
	ruff format --check .

format: install
	ruff check --fix .
	ruff format .

bench: install
	python benchmarks/labeler_negbio.py
	python benchmarks/preprocess_throughput.py
	python benchmarks/unify_scale.py
	dvc repro preprocess && python benchmarks/train_step.py
	dvc repro && python benchmarks/serve_load.py
	python benchmarks/drift.py && python -m benchmarks.monitor_overhead

clean:
	rm -rf data/validated data/quarantine data/unified data/cache metrics
