#!/usr/bin/env bash
# `make results`: the reference figures for the README's "Results" and docs/results.md.
# Runs the default grid plus, with SCIPY_LAYERS_BENCH_FULL=1, every size x kernel x dtype
# of the forward+backward timings of the layers as users call them ('scipy', its rule
# picking the method) against 'native', torch at one thread, on the kernel OpenBLAS picks
# itself (tools/without_overrides.sh); calibrates the machine (its limit,
# tools/calibrate.py); then writes the reports to reports/<machine>/ (committed as the
# reference for that machine).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tools/without_overrides.sh
. tools/without_overrides.sh
PY=.venv/bin/python
ASV=.venv/bin/asv
# asv.conf.json pins the benchmarks' Python: without it asv would end in a traceback
$PY tools/record_environment.py --check || exit 2
machine=$($PY tools/asv_machine.py)

# run_asv, finish_run: go on to the reports only when asv exits 0 or 2 (benchmarks failed)
# shellcheck source=tools/_asv_status.sh
. tools/_asv_status.sh
run_asv "HEAD^!"
SCIPY_LAYERS_BENCH_FULL=1 run_asv \
    -b "^bench_\\w+\\.(?!\\w*Threads\\.)\\w+\\.time_forward_backward\\('(native|scipy)'" "HEAD^!"
$PY tools/record_environment.py --machine "$machine" --commit HEAD \
    || echo "warning: the environment of this run was not recorded" >&2
$PY tools/calibrate.py --machine "$machine" \
    || echo "warning: the machine was not calibrated (the reports' limit columns stay blank)" >&2
report_status=0
tools/commit_report.sh "$PY" "$machine" || report_status=$?
finish_run "$report_status"
