#!/usr/bin/env bash
# The main job (`make bench`): run the asv suite on the current commit, publish the
# dashboard for offline use, and write the pandas reports.
#   ASV_ARGS="--quick"            extra arguments for `asv run`, split into words as a shell
#                                 splits them, with nothing expanded (tools/split_words.py):
#                                 ASV_ARGS="--quick -b 'FFTAbs\\.time_forward\\('" is three words
#   SCIPY_LAYERS_BENCH_FULL=1     run the full grid instead of the default subset
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ASV=.venv/bin/asv

# ASV_ARGS' words first: an open quote stops the run before anything is done
asv_words=$("$PY" tools/split_words.py ASV_ARGS) || exit 2
eval "asv_args=($asv_words)"  # (each word shell-quoted by split_words.py)
# asv.conf.json pins the benchmarks' Python: without it asv would end in a traceback
$PY tools/record_environment.py --check || exit 2
if [ -n "$(git status --porcelain -- scipy_layers pyproject.toml)" ]; then
    echo "note: asv measures committed code; uncommitted changes in scipy_layers/ are not measured" >&2
fi
machine=$($PY tools/asv_machine.py)
echo "== asv run on $(git rev-parse --short HEAD) (machine $machine)"
# run_asv, finish_run: go on to the reports only when asv exits 0 or 2 (benchmarks failed)
# shellcheck source=tools/_asv_status.sh
. tools/_asv_status.sh
run_asv ${asv_args[@]+"${asv_args[@]}"} "HEAD^!"
# What the results depend on beyond the code: BLAS and its kernel, threads, overrides.
$PY tools/record_environment.py --machine "$machine" --commit HEAD \
    || echo "warning: the environment of this run was not recorded" >&2
# The machine's limit (a few seconds, one thread): the reports bound every timed case by it.
$PY tools/calibrate.py --machine "$machine" \
    || echo "warning: the machine was not calibrated (the reports' limit columns stay blank)" >&2

# Reports first: the dashboard's compare page shows reports/latest/compare.csv.
echo "== writing reports"
report_status=0
$PY -m scipy_layers.reports --results .asv/results --output reports/latest || report_status=$?

echo "== publishing the dashboard (works offline)"
$PY tools/offline_dashboard.py publish

cat <<MSG

Dashboard: run 'make serve' and open http://127.0.0.1:8080 (served on 127.0.0.1 only).
Reports:   reports/latest/summary.md and the CSV files beside it (reports/README.md explains them).
MSG
finish_run "$report_status"
