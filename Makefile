# The two commands a reader needs:  make book  and  make test.
# Both create .venv from the exact pins in requirements.txt when it is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SITE   := _build/html

# No progress-bar clutter in executed notebooks and the rendered book;
# a headless matplotlib backend; one BLAS thread per process keeps timings honest.
export EBMLIB_PROGRESS ?= 0
export MPLBACKEND ?= Agg
export PYDEVD_DISABLE_FILE_VALIDATION = 1

NBVAL_FLAGS := --nbval-lax -p no:cacheprovider -o norecursedirs="_build .* .venv outputs"

.PHONY: help setup book test unit nbval build-strict site-check reproduce bench clean

help:
	@echo "make book    build the HTML book into $(SITE) (executes every chapter)"
	@echo "make test    unit tests, nbval on every chapter, strict build, browser check"
	@echo "make bench   run benchmarks/ against peer implementations"
	@echo "make clean   remove build outputs (keeps .venv)"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build book/ --path-output . 
	@echo
	@echo "Open the book: $(abspath $(SITE))/index.html"

test: $(STAMP)
	@echo "== 1/4 ebmlib unit tests"
	$(PY) -m pytest -m "not site" tests
	@echo "== 2/4 nbval: re-run every chapter and compare the checked outputs"
	$(PY) -m pytest $(NBVAL_FLAGS) book
	@echo "== 3/4 strict book build (-W, any cell error fatal)"
	$(MAKE) --no-print-directory build-strict
	@echo "== 4/4 headless-browser check of the built pages"
	$(PY) -m pytest -m site tests

build-strict: $(STAMP)
	$(VENV)/bin/jupyter-book build book/ --path-output . -W --keep-going

reproduce: $(STAMP)
	$(PY) -m ebmlib.reproduce

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done

clean:
	rm -rf _build book/_build outputs
