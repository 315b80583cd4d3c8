# Two entry points (see README): `make run` sets everything up and opens JupyterLab on the example
# notebook; `make test` sets everything up and runs the linters, jest, pytest and the Galata UI tests.
# Every install step lives here or in scripts/, so a fresh machine needs nothing else.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Run tools from the project's environment (jlpm, jupyter) without activating it.
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: run test setup sandbox build lint test-js test-py test-ui browser clean

# Jupyter refuses to run as root without being told; containers and CI machines often are root.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root)

run: setup
	jupyter lab --ip=127.0.0.1 $(ALLOW_ROOT) examples/kmeans.ipynb

test: setup browser
	$(MAKE) build
	$(MAKE) lint
	$(MAKE) test-js
	$(MAKE) test-py
	$(MAKE) test-ui

setup: $(VENV)/.installed sandbox

# bubblewrap, the sandbox the function server runs workers in (README, "Worker isolation").
sandbox:
	bash scripts/install-sandbox.sh

# The editable install builds the labextension (hatch-jupyter-builder runs `jlpm install` and
# `jlpm build`); `labextension develop` links it into the environment's JupyterLab.
$(VENV)/.installed: pyproject.toml package.json yarn.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,test]"
	$(BIN)/jupyter labextension develop --overwrite .
	touch $@

build: setup
	jlpm build

browser:
	bash scripts/install-chromium.sh

ui-tests/node_modules/.installed: ui-tests/package.json ui-tests/yarn.lock
	cd ui-tests && jlpm install
	touch $@

# eslint, prettier and stylelint as the extension template runs them; ruff for Python mistakes
# (undefined names, unused imports) that a refactor leaves behind.
lint: setup
	jlpm lint:check
	$(BIN)/ruff check jupyterlab_publish benchmarks ui-tests

test-js: setup
	jlpm test

test-py: setup
	$(BIN)/python -m pytest

test-ui: setup ui-tests/node_modules/.installed
	cd ui-tests && jlpm playwright test

clean:
	rm -rf $(VENV) node_modules ui-tests/node_modules lib jupyterlab_publish/labextension tsconfig.tsbuildinfo

# The serving benchmark of issue 4: installs wrk and its own env (benchmarks/serving/.venv), then
# writes benchmarks/serving/results.json and REPORT.md. A few minutes; run on a quiet machine.
.PHONY: bench-serving
bench-serving:
	$(PYTHON) benchmarks/serving/run.py

# The module-frontier benchmark of issue 3: makes its own env with uv (benchmarks/frontier/.venv),
# then writes benchmarks/frontier/results.json and REPORT.md. About 15 minutes.
.PHONY: bench-frontier
bench-frontier: setup
	$(BIN)/python benchmarks/frontier/run.py

# The reliability benchmark of issue 10: the adversarial catalogue and the fault soak (100,000
# calls while a worker is killed, a version published and rolled back), each against its own
# `jupyter publish serve`; writes benchmarks/reliability/results.json and REPORT.md. About 2 minutes.
.PHONY: bench-reliability
bench-reliability: setup
	$(BIN)/python benchmarks/reliability/run.py

# The README's pictures, light and dark: the Publish dialog (docs/publish-dialog*.png) and the
# Deployments panel (docs/deployments-panel-*.png), taken by their Galata tests on the real path;
# refreshed on request, never compared.
.PHONY: screenshots
screenshots: setup ui-tests/node_modules/.installed
	cd ui-tests && UPDATE_SCREENSHOTS=1 jlpm playwright test tests/deployments.spec.ts tests/dialog.spec.ts -g "Deployments|fast failure"

# The Ray Serve benchmark of issue 12: a local Ray head, the published function against a
# hand-written Serve deployment (req/s, p50/p99 at 1, 16 and 64 connections), publish time to the
# warm cluster and the head's memory; writes benchmarks/ray/results.json and REPORT.md. About 3 minutes.
.PHONY: bench-ray
bench-ray: setup
	$(BIN)/python benchmarks/ray/run.py

# The publish-latency benchmark of issue 11: first and warm publishes of the k-means example, with
# the time each stage began; writes benchmarks/publish/results.json and REPORT.md. About a minute.
.PHONY: bench-publish
bench-publish: setup
	$(BIN)/python benchmarks/publish/run.py
