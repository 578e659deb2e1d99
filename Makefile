PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ML100K ?= ../shared/data/ml-100k

.PHONY: demo test test-fast browser lint bench-quality bench-similar bench-explain bench-serve bench-fairness bench-faults bench-scale clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trustrec demo

test: $(STAMP) browser
	$(BIN)/pytest -q

# the inner loop: everything but the end-to-end runs marked slow
test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

# Debian's headless Chromium for tests/test_pages_browser.py, installed only when missing and we
# are root (or sudo works without a password); otherwise those tests skip and say why
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then SUDO=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	else echo "browser: /usr/bin/chromium is missing and apt-get needs root: the browser tests will skip"; exit 0; fi; \
	if [ ! -x /usr/bin/chromium ]; then \
	  echo "browser: installing Debian's chromium and chromium-driver ..."; \
	  ( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	      --no-install-recommends chromium chromium-driver >/dev/null ) \
	  || echo "browser: could not install chromium: the browser tests will skip"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

# the served model against every baseline (each tuned on validation) on ML-100K, the retail log
# and the synthetic storefront, 3 seeds
bench-quality: $(STAMP)
	$(BIN)/python -m benchmarks.quality

# similar offers (next purchase given the last one) against item-kNN on the same suite, 5 seeds
bench-similar: $(STAMP)
	$(BIN)/python -m benchmarks.similar

bench-explain: $(STAMP)
	$(BIN)/python -m benchmarks.explain --data $(ML100K)

# gunicorn (2 workers) on loopback against Redis, loaded from a second process; ARTIFACT=models/<v>
# skips training the ML-100K model
bench-serve: $(STAMP)
	$(BIN)/python -m benchmarks.serve --data $(ML100K) $(if $(ARTIFACT),--artifact $(ARTIFACT))

bench-faults: $(STAMP)
	$(BIN)/python -m benchmarks.faults

# generate, train, publish and serve storefronts of growing size; SIZE=CUSTOMERSxOFFERS,...;
# SCALE_ARGS: more options (e.g. --skip als,artifact for the 1M row)
bench-scale: $(STAMP)
	$(BIN)/python -m benchmarks.scale $(if $(SIZE),--sizes $(SIZE)) $(SCALE_ARGS)

bench-fairness: $(STAMP)
	$(BIN)/python -m benchmarks.fairness --data $(ML100K)

clean:
	rm -rf $(VENV) build *.egg-info
