PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ML100K ?= ../shared/data/ml-100k

.PHONY: demo test lint bench-quality bench-explain bench-serve bench-fairness clean

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

bench-explain: $(STAMP)
	$(BIN)/python -m benchmarks.explain --data $(ML100K)

# gunicorn (2 workers) on loopback against Redis, loaded from a second process; ARTIFACT=models/<v>
# skips training the ML-100K model
bench-serve: $(STAMP)
	$(BIN)/python -m benchmarks.serve --data $(ML100K) $(if $(ARTIFACT),--artifact $(ARTIFACT))

bench-fairness: $(STAMP)
	$(BIN)/python -m benchmarks.fairness --data $(ML100K)

clean:
	rm -rf $(VENV) build *.egg-info
