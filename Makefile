# Set-up and checks for impact. `make run` and `make test` are the README's two commands.
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= results

.PHONY: install run test test-fast wheel-check lint bench

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || "$$(scripts/python312.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/impact run --out $(OUT)

# Default suite then the slow statistical checks (the README's test command; .ci/run runs it).
test: install
	$(VENV)/bin/ruff check impact tests benchmarks analyses
	$(PY) -m pytest -q -m "not slow" -n 2
	$(PY) -m pytest -q -m slow -n 2 --dist loadfile || test $$? -eq 5
	$(MAKE) wheel-check

# The wheel in a fresh virtual environment: impact simulate/validate/panel/derive outside the checkout
# (about 30 s: small simulated registers).
wheel-check: install
	scripts/check_wheel.sh $(PY) build/wheel-check

test-fast: install
	$(PY) -m pytest -q -m "not slow" -n 2

bench: install
	for f in benchmarks/bench_*.py; do $(PY) $$f; done
