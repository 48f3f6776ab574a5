#!/usr/bin/env bash
# `make results`: the reference figures for the README's results section. Runs the
# default grid plus, with SCIPY_LAYERS_BENCH_FULL=1, every size x kernel x dtype of the
# forward+backward timings of the layers as users call them ('scipy', its rule picking
# the method) against 'native', torch at one thread; calibrates the machine (its limit,
# tools/calibrate.py); then writes the reports to reports/<machine>/ (committed as the
# reference for that machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ASV=.venv/bin/asv
machine=$($PY tools/asv_machine.py)

# asv exits 2 when benchmarks failed: still record, calibrate and report (the failure
# shows there as "failed"), then exit 2. Any other failure (its own error, Ctrl-C: 1; a
# signal) stops here, before the committed reports are rewritten from partial results.
asv_status=0
run_asv() {
    local rc=0
    "$ASV" run --machine "$machine" "$@" || rc=$?
    if [ "$rc" -eq 2 ]; then asv_status=2
    elif [ "$rc" -ne 0 ]; then echo "asv run failed (status $rc): no reports written" >&2; exit "$rc"
    fi
}
run_asv "HEAD^!"
SCIPY_LAYERS_BENCH_FULL=1 run_asv \
    -b "^bench_\\w+\\.(?!\\w*Threads\\.)\\w+\\.time_forward_backward\\('(native|scipy)'" "HEAD^!"
$PY tools/record_environment.py --machine "$machine" --commit HEAD \
    || echo "warning: the environment of this run was not recorded" >&2
$PY tools/calibrate.py --machine "$machine" \
    || echo "warning: the machine was not calibrated (the reports' limit columns stay blank)" >&2
report_status=0
tools/commit_report.sh "$PY" "$machine" || report_status=$?
if [ "$asv_status" -ne 0 ]; then
    echo "some benchmarks failed (asv status $asv_status; see 'failed' in the reports)" >&2
fi
if [ "$report_status" -ne 0 ]; then
    echo "the report exited with status $report_status (see its error above)" >&2
    exit "$report_status"
fi
exit "$asv_status"
