# The two commands a new user needs: `make demo` and `make test`.
# Only Python 3.10+ and make are assumed: uv is installed into a project-local
# tool venv (.tools/), and the workspace environment lives in .venv/.
PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# Installed packages get their bytecode at install time: machines that set
# PYTHONDONTWRITEBYTECODE (CI images often do) otherwise compile every import again in
# every process, and the tests that run applications in child interpreters crawl.
export UV_COMPILE_BYTECODE := 1

.PHONY: demo test test-interop test-extras bench lint env clean

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1"

$(STAMP): $(UV) pyproject.toml shared_core/pyproject.toml packages/ragtrail-langchain/pyproject.toml packages/ragtrail-llamaindex/pyproject.toml
	$(UV) sync --python $(PYTHON) --all-packages --group dev --quiet
	@touch $(STAMP)

env: $(STAMP)

demo: $(STAMP)
	$(UV) run --no-sync python examples/rag_demo.py
	$(UV) run --no-sync python examples/evaluate_rag.py

test: $(STAMP)
	$(UV) run --no-sync python -m pytest

# Interop tests (not part of `make test`): ragtrail's OTLP export read back by real
# receivers (Arize Phoenix, the MLflow tracking server) started on 127.0.0.1. Their
# packages (the `interop` group) are added to the same environment with --inexact.
test-interop: $(STAMP)
	$(UV) sync --python $(PYTHON) --all-packages --group dev --group interop --inexact --quiet
	RAGTRAIL_INTEROP=1 $(UV) run --no-sync python -m pytest tests/interop -p no:cacheprovider $(INTEROP_ARGS)

# Optional evaluation frameworks whose packages change pytest itself (deepeval registers
# pytest plugins and brings pytest-xdist, -rerunfailures and -repeat): their tests run
# here, apart from `make test`, in the same environment with --inexact.
test-extras: $(STAMP)
	$(UV) sync --python $(PYTHON) --all-packages --group dev --group evals --inexact --quiet
	$(UV) run --no-sync python -m pytest tests/evals/test_deepeval_evaluate.py -p no:cacheprovider

# Benchmarks (not part of `make test`): the optional comparison tools are added
# to the same environment with --inexact, so the test environment keeps working.
bench: $(STAMP)
	$(UV) sync --python $(PYTHON) --all-packages --group dev --group bench --inexact --quiet
	$(UV) run --no-sync python -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync lint-imports
	$(UV) run --no-sync mypy

clean:
	rm -rf $(VENV) $(TOOLS)
