# The two commands a reader needs:  make book  and  make test.
# Both create .venv from the exact pins in requirements.txt when it is missing.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SITE   := _build/html
# Release and repository tools (actionlint, cffconvert, build, twine) live in their own venv: see requirements-tools.txt.
TOOLS  := .venv-tools
TOOLS_STAMP := $(TOOLS)/.installed

# No progress-bar clutter in executed notebooks and the rendered book.
# (Do not set MPLBACKEND here: it would override the kernels' inline backend and drop every figure.)
export EBMLIB_PROGRESS ?= 0
export PYDEVD_DISABLE_FILE_VALIDATION = 1

NBVAL_FLAGS := --nbval-lax -p no:cacheprovider -o norecursedirs="_build .* .venv outputs"
# What ruff checks and formats (the pinned ruff of requirements-tools.txt; .pre-commit-config.yaml runs the same).
LINT_SCOPE := ebmlib tests benchmarks tools book/conftest.py $(wildcard book/*.ipynb)
# The unit tests run in two processes (pytest-xdist), each with one torch thread (tests/conftest.py).
# nbval runs the chapters one at a time: two at once oversubscribe the cores with torch's threads (measured:
# minutes per chapter instead of seconds), and forcing one thread would change the committed outputs.
XDIST := -n 2

.PHONY: help setup tools book lint test test-portable test-slow test-floors dist build-strict student execute reproduce robustness bench clean

help:
	@echo "make book    build the HTML book into $(SITE) from the committed, executed chapters"
	@echo "make test    lint, unit tests, nbval on every chapter, strict build, browser check"
	@echo "make lint    ruff check and ruff format --check over ebmlib, tests, benchmarks, tools, chapters"
	@echo "make test-portable  nbval on every chapter under AVX2 and portable CPU kernels (other CPUs' numbers)"
	@echo "make test-slow  the checks marked slow: every chapter's bad-parameter run, an interrupted"
	@echo "             reproduce run resumed, the wheel in a fresh venv running a chapter (minutes)"
	@echo "make test-floors  the unit tests on the lowest versions pyproject.toml allows (tests/floors.txt)"
	@echo "make dist    build the sdist and wheel into dist/ and check them with twine"
	@echo "make student the student edition without solutions: _student/book/*.ipynb and _student/_build/html"
	@echo "make bench   run benchmarks/ against peer implementations"
	@echo "make reproduce  re-run every chapter through papermill into outputs/<run-id>/ (ARGS=\"09 --scale paper\")"
	@echo "make robustness every chapter at SEEDS (default 0:20) on a local Dask cluster: outputs/robustness/"
	@echo "make execute re-execute the chapters in place (maintainers; outputs are committed)"
	@echo "make clean   remove build outputs (keeps .venv)"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $(STAMP)

$(TOOLS_STAMP): requirements-tools.txt
	@test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
	@touch $(TOOLS_STAMP)

tools: $(TOOLS_STAMP)

book: $(STAMP)
	$(VENV)/bin/jupyter-book build book/ --path-output . 
	@echo
	@echo "Open the book: $(abspath $(SITE))/index.html"

lint: $(TOOLS_STAMP)
	$(TOOLS)/bin/ruff check $(LINT_SCOPE)
	$(TOOLS)/bin/ruff format --check $(LINT_SCOPE)

test: $(STAMP) $(TOOLS_STAMP)
	@echo "== 0/4 lint: ruff check and ruff format --check"
	$(MAKE) --no-print-directory lint
	@echo "== 1/4 ebmlib unit tests (with the packaging, citation and workflow checks), two processes"
	$(PY) -m pytest -m "not site and not slow" $(XDIST) tests
	@echo "== 2/4 nbval: re-run every chapter and compare the checked outputs"
	$(PY) -m pytest $(NBVAL_FLAGS) book
	@echo "== 3/4 strict book build (-W) of the committed outputs that nbval has just checked"
	$(MAKE) --no-print-directory build-strict
	@echo "== 4/4 headless-browser check of the built pages"
	$(PY) -m pytest -m site tests

# nbval over every chapter under other CPU kernels than this machine's own: PyTorch's AVX2 kernels and MKL's AVX2
# path (what a CPU without AVX-512 runs), then PyTorch's portable kernels without explicit vector instructions
# (a stand-in for another instruction set, such as ARM64's). A checked cell prints only what is stable across them.
PORTABLE_ISAS ?= avx2 default
test-portable: $(STAMP)
	@for isa in $(PORTABLE_ISAS); do \
	    echo "== nbval with ATEN_CPU_CAPABILITY=$$isa MKL_ENABLE_INSTRUCTIONS=AVX2"; \
	    ATEN_CPU_CAPABILITY=$$isa MKL_ENABLE_INSTRUCTIONS=AVX2 $(PY) -m pytest $(NBVAL_FLAGS) book || exit 1; \
	done

# The checks marked slow (minutes): every chapter's bad-parameter papermill run, an interrupted reproduce run
# resumed, and the wheel, installed into a fresh venv, running a chapter copied alone into an empty folder.
test-slow: $(STAMP) $(TOOLS_STAMP)
	$(PY) -m pytest -m slow $(XDIST) tests

# The unit tests, and chapter 1 under nbval, on the floors of pyproject.toml's ranges (tests/floors.txt), in their
# own venv (downloads torch).
FLOORS ?= .venv-floors
test-floors:
	@test -x $(FLOORS)/bin/python || $(PYTHON) -m venv $(FLOORS)
	$(FLOORS)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/floors.txt
	$(FLOORS)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(FLOORS)/bin/python -m pytest -m "not site and not slow" -p no:cacheprovider tests \
	    --ignore=tests/test_site.py --ignore=tests/test_chapters.py --ignore=tests/test_reproduce.py \
	    --ignore=tests/test_packaging.py --ignore=tests/test_environment.py
	$(FLOORS)/bin/python -m pytest $(NBVAL_FLAGS) book/01_mle_gradient.ipynb

dist: $(TOOLS_STAMP)
	rm -rf dist
	$(TOOLS)/bin/python -m build --outdir dist .
	$(TOOLS)/bin/twine check --strict dist/*

build-strict: $(STAMP)
	$(VENV)/bin/jupyter-book build book/ --path-output . -W --keep-going

# The student edition: the chapters without their exercises' solutions, as notebooks to hand out
# (_student/book/*.ipynb) and as an HTML book (_student/_build/html).
student: $(STAMP)
	$(PY) tools/student_edition.py --out _student
	$(VENV)/bin/jupyter-book build _student/book --path-output _student

# Maintainers: re-execute the chapters in place (outputs are committed). CHAPTERS=book/01_mle_gradient.ipynb for one.
CHAPTERS ?= $(wildcard book/[0-9][0-9]_*.ipynb)
execute: $(STAMP)
	@for nb in $(CHAPTERS); do echo "== $$nb"; $(VENV)/bin/jupyter execute --inplace $$nb || exit 1; done
	$(PY) tools/readme_figures.py

# Re-run chapters through papermill into outputs/<run-id>/ with a summary table; e.g.
#   make reproduce ARGS="09 --scale paper"     make reproduce ARGS="--run-id r1 --resume"
JOBS ?= 2
reproduce: $(STAMP)
	$(PY) -m ebmlib.reproduce --jobs $(JOBS) $(ARGS)

# Every chapter at 20 seeds on the current commit, one (chapter, seed) pair per Dask task; summary.json holds, for
# each claim, the fraction of seeds at which it held and its margins, which the page shows. --resume continues an
# interrupted sweep, and refuses one made at another commit. Commit first: the page records the commit.
SEEDS ?= 0:20
# A sweep in which some claims fail (exit 1) still writes its summary, and the page is written from it; a refused
# or bad request (exit 2) or an interrupt (130) writes no page.
robustness: $(STAMP)
	$(PY) -m ebmlib.reproduce --seeds $(SEEDS) --jobs $(JOBS) --run-id robustness --resume $(ARGS); \
	    status=$$?; [ $$status -le 1 ] || exit $$status
	$(PY) tools/robustness_page.py --out book/appendix_robustness.md outputs/robustness/summary.json

# Peers used only by the benchmarks (TorchEBM) are installed here, with --no-deps next to the pinned torch.
bench: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r benchmarks/requirements.txt
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(PY) $$f || exit 1; done
	$(PY) benchmarks/summarize.py

clean:
	rm -rf _build book/_build outputs dist
