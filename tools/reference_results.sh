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

# A failed benchmark makes asv exit non-zero: still record, calibrate and report (the
# failure shows there as "failed"), then exit with asv's status.
asv_status=0
$ASV run --machine "$machine" "HEAD^!" || asv_status=$?
SCIPY_LAYERS_BENCH_FULL=1 $ASV run --machine "$machine" \
    -b "^bench_\\w+\\.(?!\\w*Threads\\.)\\w+\\.time_forward_backward\\('(native|scipy)'" "HEAD^!" \
    || asv_status=$?
$PY tools/record_environment.py --machine "$machine" --commit HEAD \
    || echo "warning: the environment of this run was not recorded" >&2
$PY tools/calibrate.py --machine "$machine" \
    || echo "warning: the machine was not calibrated (the reports' limit columns stay blank)" >&2
tools/commit_report.sh "$PY" "$machine"
if [ "$asv_status" -ne 0 ]; then
    echo "asv run exited with status $asv_status: some benchmarks failed (see 'failed' in the reports)" >&2
fi
exit "$asv_status"
