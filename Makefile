PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ML100K ?= ../shared/data/ml-100k

.PHONY: demo test lint bench-quality clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/trustrec demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench-quality: $(STAMP)
	$(BIN)/trustrec evaluate --data $(ML100K) --format movielens --model all --seeds 3 --json benchmarks/results/quality.json

clean:
	rm -rf $(VENV) build *.egg-info
