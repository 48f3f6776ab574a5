# Two entry points (see README): `make bench` runs the main job, `make test` the tests.
# Each sets up what it needs: .venv from the pinned constraints.txt, and the dashboard's
# JavaScript from the npm registry (dashboard/package-lock.json).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup bench test serve demo results targets method-choice gemm-orientation mutants gpu-bundle \
	compare gate

# The reference timings' python: without a workplace's BLAS kernel overrides
# (tools/without_overrides.sh names each it drops), every library at one thread.
REFERENCE_PY = tools/without_overrides.sh env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 \
	MKL_NUM_THREADS=1 $(PY)

# make compare / make gate: BASE=<rev> (default: merge-base with main, or HEAD~1 on main),
# FRESH=1 (time both commits again), ROUNDS=, REPEAT=, BENCH=<asv -b regex>
# (tools/make_compare.sh reads them).

# The variables that carry a user's text into a recipe reach it through the environment
# as typed, never spliced into the recipe's shell line: make's own $ expansion is not
# applied ($(value)), and the *_ARGS lists are split by tools/split_words.py (quotes
# group words, nothing is expanded or run).
USER_VARIABLES := BASE BENCH ROUNDS REPEAT FRESH TEST_WORKERS ASV_ARGS TARGETS_ARGS \
	METHOD_CHOICE_ARGS GEMM_ORIENTATION_ARGS MUTANTS_ARGS
TEST_WORKERS ?= 2
$(foreach name,$(USER_VARIABLES),$(eval override $(name) := $$(value $(name))))
export $(USER_VARIABLES)

# $(call with_words,VARIABLE) COMMAND "$$@": COMMAND with the words of VARIABLE
with_words = words=$$($(PY) tools/split_words.py $(1)) && eval "set -- $$words" &&

# constraints.txt pins numpy, scipy, pandas and matplotlib releases that need Python 3.11+
# (pyproject.toml allows 3.10 with older ones): said at once, not as pip's "no matching
# distribution" after the download.
$(VENV)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "error: %s is Python %d.%d: constraints.txt pins releases that need 3.11 or newer (make PYTHON=python3.11 ...)" % (sys.executable, *sys.version_info[:2]))'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

dashboard/node_modules/.package-lock.json: dashboard/package.json dashboard/package-lock.json
	npm ci --prefix dashboard --no-audit --no-fund --silent

# The set-up alone (what `make bench` and `make test` do first), e.g. before running a
# tool directly: .venv/bin/python tools/compare_commits.py --gate exits 0, 1 or 2, where
# make gate exits 0 or 2 (make exits 2 whenever a recipe fails).
setup: $(VENV)/.installed dashboard/node_modules/.package-lock.json

bench: $(VENV)/.installed dashboard/node_modules/.package-lock.json
	tools/run_benchmarks.sh

# The tests in TEST_WORKERS processes (pytest-xdist; 0: one process): two took the suite
# from 11 to 7 min on the 2-core VM CI runs on (its default, 2, is set above; empty or
# blanks only: 2).
test: $(VENV)/.installed dashboard/node_modules/.package-lock.json
	case "$$TEST_WORKERS" in *[![:space:]]*) workers=$$TEST_WORKERS ;; *) workers=2 ;; esac; \
	$(PY) -m pytest -n "$$workers"

serve: $(VENV)/.installed
	$(PY) tools/offline_dashboard.py serve

demo: $(VENV)/.installed
	$(PY) -m scipy_layers.demo

results: $(VENV)/.installed
	tools/reference_results.sh

# Issue 13's speed targets side by side -> reports/<machine>/targets.{csv,md} (~11 min on a 2-core VM, README);
# TARGETS_ARGS= passes options (e.g. --cells fft:256:float32 --batches 30; --floors adds each
# cell's null, kernels-only and hot floors, about 1.7 times as long). Reference
# figures: REFERENCE_PY (make results drops the overrides too).
targets: $(VENV)/.installed
	$(call with_words,TARGETS_ARGS) $(REFERENCE_PY) tools/targets.py "$$@"

# Does method="auto" pick the faster of fft and im2col on this machine? Both timed on a
# seeded draw of the cells where its cost model decides (the same on every machine) ->
# reports/<machine>/method_choice.{csv,md} (~1-2 min); METHOD_CHOICE_ARGS= passes options.
method-choice: $(VENV)/.installed
	$(call with_words,METHOD_CHOICE_ARGS) $(REFERENCE_PY) tools/method_choice.py "$$@"

# Does im2col's grad_weight GEMM run in the faster of its two orientations here? Both
# timed on the suite's CNN shapes, both dtypes; prints markdown (~30 s on a 2-core VM);
# GEMM_ORIENTATION_ARGS= passes options.
gemm-orientation: $(VENV)/.installed
	$(call with_words,GEMM_ORIENTATION_ARGS) $(REFERENCE_PY) tools/gemm_orientation.py "$$@"

# Do the tests catch plausible defects? Each hand-made mutant of tools/mutants_*.py applied
# alone to a copy of the working tree, its tests run (hours on a 2-core VM);
# MUTANTS_ARGS= passes options (e.g. --only 'layers:W*' --workers 2; --list).
mutants: $(VENV)/.installed
	$(call with_words,MUTANTS_ARGS) $(PY) tools/mutation_check.py "$$@"

compare: $(VENV)/.installed dashboard/node_modules/.package-lock.json
	tools/make_compare.sh $(PY)

gate: $(VENV)/.installed dashboard/node_modules/.package-lock.json
	tools/make_compare.sh $(PY) --gate

gpu-bundle:
	tools/gpu_bundle.sh
